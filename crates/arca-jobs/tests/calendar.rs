//! The calendar parser against systemd's own (`systemd-analyze calendar`): the same specs
//! accepted and refused, the same normalized form, the same next five run times.

use arca_jobs::calendar::Calendar;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::process::Command;

const BASE: &str = "2026-01-30 23:59:30";

/// What systemd says of `spec` from BASE (UTC): the normalized form and the next five times,
/// or None if it refuses the spec.
fn systemd(spec: &str) -> Option<(String, Vec<DateTime<Utc>>)> {
    let o = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=5", &format!("--base-time={BASE} UTC"), spec])
        .env("TZ", "UTC")
        .output()
        .expect("systemd-analyze must be installed (scripts/test installs systemd)");
    if !o.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut normalized = String::new();
    let mut times = vec![];
    for line in text.lines() {
        let (k, v) = line.split_once(": ")?;
        match k.trim() {
            "Normalized form" => normalized = v.trim().to_string(),
            k if k == "Next elapse" || k.starts_with("Iter.") => {
                // "Mon 2026-02-02 02:00:00 UTC"
                let v = v.trim().trim_end_matches(" UTC");
                let (_, rest) = v.split_once(' ')?;
                let t = NaiveDateTime::parse_from_str(rest, "%Y-%m-%d %H:%M:%S").ok()?;
                times.push(t.and_utc());
            }
            _ => {}
        }
    }
    Some((normalized, times))
}

#[test]
fn specs_mean_what_systemd_says_they_mean() {
    std::env::set_var("TZ", "UTC");
    let base = NaiveDateTime::parse_from_str(BASE, "%Y-%m-%d %H:%M:%S").unwrap().and_utc();
    let specs = [
        "daily",
        "hourly",
        "weekly",
        "monthly",
        "quarterly",
        "semiannually",
        "yearly",
        "minutely",
        "Mon..Fri 02:00",
        "Sat,Sun 04:30:15",
        "*-*-01 03:00",
        "*-02-29 12:00",
        "*:0/15",
        "Mon,Wed..Fri *-1,7-1..10 1..5:30",
        "2027-*-* 00:00:00",
        "12-25 08:00",
        "Mon *-*-8..14 01:00 UTC",
        // Refused by both:
        "*/15:00",
        "Sat..Mon 04:30",
        "25:00",
        "dailly",
        "*-13-01",
        "Mon 1:2:3:4",
    ];
    for spec in specs {
        let ours = Calendar::parse(spec);
        match (systemd(spec), ours) {
            (None, Err(_)) => {}
            (Some((norm, times)), Ok(c)) => {
                assert_eq!(c.to_string(), norm, "{spec}: normalized form");
                assert_eq!(c.next_n(base, 5), times, "{spec}: next five runs");
            }
            (s, o) => panic!("{spec}: systemd says {s:?}, arca says {o:?}"),
        }
    }
}
