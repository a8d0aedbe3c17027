//! `arca config` (check the config file of repositories and jobs) and `arca run` (run them).

use crate::cli::{Cli, ConfigCommand};
use crate::output::Output;
use anyhow::Result;
use arca_jobs::config::{default_path, Config};

pub fn run(cli: &Cli, out: &Output, c: &ConfigCommand) -> Result<i32> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    match c {
        ConfigCommand::Path => {
            if out.json {
                out.json_doc(&serde_json::json!({"config": file, "exists": file.exists()}));
            } else {
                out.line(file.display().to_string());
            }
        }
        ConfigCommand::Check => {
            let config = Config::load(&file)?;
            // What `arca run` would refuse (a path that is not UTF-8, options a copy cannot
            // honour) is refused here too.
            for name in config.jobs.keys() {
                arca_jobs::plan(&config, name)?;
            }
            if out.json {
                let repositories: Vec<_> = config
                    .repositories
                    .iter()
                    .map(|(name, r)| serde_json::json!({"name": name, "url": r.url}))
                    .collect();
                let jobs: Vec<_> = config
                    .jobs
                    .iter()
                    .map(|(name, j)| {
                        serde_json::json!({
                            "name": name,
                            "repository": j.repository.get_ref(),
                            "paths": j.all_sources().iter().flat_map(|s| s.snapshot_paths()).collect::<Vec<_>>(),
                            "replicas": j.replicas.iter().map(|r| r.repository.get_ref()).collect::<Vec<_>>(),
                            "schedule": j.schedule.as_ref().map(|s| s.get_ref()),
                        })
                    })
                    .collect();
                out.json_doc(&serde_json::json!({"config": file, "repositories": repositories, "jobs": jobs}));
            } else {
                out.info(format!(
                    "{}: {}, {}",
                    file.display(),
                    crate::text::count(config.repositories.len() as u64, "repository", "repositories"),
                    crate::text::count(config.jobs.len() as u64, "job", "jobs")
                ));
                for (name, r) in &config.repositories {
                    out.line(format!("repository {name}: {}", r.url));
                }
                for (name, j) in &config.jobs {
                    let replicas: Vec<&str> = j.replicas.iter().map(|r| r.repository.get_ref().as_str()).collect();
                    out.line(format!(
                        "job {name}: {} → {}{}{}",
                        j.all_sources()
                            .iter()
                            .flat_map(|s| s.snapshot_paths())
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                        j.repository.get_ref(),
                        if replicas.is_empty() { String::new() } else { format!(", replicas {}", replicas.join(", ")) },
                        j.schedule.as_ref().map(|s| format!(", {}", s.get_ref())).unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
