//! btrfs send streams stored in two parts, so they deduplicate.
//!
//! A send stream interleaves file data with command headers: every write command carries at
//! most 48 KiB (v1) behind a header holding the path, the file offset and a CRC of the whole
//! command. When one extent of a file changes, the commands after it start at other offsets,
//! so a header with new bytes lands in every content-defined chunk and a second full stream
//! of a barely changed subvolume would be stored again in full. Split into *commands* (the
//! stream with the payloads of its data attributes cut out) and *data* (those payloads back
//! to back), the data part of an unchanged file is byte for byte what it was, and the commands
//! are a fraction of a percent of the stream.
//!
//! The split is lossless for any input: [`join`] walks the commands part with the same state
//! machine [`split`] walked the stream with, and every decision that machine takes depends
//! only on bytes that stay in the commands part (lengths and attribute types), so the payloads
//! go back exactly where they came from. `btrfs receive` checks each command's CRC, which
//! covers its data, on top.
//!
//! Stream layout (the kernel's fs/btrfs/send.h): a 17-byte header (`btrfs-stream\0`, a
//! little-endian u32 version), then commands: u32 length of the attributes, u16 command, u32
//! CRC32C, then attributes: u16 type, u16 length, value. Attribute 19 is the data; from
//! version 2 on it is the last attribute of its command, has no length field and runs to the
//! command's end.

use std::io::{self, BufRead, BufReader, Read, Write};

const MAGIC: &[u8] = b"btrfs-stream\0";
const STREAM_HEADER: usize = 17;
const COMMAND_HEADER: usize = 10;
const ATTR_DATA: u16 = 19;

/// The two parts' byte counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// The whole stream.
    pub stream: u64,
    /// Of it, the data attributes' payloads.
    pub data: u64,
}

/// One side of the walk: where command bytes and data bytes come from and go.
trait Side {
    /// Move up to `n` command bytes; the bytes moved (fewer only at the end).
    fn commands(&mut self, n: usize) -> io::Result<Vec<u8>>;
    /// Move up to `n` data bytes; how many were moved.
    fn data(&mut self, n: u64) -> io::Result<u64>;
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Walk a stream (or its commands part), moving each byte to where it belongs.
fn walk(side: &mut impl Side) -> io::Result<()> {
    let mut version = 1u32;
    loop {
        let head = side.commands(COMMAND_HEADER)?;
        if head.len() < COMMAND_HEADER {
            return Ok(());
        }
        if head[..] == MAGIC[..COMMAND_HEADER] {
            let rest = side.commands(STREAM_HEADER - COMMAND_HEADER)?;
            if rest.len() < STREAM_HEADER - COMMAND_HEADER {
                return Ok(());
            }
            if rest[..MAGIC.len() - COMMAND_HEADER] == MAGIC[COMMAND_HEADER..] {
                version = le32(&rest[MAGIC.len() - COMMAND_HEADER..]);
            }
            continue;
        }
        let mut left = u64::from(le32(&head[..4]));
        while left > 0 {
            if left < 2 {
                return finish(side, left);
            }
            let t = side.commands(2)?;
            if t.len() < 2 {
                return Ok(());
            }
            left -= 2;
            let kind = le16(&t);
            if kind == ATTR_DATA && version >= 2 {
                if side.data(left)? < left {
                    return Ok(());
                }
                left = 0;
                continue;
            }
            if left < 2 {
                return finish(side, left);
            }
            let l = side.commands(2)?;
            if l.len() < 2 {
                return Ok(());
            }
            left -= 2;
            let len = u64::from(le16(&l)).min(left);
            let moved = if kind == ATTR_DATA { side.data(len)? } else { side.commands(len as usize)?.len() as u64 };
            if moved < len {
                return Ok(());
            }
            left -= len;
        }
    }
}

/// A command whose length does not fit its attributes: its last bytes, then the rest of the
/// stream, are carried as commands bytes (nothing is lost, nothing is parsed further).
fn finish(side: &mut impl Side, _left: u64) -> io::Result<()> {
    while !side.commands(64 * 1024)?.is_empty() {}
    Ok(())
}

fn read_up_to(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

struct Splitting<R, C, D> {
    input: R,
    commands: C,
    data: D,
    sizes: Sizes,
}

impl<R: BufRead, C: Write, D: Write> Side for Splitting<R, C, D> {
    fn commands(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let b = read_up_to(&mut self.input, n)?;
        self.commands.write_all(&b)?;
        self.sizes.stream += b.len() as u64;
        Ok(b)
    }

    fn data(&mut self, n: u64) -> io::Result<u64> {
        let moved = io::copy(&mut (&mut self.input).take(n), &mut self.data)?;
        self.sizes.stream += moved;
        self.sizes.data += moved;
        Ok(moved)
    }
}

/// Split a send stream into its commands part and its data part.
pub fn split(input: impl Read, commands: impl Write, data: impl Write) -> io::Result<Sizes> {
    let mut s = Splitting { input: BufReader::with_capacity(1 << 20, input), commands, data, sizes: Sizes::default() };
    walk(&mut s)?;
    s.commands.flush()?;
    s.data.flush()?;
    Ok(s.sizes)
}

struct Joining<C, D, W> {
    commands: C,
    data: D,
    out: W,
    written: u64,
}

impl<C: BufRead, D: Read, W: Write> Side for Joining<C, D, W> {
    fn commands(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let b = read_up_to(&mut self.commands, n)?;
        self.out.write_all(&b)?;
        self.written += b.len() as u64;
        Ok(b)
    }

    fn data(&mut self, n: u64) -> io::Result<u64> {
        let moved = io::copy(&mut (&mut self.data).take(n), &mut self.out)?;
        self.written += moved;
        Ok(moved)
    }
}

/// Put a stream back together from its two parts; the bytes written.
pub fn join(commands: impl Read, data: impl Read, out: impl Write) -> io::Result<u64> {
    let mut j = Joining { commands: BufReader::with_capacity(1 << 16, commands), data, out, written: 0 };
    walk(&mut j)?;
    j.out.flush()?;
    Ok(j.written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(cmd: u16, attrs: &[(u16, &[u8])], v2_data: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![];
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_le_bytes());
            body.extend_from_slice(&(v.len() as u16).to_le_bytes());
            body.extend_from_slice(v);
        }
        if let Some(d) = v2_data {
            body.extend_from_slice(&ATTR_DATA.to_le_bytes());
            body.extend_from_slice(d);
        }
        let mut c = (body.len() as u32).to_le_bytes().to_vec();
        c.extend_from_slice(&cmd.to_le_bytes());
        c.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
        c.extend(body);
        c
    }

    fn header(version: u32) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&version.to_le_bytes());
        h
    }

    fn round_trip(stream: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut c, mut d) = (vec![], vec![]);
        let sizes = split(stream, &mut c, &mut d).unwrap();
        assert_eq!(sizes.stream, stream.len() as u64);
        assert_eq!(sizes.data, d.len() as u64);
        let mut back = vec![];
        assert_eq!(join(&c[..], &d[..], &mut back).unwrap(), stream.len() as u64);
        assert_eq!(back, stream);
        (c, d)
    }

    #[test]
    fn v1_data_goes_to_the_data_part_and_comes_back() {
        let mut s = header(1);
        s.extend(command(1, &[(15, b"./data"), (1, &[7; 16])], None));
        s.extend(command(15, &[(15, b"big"), (18, &0u64.to_le_bytes()), (ATTR_DATA, &[0xAA; 3000])], None));
        s.extend(command(15, &[(15, b"big"), (18, &3000u64.to_le_bytes()), (ATTR_DATA, &[0xBB; 500])], None));
        s.extend(command(21, &[], None));
        let (c, d) = round_trip(&s);
        assert_eq!(d.len(), 3500);
        assert_eq!(c.len(), s.len() - 3500);
    }

    #[test]
    fn v2_data_runs_to_the_end_of_its_command() {
        let mut s = header(2);
        s.extend(command(15, &[(15, b"f"), (18, &0u64.to_le_bytes())], Some(&[1; 70_000])));
        s.extend(command(21, &[], None));
        let (_, d) = round_trip(&s);
        assert_eq!(d.len(), 70_000);
    }

    #[test]
    fn anything_else_survives_unchanged() {
        // Truncated, garbage, a second stream after the first, lengths that lie.
        let mut two = header(1);
        two.extend(command(15, &[(ATTR_DATA, &[9; 100])], None));
        two.extend(header(1));
        two.extend(command(15, &[(ATTR_DATA, &[8; 10])], None));
        round_trip(&two);
        for cut in 0..two.len() {
            round_trip(&two[..cut]);
        }
        let mut liar = header(1);
        liar.extend_from_slice(&5u32.to_le_bytes());
        liar.extend_from_slice(&[15, 0, 0, 0, 0, 0, 19, 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7]);
        round_trip(&liar);
        round_trip(b"not a stream at all, and not ten bytes long either");
        round_trip(&[0xff; 5000]);
    }

    #[test]
    fn shifted_data_leaves_the_data_part_aligned() {
        // The same file content sent as 48 KiB writes from two different starting offsets:
        // the streams differ everywhere, the data parts not at all.
        let content: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let send = |first: usize| {
            let mut s = header(1);
            let mut off = 0;
            let mut step = first;
            while off < content.len() {
                let end = (off + step).min(content.len());
                s.extend(command(
                    15,
                    &[(15, b"f"), (18, &(off as u64).to_le_bytes()), (ATTR_DATA, &content[off..end])],
                    None,
                ));
                off = end;
                step = 49_152;
            }
            s
        };
        let (a, b) = (send(49_152), send(10_000));
        assert_ne!(a, b);
        assert_eq!(round_trip(&a).1, round_trip(&b).1);
    }
}
