//! The small languages of operation options: sizes, durations, compression, `--max-unused`,
//! `--read-data-subset`, retention spans.
//!
//! Each option type parses itself (`FromStr`) and prints itself back (`Display`), and is
//! (de)serialised as that same string, so a command-line flag, a TOML job file and a JSON request
//! all give the same value and the same error for the same text.

use crate::blob::Compression;
use crate::check::ReadData;
use crate::prune::MaxUnused;
use crate::retention::Span;
use std::fmt;
use std::str::FromStr;

/// Text that is not a valid value of an option: what was given and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?}: {expected}")]
pub struct BadValue {
    pub given: String,
    pub expected: String,
}

fn bad(given: &str, expected: impl Into<String>) -> BadValue {
    BadValue { given: given.to_string(), expected: expected.into() }
}

/// Parse a size: "123", "64K", "200M", "1.5G", "2T" (binary units; a trailing "iB" or "B" is
/// allowed).
pub fn parse_size(s: &str) -> Result<u64, BadValue> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let not_size = || bad(s, "not a size (e.g. 500M, 2G)");
    let v: f64 = num.trim().parse().map_err(|_| not_size())?;
    if !v.is_finite() || v < 0.0 || v * mult as f64 >= u64::MAX as f64 {
        return Err(not_size());
    }
    Ok((v * mult as f64) as u64)
}

/// Parse a duration: "0", "90s", "30m", "6h", "2d" (combinations like "1d12h" too).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, BadValue> {
    let not_duration = || bad(s, "not a duration (e.g. 0, 90s, 30m, 6h, 2d)");
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
        let n: u64 = num.parse().map_err(|_| not_duration())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(not_duration()),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(not_duration)?;
    }
    if !num.is_empty() || t.is_empty() {
        return Err(not_duration());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// A length of time written as `parse_duration` reads it ("90s", "1d12h", "0").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub std::time::Duration);

impl FromStr for Interval {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        parse_duration(s).map(Interval)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0");
        }
        for (unit, size) in [('d', 86400), ('h', 3600), ('m', 60), ('s', 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

/// A number of bytes written as `parse_size` reads it ("500M", "10G", "4096").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        parse_size(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Serialise a type through its `Display` and deserialise it through its `FromStr`, so its
/// serde form is the text a user writes (the calling crate must depend on serde).
#[macro_export]
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

impl FromStr for Compression {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        Ok(match s.trim() {
            "auto" => Compression::Auto,
            "off" | "0" => Compression::Off,
            n => match n.parse::<i32>() {
                Ok(l) if (1..=22).contains(&l) => Compression::Level(l),
                _ => return Err(bad(s, "use auto, off, or a level from 1 to 22")),
            },
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Auto | Compression::AutoAt(_) => f.write_str("auto"),
            Compression::Off => f.write_str("off"),
            Compression::Level(l) => write!(f, "{l}"),
        }
    }
}
serde_as_text!(Compression);

impl FromStr for MaxUnused {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        match s.trim() {
            "unlimited" => Ok(MaxUnused::Percent(100.0)),
            t if t.ends_with('%') => match t[..t.len() - 1].trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxUnused::Percent(p)),
                Ok(_) => Err(bad(s, "give 0% to 100%")),
                Err(_) => Err(bad(s, "not a percentage")),
            },
            t => Ok(MaxUnused::Bytes(
                parse_size(t).map_err(|_| bad(s, "give a percentage (5%), a size (500M) or unlimited"))?,
            )),
        }
    }
}

impl fmt::Display for MaxUnused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnused::Percent(p) => write!(f, "{p}%"),
            MaxUnused::Bytes(b) => write!(f, "{b}"),
        }
    }
}
serde_as_text!(MaxUnused);

impl FromStr for ReadData {
    type Err = BadValue;
    /// `none`, `all`, `N/M` (group N of M), `P%` or a size.
    fn from_str(s: &str) -> Result<Self, BadValue> {
        let t = s.trim();
        match t {
            "none" => return Ok(ReadData::None),
            "all" => return Ok(ReadData::All),
            _ => {}
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(ReadData::Percent(v)),
                _ => Err(bad(s, "a percentage must be above 0 and at most 100")),
            };
        }
        if let Some((n, m)) = t.split_once('/') {
            if let (Ok(n), Ok(m)) = (n.trim().parse::<u32>(), m.trim().parse::<u32>()) {
                if m >= 1 && (1..=m).contains(&n) {
                    return Ok(ReadData::Subset { n, m });
                }
            }
        }
        match parse_size(t) {
            Ok(n) if n > 0 => Ok(ReadData::Bytes(n)),
            _ => Err(bad(s, "use N/M (e.g. 2/5, group 2 of 5), P% (e.g. 10%) or a size (e.g. 1G, 500M)")),
        }
    }
}

impl fmt::Display for ReadData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadData::None => f.write_str("none"),
            ReadData::All => f.write_str("all"),
            ReadData::Subset { n, m } => write!(f, "{n}/{m}"),
            ReadData::Percent(p) => write!(f, "{p}%"),
            ReadData::Bytes(b) => write!(f, "{b}"),
        }
    }
}
serde_as_text!(ReadData);

impl FromStr for Span {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        Span::parse(s).map_err(|e| bad(s, e.split_once(": ").map(|(_, why)| why).unwrap_or(&e).to_string()))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}
serde_as_text!(Span);
serde_as_text!(Interval);
serde_as_text!(ByteSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("200M").unwrap(), 200 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("12").unwrap(), 12);
        assert!(parse_size("lots").is_err() && parse_size("-1G").is_err() && parse_size("1e30T").is_err());
        assert_eq!(parse_duration("1d12h").unwrap().as_secs(), 129600);
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert!(parse_duration("5").is_err() && parse_duration("3w").is_err() && parse_duration("").is_err());
    }

    /// Every option reads back what it prints, and through serde as the same text.
    #[test]
    fn options_round_trip_as_text() {
        fn round<T>(text: &str)
        where
            T: FromStr + fmt::Display + PartialEq + fmt::Debug + serde::Serialize + for<'de> serde::Deserialize<'de>,
            T::Err: fmt::Debug,
        {
            let v: T = text.parse().unwrap();
            assert_eq!(v.to_string().parse::<T>().unwrap(), v, "{text}");
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v, "{json}");
        }
        for t in ["auto", "off", "7"] {
            round::<Compression>(t);
        }
        for t in ["5%", "unlimited", "500M"] {
            round::<MaxUnused>(t);
        }
        for t in ["none", "all", "2/5", "10%", "1G"] {
            round::<ReadData>(t);
        }
        for t in ["0", "90s", "1d12h", "2d"] {
            round::<Interval>(t);
        }
        for t in ["1y6m2d12h", "14d"] {
            round::<Span>(t);
        }
        assert_eq!("7".parse::<Compression>().unwrap(), Compression::Level(7));
        assert!("23".parse::<Compression>().is_err() && "fast".parse::<Compression>().is_err());
        assert!("101%".parse::<MaxUnused>().is_err() && "3/2".parse::<ReadData>().is_err());
        assert!(serde_json::from_str::<ReadData>("\"0%\"").unwrap_err().to_string().contains("above 0"));
    }
}
