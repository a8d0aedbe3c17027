//! Turning stored bytes and sizes into safe, readable text.

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

/// Parse a size: "123", "64K", "200M", "1.5G", "2T" (binary units; a trailing "iB" or "B" is
/// allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size (e.g. 500M, 2G)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a size (e.g. 500M, 2G)"));
    }
    Ok((v * mult as f64) as u64)
}

/// Parse a duration: "0", "90s", "30m", "6h", "2d" (combinations like "1d12h" too).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 0, 90s, 30m, 6h, 2d)");
    let t = s.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (mut total, mut num) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if !num.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("200M").unwrap(), 200 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("12").unwrap(), 12);
        assert!(parse_size("lots").is_err() && parse_size("-1G").is_err());
        assert_eq!(parse_duration("1d12h").unwrap().as_secs(), 129600);
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert!(parse_duration("5").is_err() && parse_duration("3w").is_err() && parse_duration("").is_err());
    }
}
