//! `arca completions` and `arca man`: shell completions and man pages, generated from the
//! same clap definitions as `--help`, so they cannot drift from the program.

use crate::cli::Cli;
use crate::output::Output;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::Path;

pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut script = vec![];
    clap_complete::generate(shell, &mut cmd, "arca", &mut script);
    // Through the one printer, so `arca completions bash | head` ends quietly (141).
    crate::output::stdout_line(String::from_utf8_lossy(&script).trim_end());
    Ok(crate::exit::OK)
}

/// arca.1 and one page per visible command (arca-backup.1, arca-key-add.1, …).
pub fn man_pages(out: &Output, dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = 0u64;
    write_pages(&cmd, "arca", dir, &mut written)?;
    out.info(format!("wrote {} to {}", crate::text::count(written, "man page", "man pages"), dir.display()));
    Ok(crate::exit::OK)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, written: &mut u64) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = vec![];
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_string())
        .render(&mut buf)
        .with_context(|| format!("cannot render {name}.1"))?;
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// `arca cache`: every repository cache with its size and when it was last used;
/// `--cleanup` removes those unused for longer than `--max-age` days.
pub fn cache(cli: &Cli, out: &Output, a: &crate::cli::CacheArgs) -> Result<i32> {
    let root = crate::context::cache_root(cli);
    let mut rows = vec![];
    let entries = match std::fs::read_dir(&root) {
        Ok(rd) => rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot list {}", root.display()))),
    };
    let max_age = std::time::Duration::from_secs(a.max_age.saturating_mul(86_400));
    let mut removed = 0u64;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        // Only arca's own per-repository directories (64 hex digits).
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let age = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).unwrap_or_default();
        let bytes = dir_bytes(&e.path());
        let old = age > max_age;
        if a.cleanup && old {
            std::fs::remove_dir_all(e.path()).with_context(|| format!("cannot remove {}", e.path().display()))?;
            removed += 1;
        }
        rows.push(serde_json::json!({
            "repository_id": name, "bytes": bytes, "unused_days": age.as_secs() / 86_400,
            "removed": a.cleanup && old,
        }));
    }
    if out.json {
        out.json_doc(&rows);
        return Ok(crate::exit::OK);
    }
    for r in &rows {
        out.line(format!(
            "{}  {:>10}  unused for {:>4} days{}",
            &r["repository_id"].as_str().unwrap_or("")[..12],
            crate::text::size(r["bytes"].as_u64().unwrap_or(0)),
            r["unused_days"],
            if r["removed"] == true { "  (removed)" } else { "" }
        ));
    }
    out.info(format!(
        "{} in {}{}",
        crate::text::count(rows.len() as u64, "cache", "caches"),
        root.display(),
        if a.cleanup {
            format!("; removed {}", crate::text::count(removed, "unused one", "unused ones"))
        } else {
            String::new()
        }
    ));
    Ok(crate::exit::OK)
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}
