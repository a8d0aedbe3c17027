//! The `arca serve --stdio` protocol (docs/PROTOCOL.md): length-prefixed MessagePack frames,
//! a handshake, then storage operations. Types only; the client and server live in
//! `arca-backends`.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::io::{Read, Write};

/// The protocol versions this code speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame either side accepts (a pack is at most a few tens of MiB).
pub const MAX_FRAME: u32 = 512 << 20;

/// A client's request. `kind` is an object kind's directory name (`data`, `index`,
/// `snapshots`, `keys`, `locks`, `marks`, `parity`, `received`) or `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// First message: the versions the client speaks and the repository it asks for.
    Hello {
        versions: Vec<u32>,
        repo: String,
    },
    /// `proof`, if given, is bytes whose BLAKE3 is `name`: it lets an append-only client
    /// replace and delete its own lock after reconnecting.
    Put {
        kind: String,
        name: String,
        data: ByteBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<ByteBuf>,
    },
    Get {
        kind: String,
        name: String,
    },
    GetRange {
        kind: String,
        name: String,
        offset: u64,
        length: u64,
    },
    List {
        kind: String,
    },
    Delete {
        kind: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<ByteBuf>,
    },
    Exists {
        kind: String,
        name: String,
    },
}

/// What went wrong, so the client can map it back to a storage error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    NoSpace,
    PermissionDenied,
    /// The server's mode or rules forbid the operation.
    Refused,
    Transient,
    Io,
    /// The request was malformed or out of order.
    Protocol,
}

/// The server's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "re", rename_all = "kebab-case")]
pub enum Response {
    /// The chosen version, the mode the server enforces and the repository it serves.
    Hello {
        version: u32,
        mode: String,
        repo: String,
    },
    Done,
    Data {
        data: ByteBuf,
    },
    Listing {
        objects: Vec<(String, u64)>,
    },
    Exists {
        exists: bool,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// Frame errors.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(u32),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Write one message as a frame: u32 little-endian length, then MessagePack (named fields).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), WireError> {
    let body = rmp_serde::to_vec_named(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLarge(u32::MAX))?;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()?;
    Ok(())
}

/// Read one frame and decode it. A clean end of input before a frame is `Closed`.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    // Grow with what actually arrives: a peer claiming a huge frame must send it to cost
    // memory (found by fuzzing: a 4-byte header made the reader allocate 350 MB).
    let mut body = Vec::with_capacity((len as usize).min(1 << 20));
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() != len as usize {
        return Err(WireError::Closed);
    }
    decode_message(&body)
}

/// Decode a frame's body (also the fuzz target's entry point).
pub fn decode_message<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    rmp_serde::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        let req =
            Request::Put { kind: "data".into(), name: "ab".into(), data: ByteBuf::from(vec![1, 2, 3]), proof: None };
        let mut buf = vec![];
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(read_frame::<Request>(&mut &buf[..]).unwrap(), req);
        assert!(matches!(read_frame::<Request>(&mut &buf[..3]), Err(WireError::Closed)));
        assert!(matches!(read_frame::<Request>(&mut &[0xff, 0xff, 0xff, 0xff][..]), Err(WireError::TooLarge(_))));
        assert!(matches!(read_frame::<Request>(&mut &[1, 0, 0, 0, 0xc1][..]), Err(WireError::Malformed(_))));
        // A frame that claims 400 MB but ends early costs what arrived, and is an error.
        let claim = (400u32 << 20).to_le_bytes();
        assert!(matches!(
            read_frame::<Request>(&mut &[&claim[..], &[0u8; 10][..]].concat()[..]),
            Err(WireError::Closed)
        ));
        let resp = Response::Error { kind: ErrorKind::Refused, message: "no".into() };
        let mut buf = vec![];
        write_frame(&mut buf, &resp).unwrap();
        assert_eq!(read_frame::<Response>(&mut &buf[..]).unwrap(), resp);
    }
}
