//! Job status over SNMP through net-snmp's `pass_persist` protocol (snmpd.conf(5)): snmpd
//! starts `arca snmp` once and asks it `get` and `getnext` for OIDs under arca's subtree; the
//! answers come from the same [`Status`] as `arca status`. The subtree is described in
//! docs/ARCA-MIB.txt.
//!
//! The protocol is a handful of text lines (`PING`/`PONG`, `get OID`, `getnext OID`, `set`),
//! so it is spoken here directly; net-snmp's agent libraries (AgentX) would be a C dependency
//! for the same thing.

use crate::status::Status;
use std::io::{BufRead, Write};

/// arca's subtree when the config names none: under NET-SNMP-MIB's `netSnmpPlaypen`
/// (.1.3.6.1.4.1.8072.9999.9999), which net-snmp sets aside for local use.
pub const DEFAULT_BASE: &str = ".1.3.6.1.4.1.8072.9999.9999.7";

/// An object identifier.
pub type Oid = Vec<u32>;

/// A value as `pass_persist` names its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Integer(i64),
    String(String),
    Counter64(u64),
}

/// Parse `.1.3.6…` (or without the leading dot).
pub fn parse_oid(s: &str) -> Option<Oid> {
    let s = s.trim().trim_start_matches('.');
    if s.is_empty() {
        return Some(vec![]);
    }
    s.split('.').map(|p| p.parse().ok()).collect()
}

fn show(o: &[u32]) -> String {
    o.iter().map(|p| format!(".{p}")).collect()
}

/// How a column of the job table reads a row (its index and job).
type Column<'a> = dyn Fn(u32, &crate::status::JobStatus) -> Value + 'a;

/// The objects of `status` under `base`, in OID order:
/// `base.1.0` the number of jobs; `base.2.1.COLUMN.INDEX` the job table (see ARCA-MIB).
pub fn objects(base: &[u32], status: &Status) -> Vec<(Oid, Value)> {
    let age = |t: Option<chrono::DateTime<chrono::Utc>>| {
        Value::Integer(t.map_or(-1, |t| (status.now - t).num_seconds().max(0)))
    };
    let oid = |tail: &[u32]| base.iter().chain(tail).copied().collect::<Oid>();
    let mut out = vec![(oid(&[1, 0]), Value::Integer(status.jobs.len() as i64))];
    let columns: [(u32, &Column); 8] = [
        (1, &|index, _| Value::Integer(index as i64)),
        (2, &|_, j| Value::String(j.job.clone())),
        (3, &|_, j| Value::Integer(j.state.snmp())),
        (4, &|_, j| age(j.last_success.max(j.last_snapshot))),
        (5, &|_, j| age(j.last_failure)),
        (6, &|_, j| Value::Integer(j.last_exit.map_or(-1, i64::from))),
        (7, &|_, j| Value::Counter64(status.repositories.get(&j.repository).map_or(0, |r| r.bytes))),
        (8, &|_, j| Value::String(j.reason.clone())),
    ];
    for (col, f) in columns {
        for (i, j) in status.jobs.iter().enumerate() {
            let index = i as u32 + 1;
            out.push((oid(&[2, 1, col, index]), f(index, j)));
        }
    }
    out
}

fn answer(w: &mut impl Write, o: &[u32], v: &Value) -> std::io::Result<()> {
    match v {
        Value::Integer(i) => writeln!(w, "{}\ninteger\n{i}", show(o)),
        // One line: a newline would end the value early.
        Value::String(s) => writeln!(w, "{}\nstring\n{}", show(o), s.replace(['\n', '\r'], " ")),
        Value::Counter64(c) => writeln!(w, "{}\ncounter64\n{c}", show(o)),
    }
}

/// Serve `pass_persist` on `input`/`output` until snmpd closes the pipe. `status` is asked
/// for fresh objects before each request (it may cache).
pub fn serve(
    base: &[u32],
    input: impl BufRead,
    mut output: impl Write,
    mut status: impl FnMut() -> Status,
) -> std::io::Result<()> {
    let mut lines = input.lines();
    while let Some(cmd) = lines.next() {
        let cmd = cmd?;
        match cmd.trim().to_ascii_lowercase().as_str() {
            "" => continue,
            "ping" => writeln!(output, "PONG")?,
            c @ ("get" | "getnext") => {
                let Some(req) = lines.next().transpose()? else { break };
                let objs = objects(base, &status());
                let found = parse_oid(&req).and_then(|o| {
                    if c == "get" {
                        objs.iter().find(|(k, _)| *k == o)
                    } else {
                        objs.iter().find(|(k, _)| *k > o)
                    }
                });
                match found {
                    Some((k, v)) => answer(&mut output, k, v)?,
                    None => writeln!(output, "NONE")?,
                }
            }
            "set" => {
                // The OID and the value follow; nothing here is writable.
                let _ = lines.next();
                let _ = lines.next();
                writeln!(output, "not-writable")?;
            }
            _ => writeln!(output, "NONE")?,
        }
        output.flush()?;
    }
    Ok(())
}
