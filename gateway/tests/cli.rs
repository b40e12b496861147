//! The `iax2-gateway` binary: `check-config` on good and bad files, and
//! `run` stopping cleanly on SIGTERM.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{free_port, text, wait_within};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iax2-gateway"))
}

/// A file in the temp dir, unique to this process and call, removed on
/// drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("iax2-gw-cli-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(listen_port: u16) -> String {
    format!(
        "listen: 127.0.0.1:{listen_port}
workers: 2
peers:
  pbx-a:
    host: 127.0.0.1:14570
    kind: pbx
  gw-b:
    host: 127.0.0.1:24569
    kind: gateway
    trunk: true
routes:
  - from: pbx-a
    to: gw-b
  - from: gw-b
    to: pbx-a
"
    )
}

#[test]
fn check_config_accepts_a_good_file() {
    let f = TempFile::new("good.yaml", &config(14569));
    let out = bin().arg("check-config").arg(&f.0).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}: ok (2 peers, 2 routes)\n", f.0.display())
    );
    // The --config spelling works too.
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&f.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn check_config_names_the_bad_line() {
    let bad = config(14569).replace("trunk: true", "trunk: true\n    trunkfreq: 5");
    let f = TempFile::new("bad.yaml", &bad);
    let out = bin().arg("check-config").arg(&f.0).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    let want = format!("{}:11:16: peers.gw-b.trunkfreq:", f.0.display());
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("10 to 1000"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn check_config_reports_a_missing_file() {
    let out = bin()
        .args(["check-config", "/nonexistent/iax2-gw.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("/nonexistent/iax2-gw.yaml:"));
}

#[test]
fn run_exits_2_on_a_bad_config() {
    let f = TempFile::new("bad-run.yaml", "listen: nowhere\n");
    let out = bin().args(["run", "--config"]).arg(&f.0).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&*f.0.display().to_string()));
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let port = free_port();
    let f = TempFile::new("run.yaml", &config(port));
    let child = bin()
        .args(["run", "--config"])
        .arg(&f.0)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the gateway holds its port: a probe bind without
    // SO_REUSEPORT fails once the workers are bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the gateway never bound {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A stranger's datagram goes through the whole loop and is dropped.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.send_to(b"not iax2", ("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid this test spawned and still owns (not yet
    // waited for, so the pid cannot have been reused).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = wait_within(child, Duration::from_secs(10)).0;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("gateway started"), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(err.contains("gateway stopped"), "{err}");
    assert!(err.contains("stranger=1"), "{err}");
    // The port is free again.
    assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok());
}
