//! systemd calendar events (`OnCalendar=`, systemd.time(7)): the schedule of a job, checked
//! when the config file is read and turned into its next run times for `arca schedule show`
//! and into a cron line where systemd is absent.
//!
//! Written here because no maintained Rust crate parses this syntax (the cron crates take the
//! five-field cron syntax, which cannot say "Mon..Fri 02:00" with seconds or years). The subset
//! is what systemd documents for everyday use: the shorthands (`daily`, `weekly`, …), weekday
//! lists and ranges (not wrapping around the week), `Y-M-D` and `M-D` dates, `H:M[:S]` times, `*`, lists, `A..B` ranges and
//! `/N` repetitions, and a trailing `UTC`. What it refuses (`~` last days, fractional seconds,
//! other time zones) is an error naming what, never a different schedule.

use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone, Utc};
use std::fmt;

/// A parsed calendar event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Weekdays it fires on, bit 0 = Monday; all bits when the event names none.
    weekdays: u8,
    year: Field,
    month: Field,
    day: Field,
    hour: Field,
    minute: Field,
    second: Field,
    utc: bool,
}

/// Why a calendar spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad calendar spec {spec:?}: {reason}")]
pub struct CalendarError {
    pub spec: String,
    pub reason: String,
}

/// One component: a list of values, ranges and repetitions (`*` is the full range).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    items: Vec<Item>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    from: u32,
    to: u32,
    step: u32,
}

impl Field {
    fn any(lo: u32, hi: u32) -> Field {
        Field { items: vec![Item { from: lo, to: hi, step: 1 }] }
    }

    fn single(v: u32) -> Field {
        Field { items: vec![Item { from: v, to: v, step: 1 }] }
    }

    fn matches(&self, v: u32) -> bool {
        self.items.iter().any(|i| v >= i.from && v <= i.to && (v - i.from).is_multiple_of(i.step))
    }

    fn is_any(&self, lo: u32, hi: u32) -> bool {
        self.items == [Item { from: lo, to: hi, step: 1 }]
    }

    /// `components` of systemd's normalized form: `*`, `5`, `1..5`, `0/15`, joined by `,`.
    fn show(&self, lo: u32, hi: u32, width: usize) -> String {
        if self.is_any(lo, hi) {
            return "*".into();
        }
        let n = |v: u32| format!("{v:0width$}");
        self.items
            .iter()
            .map(|i| match (i.from == i.to, i.step, i.to == hi) {
                (true, _, _) => n(i.from),
                (false, 1, _) => format!("{}..{}", n(i.from), n(i.to)),
                (false, s, true) => format!("{}/{s}", n(i.from)),
                (false, s, false) => format!("{}..{}/{s}", n(i.from), n(i.to)),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The field in cron's syntax (`*`, `1,5`, `1-5`, `0-59/15`), for a cron line.
    fn cron(&self, lo: u32, hi: u32) -> String {
        if self.is_any(lo, hi) {
            return "*".into();
        }
        self.items
            .iter()
            .map(|i| match (i.from == i.to, i.step) {
                (true, _) => i.from.to_string(),
                (false, 1) => format!("{}-{}", i.from, i.to),
                (false, s) => format!("{}-{}/{s}", i.from, i.to),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn weekday(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    WEEKDAYS.iter().position(|(short, long)| s == *short || s == *long).map(|i| i as u8)
}

impl Calendar {
    /// Parse `spec` as `OnCalendar=` takes it.
    pub fn parse(spec: &str) -> Result<Calendar, CalendarError> {
        let bad = |reason: String| CalendarError { spec: spec.to_string(), reason };
        let mut body = spec.trim();
        let mut utc = false;
        if let Some(rest) = body.strip_suffix("UTC").or_else(|| body.strip_suffix("utc")) {
            if rest.is_empty() || rest.ends_with(char::is_whitespace) {
                body = rest.trim_end();
                utc = true;
            }
        }
        let shorthand = match body.to_ascii_lowercase().as_str() {
            "minutely" => Some("*-*-* *:*:00"),
            "hourly" => Some("*-*-* *:00:00"),
            "daily" => Some("*-*-* 00:00:00"),
            "weekly" => Some("Mon *-*-* 00:00:00"),
            "monthly" => Some("*-*-01 00:00:00"),
            "yearly" | "annually" => Some("*-01-01 00:00:00"),
            "quarterly" => Some("*-01,04,07,10-01 00:00:00"),
            "semiannually" => Some("*-01,07-01 00:00:00"),
            _ => None,
        };
        let text = shorthand.unwrap_or(body);
        let mut words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err(bad("it is empty (give e.g. \"daily\" or \"Mon..Fri 02:00\")".into()));
        }
        let mut weekdays = 0x7f;
        if let Some(first) = words.first().filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic())) {
            weekdays = weekday_list(first).map_err(bad)?;
            words.remove(0);
        }
        let (mut year, mut month, mut day) = (Field::any(1970, 2199), Field::any(1, 12), Field::any(1, 31));
        let (mut hour, mut minute, mut second) = (Field::single(0), Field::single(0), Field::single(0));
        let mut date_seen = false;
        let mut time_seen = false;
        for w in &words {
            if w.contains(':') && !time_seen {
                let parts: Vec<&str> = w.split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(bad(format!("{w:?} is not a time (H:M or H:M:S)")));
                }
                hour = field(parts[0], 0, 23, "hour").map_err(bad)?;
                minute = field(parts[1], 0, 59, "minute").map_err(bad)?;
                second = match parts.get(2) {
                    Some(s) => field(s, 0, 59, "second").map_err(bad)?,
                    None => Field::single(0),
                };
                time_seen = true;
            } else if w.contains('-') && !date_seen && !time_seen {
                if w.contains('~') {
                    return Err(bad("`~` (days counted from the end of the month) is not supported".into()));
                }
                let parts: Vec<&str> = w.split('-').collect();
                let (y, m, d) = match parts.as_slice() {
                    [y, m, d] => (Some(*y), *m, *d),
                    [m, d] => (None, *m, *d),
                    _ => return Err(bad(format!("{w:?} is not a date (Y-M-D or M-D)"))),
                };
                if let Some(y) = y {
                    year = field(y, 1970, 2199, "year").map_err(bad)?;
                }
                month = field(m, 1, 12, "month").map_err(bad)?;
                day = field(d, 1, 31, "day").map_err(bad)?;
                date_seen = true;
            } else {
                return Err(bad(format!(
                    "{w:?} is neither a weekday, a date (Y-M-D) nor a time (H:M:S); time zones other than UTC are not supported"
                )));
            }
        }
        if !date_seen && !time_seen && weekdays == 0x7f {
            return Err(bad("it names no weekday, date or time".into()));
        }
        let c = Calendar { weekdays, year, month, day, hour, minute, second, utc };
        // A spec that can never fire (Feb 30) is a mistake worth naming now.
        if c.next_after(Utc::now()).is_none() {
            return Err(bad("it never fires".into()));
        }
        Ok(c)
    }

    /// Whether the date is one the event fires on.
    fn date_matches(&self, d: NaiveDate) -> bool {
        self.year.matches(d.year() as u32)
            && self.month.matches(d.month())
            && self.day.matches(d.day())
            && self.weekdays & (1 << d.weekday().num_days_from_monday()) != 0
    }

    /// The first time strictly after `after` that the event fires, searching 20 years ahead.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = if self.utc { after.date_naive() } else { after.with_timezone(&Local).date_naive() };
        for date in start.iter_days().take(366 * 20) {
            if !self.date_matches(date) {
                continue;
            }
            for h in (0..24).filter(|h| self.hour.matches(*h)) {
                for m in (0..60).filter(|m| self.minute.matches(*m)) {
                    for s in (0..60).filter(|s| self.second.matches(*s)) {
                        let Some(naive) = date.and_hms_opt(h, m, s) else { continue };
                        // A local time that a DST change skips does not fire (as in systemd).
                        let t = if self.utc {
                            Some(Utc.from_utc_datetime(&naive))
                        } else {
                            Local.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
                        };
                        if let Some(t) = t.filter(|t| *t > after) {
                            return Some(t);
                        }
                    }
                }
            }
        }
        None
    }

    /// The next `n` times after `after`.
    pub fn next_n(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The same schedule as a crontab time (five fields), if cron can say it: cron has no
    /// seconds and no years, and ORs day-of-month with weekday where systemd ANDs them.
    pub fn cron(&self) -> Result<String, String> {
        if !self.second.is_any(0, 59) && self.second != Field::single(0) {
            return Err("cron cannot fire at seconds other than :00".into());
        }
        if !self.year.is_any(1970, 2199) {
            return Err("cron cannot restrict years".into());
        }
        let days_given = !self.day.is_any(1, 31);
        if days_given && self.weekdays != 0x7f {
            return Err("cron ORs days of the month with weekdays where systemd ANDs them".into());
        }
        if self.utc {
            return Err("cron runs in local time (set CRON_TZ=UTC in the crontab, if your cron has it)".into());
        }
        let dow = if self.weekdays == 0x7f {
            "*".to_string()
        } else {
            // cron counts Sunday as 0.
            (0..7)
                .filter(|i| self.weekdays & (1 << i) != 0)
                .map(|i| ((i + 1) % 7).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        Ok(format!(
            "{} {} {} {} {dow}",
            self.minute.cron(0, 59),
            self.hour.cron(0, 23),
            self.day.cron(1, 31),
            self.month.cron(1, 12)
        ))
    }
}

/// systemd's normalized form (`Mon..Fri *-*-* 02:00:00`), as `systemd-analyze calendar` prints it.
impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weekdays != 0x7f {
            let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let mut parts = vec![];
            let mut i = 0;
            while i < 7 {
                if self.weekdays & (1 << i) == 0 {
                    i += 1;
                    continue;
                }
                let start = i;
                while i + 1 < 7 && self.weekdays & (1 << (i + 1)) != 0 {
                    i += 1;
                }
                parts.push(match i - start {
                    0 => names[start].to_string(),
                    1 => format!("{},{}", names[start], names[i]),
                    _ => format!("{}..{}", names[start], names[i]),
                });
                i += 1;
            }
            write!(f, "{} ", parts.join(","))?;
        }
        write!(
            f,
            "{}-{}-{} {}:{}:{}",
            self.year.show(1970, 2199, 4),
            self.month.show(1, 12, 2),
            self.day.show(1, 31, 2),
            self.hour.show(0, 23, 2),
            self.minute.show(0, 59, 2),
            self.second.show(0, 59, 2)
        )?;
        if self.utc {
            write!(f, " UTC")?;
        }
        Ok(())
    }
}

fn weekday_list(s: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for part in s.split(',') {
        let (a, b) = part.split_once("..").map_or((part, part), |(a, b)| (a, b));
        let (Some(a), Some(b)) = (weekday(a), weekday(b)) else {
            return Err(format!("{part:?} is not a weekday (Mon, Tue, … or Mon..Fri)"));
        };
        if a > b {
            return Err(format!("the weekday range {part:?} runs backwards (systemd does not wrap around the week)"));
        }
        for i in a..=b {
            mask |= 1 << i;
        }
    }
    Ok(mask)
}

/// One component: `*`, `N`, `A..B`, `N/S`, `A..B/S`, joined by `,` (systemd refuses `*/S`).
fn field(s: &str, lo: u32, hi: u32, what: &str) -> Result<Field, String> {
    let num = |t: &str| -> Result<u32, String> {
        if t.contains('.') && what == "second" {
            return Err(format!("fractional seconds ({t:?}) are not supported"));
        }
        let v: u32 = t.parse().map_err(|_| format!("{t:?} is not a number for the {what}"))?;
        if v < lo || v > hi {
            return Err(format!("{what} {v} is out of range ({lo} to {hi})"));
        }
        Ok(v)
    };
    let mut items = vec![];
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let step: u32 = st.parse().map_err(|_| format!("{st:?} is not a repetition for the {what}"))?;
                if step == 0 {
                    return Err(format!("a repetition of 0 for the {what} never advances"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            if step > 1 {
                return Err(format!("write a repetition from a start value (0/{step}, not */{step})"));
            }
            (lo, hi)
        } else if let Some((a, b)) = range.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("the {what} range {a}..{b} runs backwards"));
            }
            (a, b)
        } else {
            let v = num(range)?;
            (v, if step > 1 { hi } else { v })
        };
        items.push(Item { from, to, step });
    }
    Ok(Field { items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap()
    }

    #[test]
    fn shorthands_and_everyday_forms_fire_when_systemd_says() {
        let c = Calendar::parse("Mon..Fri 02:00 UTC").unwrap();
        assert_eq!(c.to_string(), "Mon..Fri *-*-* 02:00:00 UTC");
        let next = c.next_n(at("2026-12-04T03:00:00Z"), 2);
        assert_eq!(next, vec![at("2026-12-07T02:00:00Z"), at("2026-12-08T02:00:00Z")]);
        assert_eq!(Calendar::parse("weekly UTC").unwrap().to_string(), "Mon *-*-* 00:00:00 UTC");
        assert_eq!(Calendar::parse("*:0/15").unwrap().to_string(), "*-*-* *:00/15:00");
        assert_eq!(Calendar::parse("*:0/15").unwrap().cron().unwrap(), "0-59/15 * * * *");
        assert_eq!(Calendar::parse("Sat,Sun 04:30").unwrap().cron().unwrap(), "30 4 * * 6,0");
        assert!(Calendar::parse("2020-01-01").is_err(), "in the past: never fires");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (spec, says) in [
            ("dailly", "not a weekday"),
            ("25:00", "hour 25 is out of range"),
            ("*-02-30", "never fires"),
            ("*-*~01", "not supported"),
            ("Mon 02:00 Europe/Berlin", "time zones other than UTC"),
            ("", "empty"),
        ] {
            let e = Calendar::parse(spec).unwrap_err().to_string();
            assert!(e.contains("bad calendar spec") && e.contains(says), "{spec}: {e}");
        }
    }
}
