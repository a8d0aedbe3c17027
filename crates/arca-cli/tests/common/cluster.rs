//! A SeaweedFS cluster for the scale-out tests: one master (replication 001: each volume on
//! two servers), three volume servers, a filer with the S3 gateway, all on 127.0.0.1 with
//! ports of their own, under watchdogs (common::weed::watched). A volume server can be killed
//! and started again.

use super::weed::{watched, KEY, SECRET};
use arca_backends::{S3Options, S3Storage};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub endpoint: String,
    bin: String,
    dir: tempfile::TempDir,
    master: String,
    volumes: Vec<(u16, u16)>,
    children: Vec<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free port P with P + 10000 free too: the filer's S3 gateway reaches the filer's gRPC
/// there whatever `-port.grpc` says.
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < 55000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// The body of a plain HTTP GET to 127.0.0.1:`port` (empty on any failure).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn weed(bin: &str, role: &str) -> Command {
    let mut c = Command::new(bin);
    c.args([role, "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]);
    c
}

impl Cluster {
    /// Start the cluster and wait until its S3 gateway takes a signed request.
    pub fn start() -> Cluster {
        let bin = std::env::var("ARCA_WEED").unwrap_or_else(|_| "/var/tmp/arca-s3v/bin/weed".into());
        assert!(Path::new(&bin).exists(), "SeaweedFS is not installed at {bin} (scripts/test installs it)");
        let dir = tempfile::Builder::new().prefix("arca-cluster-").tempdir_in("/var/tmp").unwrap();
        let (mp, mg) = (free_port(), free_port());
        let master = format!("127.0.0.1:{mp}.{mg}");
        let mut c = Cluster { endpoint: String::new(), bin, master, volumes: vec![], children: vec![], dir };
        let mdir = c.dir.path().join("master");
        std::fs::create_dir_all(&mdir).unwrap();
        let mut m = weed(&c.bin, "master");
        m.arg(format!("-port={mp}"))
            .arg(format!("-port.grpc={mg}"))
            .arg(format!("-mdir={}", mdir.display()))
            .args(["-defaultReplication=001", "-volumeSizeLimitMB=64"]);
        c.spawn(&m, "master");
        // The filer's S3 gateway does not come up if it starts before the master leads.
        let start = Instant::now();
        while !http_get(mp, "/cluster/status").contains("\"IsLeader\":true") {
            assert!(start.elapsed() < Duration::from_secs(60), "the SeaweedFS master did not take the lead");
            std::thread::sleep(Duration::from_millis(200));
        }
        for i in 0..3 {
            c.volumes.push((free_port(), free_port()));
            c.start_volume(i);
        }
        // And not before the volume servers have joined.
        let start = Instant::now();
        while http_get(mp, "/dir/status").matches("\"PublicUrl\"").count() < 3 {
            assert!(start.elapsed() < Duration::from_secs(60), "the SeaweedFS volume servers did not join");
            std::thread::sleep(Duration::from_millis(200));
        }
        let conf = c.dir.path().join("s3.json");
        std::fs::write(
            &conf,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .unwrap();
        let s3 = free_port();
        let fdir = c.dir.path().join("filer");
        std::fs::create_dir_all(&fdir).unwrap();
        let fp = free_pair();
        let mut f = weed(&c.bin, "filer");
        f.arg(format!("-port={fp}"))
            .arg(format!("-port.grpc={}", fp + 10000))
            .arg(format!("-master={}", c.master))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={}", free_port()))
            .arg(format!("-s3.config={}", conf.display()))
            .arg(format!("-defaultStoreDir={}", fdir.display()))
            // Fixed default ports of optional endpoints: off.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"]);
        c.spawn(&f, "filer");
        c.endpoint = format!("http://127.0.0.1:{s3}");
        let start = Instant::now();
        loop {
            let o = S3Options {
                bucket: "arca-probe".into(),
                endpoint: Some(c.endpoint.clone()),
                region: "us-east-1".into(),
                access_key_id: Some(KEY.into()),
                secret_access_key: Some(SECRET.into()),
                ..Default::default()
            };
            if S3Storage::new(&o).and_then(|s| s.ensure_bucket()).is_ok() {
                return c;
            }
            if start.elapsed() > Duration::from_secs(90) {
                let tail = |name: &str| {
                    let t = std::fs::read_to_string(c.dir.path().join(name)).unwrap_or_default();
                    t.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
                };
                panic!("the SeaweedFS cluster did not start:\n{}\n{}", tail("filer.err"), tail("filer.log"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn spawn(&mut self, cmd: &Command, name: &str) {
        let (child, _, _) = watched(cmd, self.dir.path(), name);
        self.children.push(child);
    }

    fn volume_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("volume{i}"))
    }

    /// Start volume server `i` (again: same ports, same data).
    pub fn start_volume(&mut self, i: usize) {
        let (port, grpc) = self.volumes[i];
        std::fs::create_dir_all(self.volume_dir(i)).unwrap();
        let mut v = weed(&self.bin, "volume");
        v.arg(format!("-port={port}"))
            .arg(format!("-port.grpc={grpc}"))
            .arg(format!("-dir={}", self.volume_dir(i).display()))
            .arg(format!("-mserver={}", self.master))
            .arg("-max=50");
        self.spawn(&v, &format!("volume{i}"));
    }

    /// Kill volume server `i` at once (SIGKILL: a node failing, not shutting down).
    pub fn kill_volume(&self, i: usize) {
        let pid_file = self.dir.path().join(format!("volume{i}.pid"));
        let start = Instant::now();
        let pid = loop {
            if let Some(p) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                break p;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "volume server {i} wrote no pid");
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = std::fs::remove_file(&pid_file);
        let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).status();
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        // Gone when its port refuses connections.
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.volumes[i].0)).is_ok() {
            assert!(start.elapsed() < Duration::from_secs(10), "volume server {i} did not die");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
