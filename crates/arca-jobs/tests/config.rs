//! The config file as a user writes it, and the errors a user gets when it is wrong.

use arca_jobs::config::IoClass;
use arca_jobs::{Config, ConfigError};
use arca_repo::check::ReadData;
use std::path::Path;

const GOOD: &str = r#"
[repositories.local]
url = "/srv/arca"
password_file = "/etc/arca/local.pw"

[repositories.offsite]
url = "s3://backups/arca"
password_command = "pass show arca"
limit_upload = "2M"

[jobs.home]
repository = "local"
paths = ["/home", "/etc"]
exclude = ["*.tmp", "/home/*/.cache"]
tags = ["home"]
compression = "auto"
keep = { daily = 7, weekly = 4, within = "2d" }
check = { read_data = "5%", every = "7d" }
schedule = "daily"

[[jobs.home.replicas]]
repository = "offsite"
keep = { monthly = 12 }

[jobs.home.hooks]
before = ["systemctl stop app"]
finally = ["systemctl start app"]
timeout = "10m"

[jobs.home.limits]
nice = 10
ionice = "idle"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/arca/arca.toml"))
}

#[test]
fn a_full_config_reads_into_the_engine_types() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.repositories.len(), 2);
    assert_eq!(c.repositories["offsite"].limit_upload.map(|b| b.0), Some(2 << 20));
    let job = &c.jobs["home"];
    assert_eq!(job.repository.get_ref(), "local");
    let keep = job.keep.as_ref().unwrap();
    assert_eq!((keep.daily, keep.weekly, keep.within.is_some()), (7, 4, true));
    let check = job.check.as_ref().unwrap();
    assert_eq!(check.read_data, ReadData::Percent(5.0));
    assert_eq!(check.every.map(|i| i.0.as_secs()), Some(7 * 86400));
    assert_eq!(job.replicas[0].keep.as_ref().map(|k| k.monthly), Some(12));
    assert_eq!(job.hooks.timeout.map(|t| t.0.as_secs()), Some(600));
    assert_eq!((job.limits.nice.as_ref().map(|n| *n.get_ref()), job.limits.ionice), (Some(10), Some(IoClass::Idle)));
}

/// The error for `text` with `from` replaced by `to`, as its one line.
fn error(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    parse(&GOOD.replacen(from, to, 1)).unwrap_err().to_string()
}

#[test]
fn each_bad_file_gives_one_error_naming_file_line_and_key() {
    let line_of = |needle: &str| GOOD.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        // An unknown key (a typo of another tool's spelling).
        ("weekly = 4", "keep_weekly = 4", line_of("keep = {"), "jobs.home.keep.keep_weekly", "unknown field"),
        // A wrong type.
        ("nice = 10", "nice = \"ten\"", line_of("nice = 10"), "jobs.home.limits.nice", "invalid type"),
        // A bad value of an engine type: the same words as the flag's error.
        (
            "read_data = \"5%\"",
            "read_data = \"150%\"",
            line_of("check = {"),
            "jobs.home.check.read_data",
            "at most 100",
        ),
        ("timeout = \"10m\"", "timeout = \"10 minutes\"", line_of("timeout ="), "jobs.home.hooks.timeout", "duration"),
        // A repository the file does not define.
        (
            "repository = \"offsite\"",
            "repository = \"offiste\"",
            line_of("repository = \"offsite\""),
            "jobs.home.replicas.repository",
            "not defined (defined: local, offsite)",
        ),
        // Out of range.
        ("nice = 10", "nice = 40", line_of("nice = 10"), "jobs.home.limits.nice", "-20 to 19"),
    ];
    for (from, to, line, key, says) in cases {
        let e = error(from, to);
        let want = format!("/etc/arca/arca.toml:{line}: {key}: ");
        assert!(e.starts_with(&want), "{to:?}: wanted {want:?}, got {e:?}");
        assert!(e.contains(says), "{to:?}: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    let e = parse("[jobs.x]\nrepository = \"r\"\npaths = [\"/\"]\n").unwrap_err().to_string();
    assert!(e.contains(":2: jobs.x.repository: ") && e.contains("none is defined"), "{e}");
    let e =
        parse("[repositories.r]\nurl = \"/r\"\n[jobs.x]\nrepository = \"r\"\npaths = []\n").unwrap_err().to_string();
    assert!(e.contains(":5: jobs.x.paths: ") && e.contains("no paths"), "{e}");
    let e = parse("[repositories.r]\nurl = \"/r\"\npassword_env = \"A\"\npassword_file = \"/f\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":1: repositories.r: ") && e.contains("give one of"), "{e}");
    let e = parse("[repositories.r]\nurl = \"/r\"\npassword_env = \"A B\"\n").unwrap_err().to_string();
    assert!(e.contains(":3: repositories.r.password_env: ") && e.contains("not an environment variable name"), "{e}");
    let e = parse("[repositories.r]\npassword_env = \"A\"\n").unwrap_err().to_string();
    assert!(e.contains("repositories.r") && e.contains("missing field `url`"), "{e}");
    let e = parse("[jobs\n").unwrap_err().to_string();
    assert!(e.starts_with("/etc/arca/arca.toml:1: "), "{e}");
}

#[test]
fn an_unreadable_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/arca.toml")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/arca.toml"), "{e}");
}

#[test]
fn a_copy_carries_the_sources_options_and_refuses_two_that_differ() {
    let text = |replica_endpoint: &str| {
        format!(
            "[repositories.cloud]\nurl = \"s3://b/p\"\ns3_endpoint = \"http://minio:9000\"\n\n[repositories.nas]\nurl = \"/srv/nas\"\n{replica_endpoint}\n[jobs.j]\nrepository = \"cloud\"\npaths = [\"/etc\"]\nreplicas = [{{ repository = \"nas\" }}]\n"
        )
    };
    let c = parse(&text("")).unwrap();
    let steps = arca_jobs::plan(&c, "j").unwrap();
    let copy = steps.iter().find(|s| s.command.contains(" copy ")).unwrap();
    assert!(copy.command.contains("--s3-endpoint http://minio:9000"), "{}", copy.command);
    let c = parse(&text("s3_endpoint = \"http://other:9000\"\n")).unwrap();
    let e = arca_jobs::plan(&c, "j").unwrap_err().to_string();
    assert!(e.contains("set different s3_endpoint"), "{e}");
}

/// The example in docs/CONFIG.md is a file that checks, and its jobs plan.
#[test]
fn the_documented_example_reads_and_plans() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md")).unwrap();
    let example = doc.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
    let c = parse(example).unwrap();
    let steps = arca_jobs::plan(&c, "web").unwrap();
    assert_eq!(steps.iter().filter(|s| s.command.contains(" backup ")).count(), 2);
    assert!(steps.iter().any(|s| s.command.contains("copy --from-repo /srv/arca")));
}

#[test]
fn a_jobs_bandwidth_limit_reaches_its_command_lines() {
    let c = parse(
        "[repositories.r]\nurl = \"sftp://nas/arca\"\nlimit_upload = \"4M\"\n\n[jobs.j]\nrepository = \"r\"\npaths = [\"/etc\"]\nkeep = { last = 1 }\nlimits = { limit_upload = \"1M\", limit_download = \"2M\" }\n",
    )
    .unwrap();
    for s in arca_jobs::plan(&c, "j").unwrap() {
        // The lower of the job's and the repository's, in KiB/s as the flag takes it.
        assert!(s.command.contains("--limit-upload 1024 --limit-download 2048"), "{}", s.command);
    }
}

#[test]
fn a_name_that_cannot_name_a_file_is_refused_where_it_stands() {
    let e =
        parse("[repositories.r]\nurl = \"/r\"\n\n[jobs.\"../x\"]\nrepository = \"r\"\npaths = [\"/\"]\n").unwrap_err();
    let e = e.to_string();
    assert!(e.contains("/etc/arca/arca.toml:4:") && e.contains("jobs name \"../x\""), "{e}");
}

#[test]
fn a_jobs_fs_snapshot_reaches_its_file_backups_and_a_bad_method_is_refused() {
    let text = "[repositories.r]\nurl = \"/srv/arca\"\n\n[jobs.j]\nrepository = \"r\"\npaths = [\"/srv/data\"]\nfs_snapshot = \"btrfs\"\n";
    let c = parse(text).unwrap();
    let backup = arca_jobs::plan(&c, "j").unwrap().into_iter().find(|s| s.command.contains(" backup ")).unwrap();
    assert!(backup.command.contains("backup --fs-snapshot --fs-snapshot-method btrfs /srv/data"), "{}", backup.command);
    let e = parse(&text.replace("\"btrfs\"", "\"xfs\"")).unwrap_err().to_string();
    assert!(e.contains(":7: jobs.j.fs_snapshot: ") && e.contains("not one of auto, btrfs, lvm, zfs"), "{e}");
}

#[test]
fn a_system_source_plans_a_description_and_takes_no_paths() {
    let text = "[repositories.r]\nurl = \"/srv/arca\"\n\n[jobs.j]\nrepository = \"r\"\npaths = [\"/\"]\n\n[[jobs.j.sources]]\nsystem = true\n";
    let c = parse(text).unwrap();
    let lines: Vec<String> = arca_jobs::plan(&c, "j").unwrap().into_iter().map(|s| s.command).collect();
    assert!(lines.iter().any(|l| l.ends_with(" backup --system")), "{lines:?}");
    let e = parse(&text.replace("system = true\n", "system = true\npaths = [\"/etc\"]\n")).unwrap_err().to_string();
    assert!(e.contains("takes no paths"), "{e}");
}
