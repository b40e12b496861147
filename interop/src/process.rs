//! A gateway as its own `iax2-gateway run` process: for tests that measure
//! what the process costs (resident memory, CPU) or read it from outside
//! only, through its admin listener (`/metrics`, `/healthz`) and `/proc`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use iax2_gateway::admin::client;

use crate::lab::wait_for;

/// The `iax2-gateway` binary of this build: `IAX2_GATEWAY_BIN` if set;
/// else, when the test runs under cargo, the binary as cargo builds it
/// now (so it is never older than the sources), in the profile the test
/// was built in; else the one next to the test's own directory.
pub fn gateway_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("IAX2_GATEWAY_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<test> -> target/<profile>/iax2-gateway
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "iax2-gateway",
            "--bin",
            "iax2-gateway",
        ]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p iax2-gateway failed");
    }
    let bin = profile_dir.join("iax2-gateway");
    assert!(bin.is_file(), "{} is not built", bin.display());
    bin
}

/// `127.0.0.1:port` on a TCP port free at the time of the call.
pub fn free_tcp_addr() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a TCP port");
    l.local_addr().expect("local address")
}

/// A running `iax2-gateway run`, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    /// Its IAX2 listen address.
    pub listen: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
    file: PathBuf,
}

impl GatewayProcess {
    /// Writes `yaml` (whose `listen` is `listen` and `admin.listen` is
    /// `admin`) to a file, runs `bin run --config FILE`, and waits until
    /// `/healthz` says every worker runs.
    pub fn spawn(bin: &PathBuf, yaml: &str, listen: SocketAddr, admin: SocketAddr) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("iax2-gw-proc-{}-{n}.yaml", std::process::id()));
        std::fs::write(&file, yaml).expect("write the gateway's configuration");
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&file)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut gw = Self {
            child,
            listen,
            admin,
            file,
        };
        wait_for("the gateway's /healthz", Duration::from_secs(20), || {
            assert!(
                gw.child.try_wait().ok().flatten().is_none(),
                "the gateway exited:\n{yaml}"
            );
            client::get(admin, "/healthz").is_ok_and(|b| b == "ok\n")
        });
        gw
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the gateway's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// User and system CPU time so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("the gateway's /proc stat");
        // Fields after the command name (which may hold spaces).
        let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // utime and stime are fields 14 and 15 (11 and 12 after state).
        let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        #[allow(clippy::cast_precision_loss)]
        let hz = if hz > 0 { hz as f64 } else { 100.0 };
        ticks / hz
    }

    /// Datagrams the kernel dropped on the gateway's sockets (full
    /// receive buffers): the `drops` column of `/proc/net/udp`.
    pub fn kernel_drops(&self) -> u64 {
        iax2_loadtest::tap::kernel_udp_drops(self.listen).unwrap_or(0)
    }

    /// `/metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&client::get(self.admin, "/metrics").expect("scrape /metrics"))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A sample's labels.
type Labels = BTreeMap<String, String>;

/// One scrape: samples by name, each with its labels.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: BTreeMap<String, Vec<(Labels, f64)>>,
}

impl Metrics {
    /// Parses the text exposition.
    pub fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let Some((head, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(f64::NAN);
            let (name, labels) = match head.split_once('{') {
                None => (head, BTreeMap::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap_or(rest);
                    let labels = rest
                        .split("\",")
                        .filter_map(|kv| kv.split_once("=\""))
                        .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                        .collect();
                    (name, labels)
                }
            };
            samples
                .entry(name.to_owned())
                .or_default()
                .push((labels, value));
        }
        Self { samples }
    }

    /// The sample of `name` with exactly these labels (0 when absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.samples
            .get(name)
            .and_then(|v| v.iter().find(|(l, _)| *l == want))
            .map_or(0, |(_, v)| *v as u64)
    }

    /// `iax2_gateway_drops_total` by reason.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.samples
            .get("iax2_gateway_drops_total")
            .map(|v| {
                v.iter()
                    .filter_map(|(l, x)| l.get("reason").map(|r| (r.clone(), *x as u64)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
