//! Times as users write them: RFC 3339, or local "YYYY-MM-DD[ HH:MM[:SS[.fraction]]]".

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeDelta, TimeZone};
use std::fmt;
use std::str::FromStr;

/// A time as written, with the precision it was written with: "2026-11-01" covers the whole
/// day, "04:39:53" the whole second. Local times are read in the time zone of the parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeSpec {
    text: String,
    at: DateTime<FixedOffset>,
    precision: TimeDelta,
}

impl TimeSpec {
    /// The first instant the text can mean (`--time`, `--newer-than`).
    pub fn start(&self) -> DateTime<FixedOffset> {
        self.at
    }

    /// The last instant the text can mean: "04:39:53", copied from the snapshots table (which
    /// shows whole seconds), means up to the end of that second, so it selects a snapshot
    /// taken at 04:39:53.659; a date alone means up to the end of that day.
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.at + self.precision - TimeDelta::nanoseconds(1)
    }
}

/// Why a time cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("cannot read time {0:?}: use RFC 3339 (2026-11-01T12:00:00+01:00) or \"2026-11-01 12:00[:00[.5]]\" (local time)")]
    Unreadable(String),
    #[error("{0:?} does not exist in the local time zone")]
    NoSuchLocalTime(String),
}

impl FromStr for TimeSpec {
    type Err = TimeError;
    fn from_str(text: &str) -> Result<TimeSpec, TimeError> {
        let s = text.trim();
        let has_fraction = |s: &str| s.rsplit_once(':').is_some_and(|(_, sec)| sec.contains('.'));
        let second = TimeDelta::seconds(1);
        let spec = |at, precision| TimeSpec { text: s.to_string(), at, precision };
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(spec(t, if has_fraction(s) { TimeDelta::nanoseconds(1) } else { second }));
        }
        let formats: [(&str, TimeDelta); 4] = [
            ("%Y-%m-%d %H:%M:%S%.f", second),
            ("%Y-%m-%dT%H:%M:%S%.f", second),
            ("%Y-%m-%d %H:%M", TimeDelta::minutes(1)),
            ("%Y-%m-%dT%H:%M", TimeDelta::minutes(1)),
        ];
        let parsed =
            formats.iter().find_map(|(f, p)| NaiveDateTime::parse_from_str(s, f).ok().map(|t| (t, *p))).or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| (t, TimeDelta::days(1)))
            });
        let (naive, mut precision) = parsed.ok_or_else(|| TimeError::Unreadable(s.to_string()))?;
        if has_fraction(s) {
            precision = TimeDelta::nanoseconds(1);
        }
        let t = Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.fixed_offset())
            .ok_or_else(|| TimeError::NoSuchLocalTime(s.to_string()))?;
        Ok(spec(t, precision))
    }
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

arca_repo::serde_as_text!(TimeSpec);
arca_repo::serde_as_text!(Until);

/// A protection date: a time, or "forever".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Until {
    Forever,
    Time(TimeSpec),
}

impl Until {
    /// As stored in a snapshot's `keep_until`: RFC 3339 or "forever".
    pub fn stored(&self) -> String {
        match self {
            Until::Forever => "forever".into(),
            Until::Time(t) => t.start().to_rfc3339(),
        }
    }
}

impl FromStr for Until {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Until, TimeError> {
        if s.trim() == "forever" {
            return Ok(Until::Forever);
        }
        s.parse().map(Until::Time)
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::Forever => f.write_str("forever"),
            Until::Time(t) => t.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_covers_what_its_text_says() {
        let t: TimeSpec = "2026-11-01T04:39:53Z".parse().unwrap();
        assert_eq!(t.end() - t.start(), TimeDelta::seconds(1) - TimeDelta::nanoseconds(1));
        let d: TimeSpec = "2026-11-01".parse().unwrap();
        assert_eq!(d.end() - d.start(), TimeDelta::days(1) - TimeDelta::nanoseconds(1));
        let f: TimeSpec = "2026-11-01 04:39:53.5".parse().unwrap();
        assert_eq!(f.end(), f.start());
        assert!(matches!("yesterday".parse::<TimeSpec>(), Err(TimeError::Unreadable(_))));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-01T04:39:53Z\"");
        assert_eq!(serde_json::from_str::<TimeSpec>(&json).unwrap(), t);
        assert_eq!("forever".parse::<Until>().unwrap(), Until::Forever);
    }
}
