//! The config file of repositories and jobs, through the binary.

mod common;
use common::Env;

#[test]
fn config_check_lists_a_good_file_and_names_file_line_and_key_of_a_bad_one() {
    let e = Env::new();
    let file = e.path("arca.toml");
    let good = format!(
        "[repositories.main]\nurl = {:?}\n\n[repositories.nas]\nurl = \"sftp://backup@nas/srv/arca\"\n\n[jobs.home]\nrepository = \"main\"\npaths = [\"/etc\"]\nkeep = {{ daily = 7 }}\nschedule = \"daily\"\n\n[[jobs.home.replicas]]\nrepository = \"nas\"\nkeep = {{ monthly = 6 }}\n",
        e.repo.display().to_string()
    );
    std::fs::write(&file, &good).unwrap();
    let f = file.to_str().unwrap();
    let v = e.json(&["--config", f, "config", "check"]);
    assert_eq!(v["jobs"][0]["name"], "home");
    assert_eq!(v["jobs"][0]["replicas"][0], "nas");
    assert_eq!(v["repositories"].as_array().map(Vec::len), Some(2));
    // ARCA_CONFIG names the file as --config does.
    let text = String::from_utf8(e.cmd(&["config", "check"]).env("ARCA_CONFIG", f).output().unwrap().stdout).unwrap();
    assert!(text.contains("job home: /etc → main, replicas nas, daily"), "{text}");

    std::fs::write(&file, good.replace("monthly = 6", "montly = 6")).unwrap();
    let o = e.run(&["--config", f, "config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{f}:15: jobs.home.replicas.keep.montly: unknown field `montly`")), "{err}");

    let o = e.run(&["--config", "/nonexistent/arca.toml", "config", "check"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the config file /nonexistent/arca.toml"));
}
