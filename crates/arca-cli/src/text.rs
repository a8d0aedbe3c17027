//! Turning stored bytes and sizes into safe, readable text.

pub use arca_repo::units::parse_duration;

/// Show raw name bytes safely on a terminal: printable UTF-8 stays, control characters and
/// invalid bytes become escapes (`\n`, `\x1b`, `\xff`), so a hostile name cannot move the cursor
/// or hide itself.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `n` with the singular or plural noun: `1 snapshot`, `2 snapshots`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes in binary units: `1.5 GiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How long ago, in the largest whole unit: `40s ago`, `3h ago`, `2d ago`.
pub fn age(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s < 0 {
        return "in the future".into();
    }
    let (n, unit) = match s {
        0..60 => (s, "s"),
        60..3600 => (s / 60, "min"),
        3600..86400 => (s / 3600, "h"),
        _ => (s / 86400, "d"),
    };
    format!("{n}{unit} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_names() {
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape(b"\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(escape(b"bad\xffutf8"), "bad\\xffutf8");
        assert_eq!(escape("ünï".as_bytes()), "ünï");
    }

    #[test]
    fn counts() {
        assert_eq!(count(1, "snapshot", "snapshots"), "1 snapshot");
        assert_eq!(count(0, "snapshot", "snapshots"), "0 snapshots");
        assert_eq!(count(2, "file", "files"), "2 files");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(5), "5 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
