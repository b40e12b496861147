//! The `loadtest` binary: `demo`, `run` against `answer --echo`, and a
//! short `bench`, each checked through its JSON report.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
}

/// Taken by every test: each starts gateways and PBXs that measure loss
/// and latency, so they run one at a time rather than share the cores.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path in the temp dir, unique to this process and call, removed on
/// drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!("loadtest-cli-{}-{n}-{name}", std::process::id())))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.0).unwrap()).unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `v[path...]` as a number; fails the test when missing.
fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = x
            .get(k)
            .unwrap_or_else(|| panic!("missing key {path:?} in {v}"));
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

/// The keys the README promises for `demo` and `run`.
const RUN_KEYS: &[&[&str]] = &[
    &["calls", "attempted"],
    &["calls", "answered"],
    &["calls", "failed"],
    &["media", "sent"],
    &["media", "received"],
    &["media", "lost"],
    &["media", "loss_ratio"],
    &["media", "latency_ms", "p50"],
    &["media", "latency_ms", "p99"],
    &["media", "latency_ms", "max"],
    &["media", "jitter_ms", "p50"],
    &["media", "jitter_ms", "p99"],
    &["setup_ms", "p50"],
    &["setup_ms", "p99"],
    &["wan", "packets"],
    &["wan", "bytes"],
    &["wan", "trunk_frames"],
    &["wan", "trunk_entries"],
];

#[test]
fn demo_carries_every_call_through_the_gateway_pair() {
    let _serial = one_at_a_time();
    let json = TempPath::new("demo.json");
    let out = bin()
        .args(["demo", "--calls", "40", "--duration", "4", "--rate", "100"])
        .args(["--quiet", "--dtmf-every", "1", "--json"])
        .arg(&json.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("answered"), "{stdout}");
    let r = json.json();
    for k in RUN_KEYS {
        num(&r, k);
    }
    assert_eq!(num(&r, &["calls", "attempted"]), 40.0);
    assert_eq!(num(&r, &["calls", "answered"]), 40.0);
    assert_eq!(num(&r, &["calls", "failed"]), 0.0);
    // Both directions, about 3 s of 50 frames/s per call each way.
    let sent = num(&r, &["media", "sent"]);
    assert!(sent > 40.0 * 2.0 * 50.0 * 2.5, "{sent}");
    assert_eq!(num(&r, &["media", "lost"]), 0.0);
    assert_eq!(num(&r, &["media", "received"]), sent);
    // The WAN carried the voice in trunk frames, several calls per frame.
    let (frames, entries) = (
        num(&r, &["wan", "trunk_frames"]),
        num(&r, &["wan", "trunk_entries"]),
    );
    assert!(
        entries >= sent * 0.99,
        "{entries} entries for {sent} frames"
    );
    assert!(entries / frames > 2.0, "{entries} / {frames}");
    assert!(num(&r, &["wan", "packets"]) < sent / 2.0);
    // Each caller sent a digit a second once answered; every one arrived.
    let dtmf = num(&r, &["dtmf", "sent"]);
    assert!(dtmf >= 40.0 * 2.0, "{dtmf}");
    assert_eq!(num(&r, &["dtmf", "received"]), dtmf);
    // Setup went through a call token and MD5 challenge: two round trips.
    assert!(num(&r, &["setup_ms", "p50"]) > 0.0);
    assert!(num(&r, &["media", "latency_ms", "p99"]) > 0.0);
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `loadtest answer` on a free loopback port with `args`, given time to
/// bind; its address.
fn answerer(args: &[&str]) -> (std::process::Child, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = bin()
        .args(["answer", "--listen", &listen])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    (child, listen)
}

/// `loadtest run --target target` with `args`, its JSON report to `json`.
fn run_against(target: &str, args: &[&str], json: &TempPath) -> std::process::Output {
    bin()
        .args([
            "run",
            "--target",
            target,
            "--quiet",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .arg("--json")
        .arg(&json.0)
        .output()
        .unwrap()
}

#[test]
fn run_against_an_echoing_answerer_measures_the_round_trip() {
    let _serial = one_at_a_time();
    let (mut answer, listen) = answerer(&[
        "--echo",
        "--secret",
        "pw",
        "--calltoken",
        "--duration",
        "20",
    ]);
    let json = TempPath::new("run.json");
    let args = ["--calls", "10", "--rate", "50", "--duration", "3"];
    let out = run_against(
        &listen,
        &[&args[..], &["--secret", "pw", "--number", "600"]].concat(),
        &json,
    );
    let _ = answer.kill();
    let _ = answer.wait();
    assert!(out.status.success(), "{out:?}");
    let r = json.json();
    for k in RUN_KEYS {
        num(&r, k);
    }
    assert_eq!(num(&r, &["calls", "answered"]), 10.0);
    // Every frame came back: the echo returns the caller's own frames.
    let (sent, got) = (num(&r, &["media", "sent"]), num(&r, &["media", "received"]));
    assert!(sent > 10.0 * 50.0 * 2.0, "{sent}");
    assert!(got >= sent * 0.95, "{got} of {sent}");
    assert_eq!(num(&r, &["media", "lost"]), 0.0);
    assert_eq!(num(&r, &["media", "corrupt"]), 0.0);
    // No gateways in between: no WAN to count.
    assert_eq!(num(&r, &["wan", "packets"]), 0.0);
}

#[test]
fn wrong_secret_fails_every_call_and_exits_nonzero() {
    let _serial = one_at_a_time();
    let (mut answer, listen) = answerer(&["--secret", "right", "--duration", "20"]);
    let json = TempPath::new("fail.json");
    let args = [
        "--calls",
        "3",
        "--rate",
        "10",
        "--duration",
        "2",
        "--secret",
        "wrong",
    ];
    let out = run_against(&listen, &args, &json);
    let _ = answer.kill();
    let _ = answer.wait();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let r = json.json();
    assert_eq!(num(&r, &["calls", "attempted"]), 3.0);
    assert_eq!(num(&r, &["calls", "failed"]), 3.0);
}

#[test]
fn bench_ramps_both_systems_and_writes_json_and_svg() {
    let _serial = one_at_a_time();
    let json = TempPath::new("bench.json");
    let svg = TempPath::new("bench.svg");
    let out = bin()
        .args([
            "bench",
            "--max-calls",
            "40",
            "--step",
            "20",
            "--window",
            "1",
            "--json",
        ])
        .arg(&json.0)
        .arg("--plot")
        .arg(&svg.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = json.json();
    for side in ["gateway", "baseline"] {
        let steps = r[side]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{side}: {steps:?}");
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(num(s, &["calls"]), 20.0 * (i as f64 + 1.0));
            for k in [
                &["loss_ratio"][..],
                &["latency_ms", "p99"],
                &["packets_per_s"],
                &["cpu_s_per_packet"],
                &["process_rss_bytes"],
            ] {
                num(s, k);
            }
            // 20 or 40 calls, both directions, 50 frames/s each.
            let pps = num(s, &["packets_per_s"]);
            assert!(pps > num(s, &["calls"]) * 2.0 * 50.0 * 0.8, "{side}: {pps}");
        }
        num(&r, &[side, "max_calls"]);
    }
    num(&r, &["ratio"]);
    let plot = std::fs::read_to_string(&svg.0).unwrap();
    assert!(
        plot.starts_with("<svg") || plot.starts_with("<?xml"),
        "{}",
        &plot[..80.min(plot.len())]
    );
    assert!(plot.contains("gateway pair") && plot.contains("bare forwarder pair"));
    assert!(plot.trim_end().ends_with("</svg>"));
}

/// The README's demo at the size the operators' guide quotes: 300 calls
/// for 20 s. Release builds only (scripts/test runs it alone, after the
/// debug suite).
#[test]
#[cfg_attr(debug_assertions, ignore = "release only: 300 calls for 20 s")]
fn readme_demo_300_calls_for_20_seconds() {
    let _serial = one_at_a_time();
    let json = TempPath::new("demo300.json");
    let out = bin()
        .args(["demo", "--calls", "300", "--duration", "20", "--json"])
        .arg(&json.0)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{out:?}");
    let r = json.json();
    assert_eq!(num(&r, &["calls", "answered"]), 300.0);
    assert_eq!(num(&r, &["calls", "failed"]), 0.0);
    assert_eq!(num(&r, &["media", "loss_ratio"]), 0.0);
    assert!(num(&r, &["media", "sent"]) > 300.0 * 2.0 * 50.0 * 18.0);
    let per_frame = num(&r, &["wan", "trunk_entries"]) / num(&r, &["wan", "trunk_frames"]);
    assert!(per_frame >= 6.0, "{per_frame} entries per trunk frame");
    // A digit every 5 s per call by default, every one delivered.
    let dtmf = num(&r, &["dtmf", "sent"]);
    assert!(dtmf >= 300.0 * 3.0, "{dtmf}");
    assert_eq!(num(&r, &["dtmf", "received"]), dtmf);
}

#[test]
fn answer_is_a_registrar_for_its_users() {
    use iax2_loadtest::driver::{spawn_udp, DriverConfig};
    use iax2_loadtest::endpoint::RegistrationState;
    use iax2_loadtest::{Endpoint, EndpointConfig};
    let _serial = one_at_a_time();
    let (answer, listen) = answerer(&[
        "--duration",
        "3",
        "--user",
        "alice:pw1",
        "--user",
        "bob:pw:2",
    ]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let registrant = spawn_udp(
        Endpoint::new(EndpointConfig::new(me, 9)),
        socket,
        DriverConfig::default(),
    )
    .unwrap();
    let registrar = listen.parse().unwrap();
    let ids = registrant
        .with(move |ep, now, out| {
            let mut out = iax2_loadtest::sim::DynTransmit(out);
            [("alice", "pw1"), ("bob", "wrong")]
                .map(|(u, s)| ep.register(now, registrar, u, s, 60, &mut out).unwrap())
        })
        .unwrap();
    let state = |i: usize| {
        let id = ids[i];
        registrant
            .with(move |ep, _, _| ep.registration(id).map(|r| r.state))
            .unwrap()
    };
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while (state(0) == Some(RegistrationState::Registering)
        || state(1) == Some(RegistrationState::Registering))
        && std::time::Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(state(0), Some(RegistrationState::Registered));
    assert_eq!(state(1), Some(RegistrationState::Rejected));
    let apparent = registrant
        .with(move |ep, _, _| ep.registration(ids[0]).and_then(|r| r.apparent_addr))
        .unwrap();
    assert_eq!(apparent, Some(me));
    let out = answer.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("registered: alice at {me} (refresh 60 s)")),
        "{stdout}"
    );
    assert!(!stdout.contains("bob at"), "{stdout}");
}
