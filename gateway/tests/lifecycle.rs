//! The `iax2-gateway` binary's life: READY to systemd, the drain on
//! SIGTERM (new calls refused with cause 42, live calls relayed until they
//! end or the deadline passes), SIGINT or a second SIGTERM cutting the
//! drain short, SIGHUP caught, and the log format.
//!
//! Each test runs the real binary on a free loopback port between two
//! fake PBXs (raw UDP sockets speaking hand-built IAX2 frames), with a
//! `NOTIFY_SOCKET` the test listens on, and knows the gateway is ready
//! when it says `READY=1` there. Waits are bounded; no test measures
//! speed.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{cn, free_port, iax, pbx, recv, text, wait_within};
use trunk_core::wire::{
    CallNumber, ControlSubclass, FrameType, FullFrame, FullFramePayload, FullFrameRepr,
    IaxSubclass, Ie, IeBlock, IeList, IeLookup, IeType, MiniFrame, MiniFrameRepr, SeqNo, Subclass,
    Timestamp16,
};

/// A path in the temp dir unique to this process and call.
fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("iax2-gw-life-{}-{n}-{name}", std::process::id()))
}

/// A gateway between PBX A and PBX B (no trunk: the calls' own frames go
/// through), routing A's calls to B and B's to A. `extra` holds more
/// top-level keys.
fn config(port: u16, a: SocketAddr, b: SocketAddr, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}
workers: 2
admin:
  listen: none
{extra}
peers:
  pbx-a:
    host: {a}
    kind: pbx
  pbx-b:
    host: {b}
    kind: pbx
routes:
  - from: pbx-a
    to: pbx-b
  - from: pbx-b
    to: pbx-a
"
    )
}

/// The running binary, its config file and the socket standing in for
/// systemd's.
struct Gateway {
    child: Option<Child>,
    addr: SocketAddr,
    notify: UnixDatagram,
    files: [PathBuf; 2],
}

impl Gateway {
    /// Runs `iax2-gateway run` on `yaml` (listening on `port`) with `args`
    /// after it, and waits for READY=1.
    fn spawn(port: u16, yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let file = temp_path("gw.yaml");
        std::fs::write(&file, yaml).unwrap();
        let sock_path = temp_path("notify.sock");
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iax2-gateway"));
        cmd.args(["run", "--config"])
            .arg(&file)
            .args(args)
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut gw = Self {
            child: Some(cmd.spawn().unwrap()),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            notify,
            files: [file, sock_path],
        };
        let ready = gw.notified(Duration::from_secs(20));
        assert!(ready.contains("READY=1"), "{ready:?}");
        gw
    }

    /// The next message to the notify socket; panics after `limit`, or if
    /// the gateway exits first.
    fn notified(&mut self, limit: Duration) -> String {
        let end = Instant::now() + limit;
        let mut buf = [0; 1024];
        loop {
            match self.notify.recv(&mut buf) {
                Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                ),
            }
            if self.child().try_wait().unwrap().is_some() {
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!("the gateway exited: {}", text(&out.stderr));
            }
            assert!(
                Instant::now() < end,
                "no sd_notify message within {limit:?}"
            );
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().unwrap()
    }

    fn signal(&mut self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child().id()).unwrap();
        // SAFETY: kill(2) on a child this test spawned and has not waited
        // for, so the pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM, then the STOPPING=1 that says the drain has begun.
    fn start_drain(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let msg = self.notified(Duration::from_secs(10));
        assert!(msg.contains("STOPPING=1"), "{msg:?}");
        msg
    }

    fn running(&mut self) -> bool {
        self.child().try_wait().unwrap().is_none()
    }

    /// Waits for the exit up to `limit` (kills the gateway and fails after
    /// it); returns the output and how long the wait took.
    fn exit_within(&mut self, limit: Duration) -> (Output, Duration) {
        wait_within(self.child.take().unwrap(), limit)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The two PBXs around a gateway.
struct Pbxs {
    a: UdpSocket,
    b: UdpSocket,
}

/// A call through the gateway: the call numbers each side uses.
#[derive(Clone, Copy, Debug)]
struct Call {
    /// PBX A's own number, and the gateway's toward A.
    a: u16,
    a_sees: u16,
    /// PBX B's own number, and the gateway's toward B.
    b: u16,
    b_sees: u16,
}

fn new_frame(src: u16) -> Vec<u8> {
    let ies = IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, "600").unwrap());
    iax(src, 0, 3, 0, 0, IaxSubclass::New, ies)
}

fn mini(src: u16, ts: u16, byte: u8) -> Vec<u8> {
    let repr = MiniFrameRepr {
        source_call_number: cn(src),
        timestamp: Timestamp16(ts),
        payload: vec![byte; 160],
    };
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

impl Pbxs {
    /// The gateway's configuration for these two PBXs (see `config`).
    fn config(&self, port: u16, extra: &str) -> String {
        config(
            port,
            self.a.local_addr().unwrap(),
            self.b.local_addr().unwrap(),
            extra,
        )
    }

    fn new() -> Self {
        Self { a: pbx(), b: pbx() }
    }

    /// Sets up call `k` from A: NEW, ACCEPT, ANSWER, each seen arriving at
    /// the far PBX from the gateway.
    fn call(&self, gw: SocketAddr, k: u16) -> Call {
        let (a, b) = (100 + k, 200 + k);
        self.a.send_to(&new_frame(a), gw).unwrap();
        let (from, at_b) = recv(&self.b);
        assert_eq!(from, gw);
        let f = FullFrame::new_checked(&at_b[..]).unwrap();
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
        let b_sees = f.source_call_number().get();

        let accept = iax(b, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new());
        self.b.send_to(&accept, gw).unwrap();
        let (_, at_a) = recv(&self.a);
        let f = FullFrame::new_checked(&at_a[..]).unwrap();
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::Accept));
        assert_eq!(f.dest_call_number(), cn(a));
        let a_sees = f.source_call_number().get();

        let answer = FullFrameRepr {
            source_call_number: cn(b),
            retransmission: false,
            dest_call_number: cn(b_sees),
            timestamp: 20,
            oseqno: SeqNo(1),
            iseqno: SeqNo(1),
            frame_type: FrameType::Control,
            subclass: Subclass(ControlSubclass::Answer.code()),
            payload: FullFramePayload::Raw(vec![]),
        };
        self.b.send_to(&answer.to_vec(), gw).unwrap();
        let (_, at_a) = recv(&self.a);
        let f = FullFrame::new_checked(&at_a[..]).unwrap();
        assert_eq!(f.frame_type(), FrameType::Control);
        assert_eq!(f.dest_call_number(), cn(a));
        Call {
            a,
            a_sees,
            b,
            b_sees,
        }
    }

    /// A voice frame from A reaches B, and one from B reaches A.
    fn voice_both_ways(&self, gw: SocketAddr, call: Call, ts: u16) {
        self.a.send_to(&mini(call.a, ts, 0xa5), gw).unwrap();
        let (from, got) = recv(&self.b);
        let m = MiniFrame::new_checked(&got[..]).unwrap();
        assert_eq!(
            (from, m.source_call_number(), m.timestamp()),
            (gw, cn(call.b_sees), Timestamp16(ts))
        );
        assert_eq!(m.payload(), &[0xa5; 160][..]);
        self.b.send_to(&mini(call.b, ts, 0x5a), gw).unwrap();
        let (_, got) = recv(&self.a);
        let m = MiniFrame::new_checked(&got[..]).unwrap();
        assert_eq!(m.source_call_number(), cn(call.a_sees));
    }

    /// A hangs up; B receives the HANGUP and ACKs it; A receives the ACK.
    fn hang_up(&self, gw: SocketAddr, call: Call) {
        let hangup = iax(
            call.a,
            call.a_sees,
            5000,
            1,
            2,
            IaxSubclass::Hangup,
            IeList::new(),
        );
        self.a.send_to(&hangup, gw).unwrap();
        let (_, at_b) = recv(&self.b);
        let f = FullFrame::new_checked(&at_b[..]).unwrap();
        assert_eq!(
            (f.iax_subclass(), f.dest_call_number()),
            (Some(IaxSubclass::Hangup), cn(call.b))
        );
        let ack = iax(
            call.b,
            call.b_sees,
            5000,
            2,
            2,
            IaxSubclass::Ack,
            IeList::new(),
        );
        self.b.send_to(&ack, gw).unwrap();
        let (_, at_a) = recv(&self.a);
        let f = FullFrame::new_checked(&at_a[..]).unwrap();
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::Ack));
    }

    /// A NEW from A with call number `src` draws a REJECT with cause 42,
    /// straight from the gateway, and nothing reaches B.
    fn refused(&self, gw: SocketAddr, src: u16) {
        self.a.send_to(&new_frame(src), gw).unwrap();
        let (from, got) = recv(&self.a);
        let f = FullFrame::new_checked(&got[..]).unwrap();
        assert_eq!((from, f.iax_subclass()), (gw, Some(IaxSubclass::Reject)));
        assert_eq!(
            (f.source_call_number(), f.dest_call_number()),
            (CallNumber::STATELESS, cn(src)),
            "a stateless reply"
        );
        let ies = IeBlock::new_checked(f.payload()).unwrap();
        assert_eq!(ies.causecode(), Ok(Some(42)));
        self.b
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0; 1500];
        assert!(self.b.recv_from(&mut buf).is_err(), "nothing reached B");
        self.b
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
}

#[test]
fn sigterm_refuses_new_calls_relays_live_ones_and_exits_once_they_end() {
    let pbxs = Pbxs::new();
    let port = free_port();
    let yaml = pbxs.config(port, "timeouts:\n  hangup_linger: 1\n  drain: 30");
    let mut gw = Gateway::spawn(port, &yaml, &[], &[]);
    let addr = gw.addr;
    let calls: Vec<Call> = (0..3).map(|k| pbxs.call(addr, k)).collect();
    for &c in &calls {
        pbxs.voice_both_ways(addr, c, 100);
    }

    let stopping = gw.start_drain();
    assert!(stopping.contains("STATUS=draining 3 calls"), "{stopping:?}");
    // A new call is refused, cause 42, before and after the live calls
    // have carried more voice.
    pbxs.refused(addr, 150);
    for (i, &c) in calls.iter().enumerate() {
        pbxs.voice_both_ways(addr, c, 120 + 20 * i as u16);
    }
    pbxs.refused(addr, 151);
    // A POKE still goes through (PBXs stay qualified during a drain).
    let poke = iax(300, 0, 7, 0, 0, IaxSubclass::Poke, IeList::new());
    pbxs.a.send_to(&poke, addr).unwrap();
    let (_, at_b) = recv(&pbxs.b);
    assert_eq!(
        FullFrame::new_checked(&at_b[..]).unwrap().iax_subclass(),
        Some(IaxSubclass::Poke)
    );
    // Calls are up: the gateway waits for them.
    std::thread::sleep(Duration::from_millis(500));
    assert!(gw.running(), "the gateway left with calls up");

    // Two calls end; one is still up, and the gateway still waits.
    pbxs.hang_up(addr, calls[0]);
    pbxs.hang_up(addr, calls[1]);
    pbxs.voice_both_ways(addr, calls[2], 400);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(gw.running(), "the gateway left with a call up");
    pbxs.voice_both_ways(addr, calls[2], 420);
    pbxs.hang_up(addr, calls[2]);

    // The last call lingers 1 s, then the drain is complete: well before
    // its 30 s deadline, the gateway exits.
    let (out, _) = gw.exit_within(Duration::from_secs(15));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("draining"), "{err}");
    assert!(err.contains("calls=3"), "{err}");
    assert!(err.contains("deadline_s=30"), "{err}");
    assert!(err.contains("drained: no call left"), "{err}");
    assert!(!err.contains("deadline passed"), "{err}");
    assert!(err.contains("draining=2"), "the two refusals: {err}");
    assert!(err.contains("gateway stopped"), "{err}");
}

#[test]
fn a_call_that_never_ends_is_cut_at_the_drain_deadline() {
    let pbxs = Pbxs::new();
    let port = free_port();
    let yaml = pbxs.config(port, "timeouts:\n  hangup_linger: 1\n  drain: 2");
    let mut gw = Gateway::spawn(port, &yaml, &[], &[]);
    let call = pbxs.call(gw.addr, 0);
    let begun = Instant::now();
    gw.start_drain();
    pbxs.voice_both_ways(gw.addr, call, 100);
    let (out, _) = gw.exit_within(Duration::from_secs(15));
    let waited = begun.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // It waited for the call up to the deadline, no less.
    assert!(
        waited >= Duration::from_secs(2),
        "left after {waited:?}: {err}"
    );
    assert!(err.contains("drain deadline passed"), "{err}");
    assert!(err.contains("calls_left=1"), "{err}");
    assert!(!err.contains("drained: no call left"), "{err}");
}

#[test]
fn sigint_or_a_second_sigterm_during_a_drain_stops_at_once() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let pbxs = Pbxs::new();
        let port = free_port();
        let yaml = pbxs.config(port, "timeouts:\n  drain: 600");
        let mut gw = Gateway::spawn(port, &yaml, &[], &[]);
        pbxs.call(gw.addr, 0);
        gw.start_drain();
        // Still draining: the call keeps it waiting.
        std::thread::sleep(Duration::from_millis(300));
        assert!(gw.running(), "{name}");
        gw.signal(signal);
        let (out, _) = gw.exit_within(Duration::from_secs(10));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        assert!(err.contains("drain cut short"), "{name}: {err}");
        assert!(err.contains("drain interrupted"), "{name}: {err}");
        assert!(err.contains(&format!("signal=\"{name}\"")), "{name}: {err}");
    }
}

#[test]
fn sigint_stops_at_once_without_a_drain() {
    let pbxs = Pbxs::new();
    let port = free_port();
    let yaml = pbxs.config(port, "timeouts:\n  drain: 600");
    let mut gw = Gateway::spawn(port, &yaml, &[], &[]);
    pbxs.call(gw.addr, 0);
    gw.signal(libc::SIGINT);
    let (out, _) = gw.exit_within(Duration::from_secs(10));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("SIGINT"), "{err}");
    assert!(!err.contains("draining"), "{err}");
    assert!(err.contains("gateway stopped"), "{err}");
}

#[test]
fn systemd_hears_ready_then_stopping() {
    let pbxs = Pbxs::new();
    let port = free_port();
    let yaml = pbxs.config(port, "");
    // Gateway::spawn has checked READY=1; see the whole first message.
    let file = temp_path("notify.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let sock_path = temp_path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_iax2-gateway"))
        .args(["run", "--config"])
        .arg(&file)
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gw = Gateway {
        child: Some(child),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        notify: sock,
        files: [file, sock_path],
    };
    let mut buf = [0; 1024];
    let n = gw.notify.recv(&mut buf).unwrap();
    let ready = text(&buf[..n]);
    assert_eq!(ready, "READY=1\nSTATUS=relaying, 2 workers\n");
    // Ready means relaying: a call goes through at once.
    pbxs.call(gw.addr, 0);
    let n = {
        gw.signal(libc::SIGTERM);
        gw.notify.recv(&mut buf).unwrap()
    };
    assert_eq!(text(&buf[..n]), "STOPPING=1\nSTATUS=draining 1 calls\n");
    gw.signal(libc::SIGINT);
    let (out, _) = gw.exit_within(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn sighup_reloads_the_file_and_a_broken_one_changes_nothing() {
    let pbxs = Pbxs::new();
    let port = free_port();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (a, b) = (pbxs.a.local_addr().unwrap(), pbxs.b.local_addr().unwrap());
    let yaml = config(port, a, b, "").replace(
        "admin:\n  listen: none",
        &format!("admin:\n  listen: {admin}"),
    );
    let mut gw = Gateway::spawn(port, &yaml, &[], &[]);
    let call = pbxs.call(gw.addr, 0);
    let bin = env!("CARGO_BIN_EXE_iax2-gateway");
    let admin_arg = admin.to_string();

    // A file that does not validate: refused, the running one stays.
    std::fs::write(&gw.files[0], yaml.replace("kind: pbx", "kind: pbxx")).unwrap();
    gw.signal(libc::SIGHUP);
    let msg = gw.notified(Duration::from_secs(10));
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg:?}");
    assert!(gw.notified(Duration::from_secs(10)).contains("READY=1"));
    assert!(gw.running());
    pbxs.voice_both_ways(gw.addr, call, 100);

    // A good file adding a peer, through `iax2-gateway reload`.
    let with_c = yaml.replace(
        "routes:\n",
        "  pbx-c:\n    host: 127.0.0.1:9\n    kind: pbx\nroutes:\n  - from: pbx-c\n    to: pbx-b\n",
    );
    std::fs::write(&gw.files[0], &with_c).unwrap();
    let out = Command::new(bin)
        .args(["reload", "--admin", &admin_arg])
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(report.contains("peers added: pbx-c"), "{report}");
    assert!(report.contains("routes (new calls)"), "{report}");
    assert!(gw.notified(Duration::from_secs(10)).contains("RELOADING=1"));
    assert!(gw.notified(Duration::from_secs(10)).contains("READY=1"));
    // The live call goes on; a new one too.
    pbxs.voice_both_ways(gw.addr, call, 200);
    pbxs.call(gw.addr, 1);

    // `status` shows the new peer and the calls; the metrics count both
    // reloads.
    let out = Command::new(bin)
        .args(["status", "--admin", &admin_arg])
        .output()
        .unwrap();
    let tables = text(&out.stdout);
    assert!(out.status.success() && tables.contains("pbx-c"), "{tables}");
    assert!(tables.contains("Calls (2)"), "{tables}");
    let out = Command::new(bin)
        .args(["status", "--json", "--admin", &admin_arg])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["peers"].as_array().unwrap().len(), 3, "{doc}");
    let metrics = iax2_gateway::admin::client::get(admin, "/metrics").unwrap();
    for line in [
        "iax2_gateway_config_reloads_total{result=\"ok\"} 1",
        "iax2_gateway_config_reloads_total{result=\"error\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    gw.signal(libc::SIGINT);
    let (out, _) = gw.exit_within(Duration::from_secs(10));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The refusal names the file, line and column, as check-config does.
    assert!(err.contains("configuration NOT reloaded"), "{err}");
    assert!(err.contains("gw.yaml:"), "{err}");
    assert!(err.contains("peers added: pbx-c"), "{err}");
}

/// Every stderr line of a run as a JSON object.
fn json_lines(stderr: &[u8]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    text(stderr)
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object: {line:?} ({other:?})"),
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let pbxs = Pbxs::new();
    let (a, b) = (pbxs.a.local_addr().unwrap(), pbxs.b.local_addr().unwrap());
    // From the command line over the file's `human`, and from the file.
    let runs = [
        (
            config(free_port(), a, b, "log:\n  format: human"),
            vec!["--log-format", "json"],
        ),
        (config(free_port(), a, b, "log: {format: json}"), vec![]),
    ];
    for (yaml, args) in runs {
        let port = yaml
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        let mut gw = Gateway::spawn(port, &yaml, &args, &[]);
        gw.start_drain();
        let (out, _) = gw.exit_within(Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let lines = json_lines(&out.stderr);
        let message = |m: &str| {
            lines
                .iter()
                .find(|l| l.get("message").and_then(|v| v.as_str()) == Some(m))
                .unwrap_or_else(|| panic!("no {m:?} in {lines:?}"))
                .clone()
        };
        let started = message("gateway started");
        assert_eq!(started["level"], "INFO");
        assert_eq!(started["workers"], 2);
        assert!(started.contains_key("timestamp"), "{started:?}");
        let draining = message("draining: new calls are refused until the calls in progress end");
        assert_eq!(draining["calls"], 0);
        assert_eq!(draining["deadline_s"], 60);
        message("gateway stopped");
    }
}

#[test]
fn the_log_level_comes_from_the_file_and_rust_log_overrides_it() {
    let pbxs = Pbxs::new();
    let (a, b) = (pbxs.a.local_addr().unwrap(), pbxs.b.local_addr().unwrap());
    let run = |level: &str, env: &[(&str, &str)]| {
        let port = free_port();
        let yaml = config(port, a, b, &format!("log:\n  level: {level}"));
        let mut gw = Gateway::spawn(port, &yaml, &[], env);
        // A reload of a file that does not validate logs an error.
        std::fs::write(&gw.files[0], yaml.replace("kind: pbx", "kind: pbxx")).unwrap();
        gw.signal(libc::SIGHUP);
        assert!(gw.notified(Duration::from_secs(10)).contains("RELOADING=1"));
        assert!(gw.notified(Duration::from_secs(10)).contains("READY=1"));
        gw.start_drain();
        let (out, _) = gw.exit_within(Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    // warn: the reload error, no info line.
    let err = run("warn", &[]);
    assert!(err.contains("configuration NOT reloaded"), "{err}");
    assert!(!err.contains("gateway started"), "{err}");
    // error: the reload error alone.
    let err = run("error", &[]);
    assert!(err.contains("configuration NOT reloaded"), "{err}");
    assert!(
        !err.contains("WARN") && !err.contains("gateway started"),
        "{err}"
    );
    // RUST_LOG wins over the file.
    let err = run("error", &[("RUST_LOG", "info")]);
    assert!(err.contains("gateway started"), "{err}");
    // A RUST_LOG that does not parse is ignored, with a warning.
    let err = run("info", &[("RUST_LOG", "info,[")]);
    assert!(err.contains("RUST_LOG ignored"), "{err}");
    assert!(err.contains("gateway started"), "{err}");
}
