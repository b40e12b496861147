//! Debian's iaxmodem (its own libiax2, spandsp's T.31 fax modem) through
//! the gateway pair.
//!
//! At each site stand a registrar (the loadtest answerer, which also
//! answers calls with MD5) and an iaxmodem, both PBX-side peers of that
//! site's gateway:
//!
//! ```text
//!   modem A     (dialled 1…)           modem B     (dialled 2…)
//!   registrar A (9…, knows modemB)     registrar B (9…, knows modemA)
//!        |                                  |
//!    gateway A ========= trunk ========= gateway B
//! ```
//!
//! The registrar is each site's first route from the far gateway, so a
//! modem's REGREQ (which has no called number) crosses the pair to the
//! registrar at the other site. The test drives each modem's pty with AT
//! commands; a modem connection across the pair exchanges V.21 HDLC
//! frames (with their FCS) and V.29 and V.17 data blocks, which arrive
//! intact only if the relayed audio is intact.
//!
//! iaxmodem must be installed (scripts/install-test-deps) and the tests
//! run as root (iaxmodem refuses otherwise). The tests take turns: each
//! runs two real-time modems, and on a small machine parallel calls
//! would compete for the CPU the modems' timing needs.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use iax2_interop::lab::{wait_for, Answerer, Local, Pair, SiteSpec};
use iax2_interop::modem::{hdlc_fcs, iaxmodem_path, Modem, ResultCode, DLE, ETX};
use iax2_loadtest::endpoint::RegistrationStats;
use trunk_core::relay::CounterSnapshot;

const SECOND: Duration = Duration::from_secs(1);
/// For a command answered at once.
const PROMPT: Duration = Duration::from_secs(2);
/// From ATA to CONNECT: CED (about 3 s), then the V.21 preamble.
const ANSWER: Duration = Duration::from_secs(20);
/// The gateways' tables empty within the 1 s hangup linger and a margin.
const SETTLE: Duration = Duration::from_secs(5);

/// A T.30 DIS-like final frame (address, control with the final bit,
/// FCF, FIF) with a DLE in it, to be stuffed.
const DIS: [u8; 8] = [0xff, 0x13, 0x80, 0x00, 0xce, 0xf4, DLE, 0x55];
/// A DCS-like final frame, the caller's answer.
const DCS: [u8; 7] = [0xff, 0x13, 0x83, 0x00, 0xc6, 0x74, 0x00];

static TURN: Mutex<()> = Mutex::new(());

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("iaxmodem-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` different UDP ports, free on every address when returned (iaxmodem
/// binds the wildcard address).
fn free_ports<const N: usize>() -> [u16; N] {
    let sockets: Vec<UdpSocket> = (0..N)
        .map(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind a free UDP port"))
        .collect();
    std::array::from_fn(|i| sockets[i].local_addr().expect("local address").port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Fields drop in order: modems first (killed), then the registrars and
/// the gateways, then the files, and the turn last.
struct Lab {
    /// At site A, dialled from site B as 1…; registers as modemA.
    a: Modem,
    /// At site B, dialled from site A as 2…; registers as modemB.
    b: Modem,
    /// At site A: the registrar of modemB, answers 9… from site B.
    registrar_a: Answerer,
    /// At site B: the registrar of modemA, answers 9… from site A.
    registrar_b: Answerer,
    pair: Pair,
    gw_a: SocketAddr,
    gw_b: SocketAddr,
    _dir: Scratch,
    _turn: MutexGuard<'static, ()>,
}

impl Lab {
    /// Starts everything; registrar A demands `call_secret_a` for calls
    /// (registrar B demands modemA's secret).
    fn start(tag: &str, call_secret_a: &str) -> Self {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            iaxmodem_path().is_some(),
            "iaxmodem is not installed: run scripts/install-test-deps"
        );
        let dir = Scratch::new(tag);
        let [p_gw_a, p_gw_b, p_a, p_b, p_reg_a, p_reg_b] = free_ports();
        let (gw_a, gw_b) = (loopback(p_gw_a), loopback(p_gw_b));
        let (reg_a, reg_b) = (loopback(p_reg_a), loopback(p_reg_b));
        let mut site_a = SiteSpec::new(vec![
            Local::new("registrar", reg_a, Some("9")),
            Local::new("modem", loopback(p_a), Some("1")),
        ]);
        site_a.listen = gw_a;
        let mut site_b = SiteSpec::new(vec![
            Local::new("registrar", reg_b, Some("9")),
            Local::new("modem", loopback(p_b), Some("2")),
        ]);
        site_b.listen = gw_b;
        let pair = Pair::start(&site_a, &site_b);
        let call_secret_a = call_secret_a.to_owned();
        let registrar_a = Answerer::start(reg_a, move |o| {
            o.users = vec![("modemB".into(), "sekritB".into())];
            o.secret = Some(call_secret_a);
        });
        let registrar_b = Answerer::start(reg_b, |o| {
            o.users = vec![("modemA".into(), "sekritA".into())];
            o.secret = Some("sekritA".into());
        });
        let a = Modem::start(dir.path(), "A", p_a, gw_a, "modemA", "sekritA", "100")
            .expect("start iaxmodem A");
        let b = Modem::start(dir.path(), "B", p_b, gw_b, "modemB", "sekritB", "200")
            .expect("start iaxmodem B");
        Self {
            a,
            b,
            registrar_a,
            registrar_b,
            pair,
            gw_a,
            gw_b,
            _dir: dir,
            _turn: turn,
        }
    }

    /// Both modems registered (through the pair) and in fax class 1.
    fn ready(tag: &str) -> Self {
        let mut lab = Self::start(tag, "sekritB");
        lab.wait_registered();
        for m in [&mut lab.a, &mut lab.b] {
            m.command("AT", ResultCode::Ok, PROMPT).expect("AT");
            // Class 0 has no data modem in iaxmodem; class 1 is T.31.
            m.command("AT+FCLASS=1", ResultCode::Ok, PROMPT)
                .expect("AT+FCLASS=1");
        }
        lab
    }

    fn wait_registered(&self) {
        wait_for("both modems registered", 5 * SECOND, || {
            registered(&self.registrar_b, "modemA").is_some()
                && registered(&self.registrar_a, "modemB").is_some()
                && self.a.logged("Registration completed successfully.")
                && self.b.logged("Registration completed successfully.")
        });
    }

    /// Waits until both gateways' tables are empty; their counters then.
    fn settled(&self) -> (CounterSnapshot, CounterSnapshot) {
        wait_for("both gateways' tables empty", SETTLE, || {
            self.pair.active_calls() == (0, 0)
        });
        (self.pair.a.counters(), self.pair.b.counters())
    }
}

fn registered(registrar: &Answerer, user: &str) -> Option<SocketAddr> {
    registrar
        .registry()
        .into_iter()
        .find(|e| e.username == user)
        .map(|e| e.addr)
}

fn registration_stats(registrar: &Answerer) -> RegistrationStats {
    let mut all = registrar
        .group()
        .each(|ep, _, _| ep.registration_stats().clone())
        .into_iter();
    let mut sum = all.next().unwrap_or_default();
    for s in all {
        sum.requests += s.requests;
        sum.challenges += s.challenges;
        sum.accepted += s.accepted;
        sum.released += s.released;
        sum.rejected += s.rejected;
    }
    sum
}

/// Pseudo-random bytes (xorshift32), starting with the sequences DLE
/// stuffing must get right.
fn block(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    let mut data = vec![DLE, ETX, DLE, DLE, 0x00, DLE];
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.push(x.to_le_bytes()[1]);
    }
    data
}

/// A V.21 HDLC frame from `tx` (in HDLC transmit mode, after its
/// CONNECT) to `rx` (in HDLC receive mode, after its CONNECT on the
/// flags): `rx` must get it with the right FCS, and both must say OK.
fn hdlc_frame(tx: &mut Modem, rx: &mut Modem, frame: &[u8]) {
    tx.write_data(frame, PROMPT).expect("write the frame");
    tx.expect_result(ResultCode::Ok, 5 * SECOND)
        .expect("OK after a final frame is sent");
    let got = rx.read_data(5 * SECOND).expect("the frame");
    let mut want = frame.to_vec();
    want.extend_from_slice(&hdlc_fcs(frame));
    assert_eq!(got, want, "{} got the frame and its FCS", rx.name());
    rx.expect_result(ResultCode::Ok, 5 * SECOND)
        .expect("OK: the frame's FCS was good (ERROR otherwise)");
}

/// A high-speed block: `rx` listens with `AT+FRM=<modulation>`, `tx`
/// sends `data` with `AT+FTM=<modulation>`; `rx` must get exactly `data`
/// (followed only by what the demodulator made of the carrier's end).
fn data_block(tx: &mut Modem, rx: &mut Modem, modulation: u8, data: &[u8]) {
    // Its air time at 7200 bit/s, and a margin.
    let limit = Duration::from_secs(5 + data.len() as u64 * 8 / 7200);
    rx.start_command(&format!("AT+FRM={modulation}"), PROMPT)
        .expect("AT+FRM");
    tx.command(
        &format!("AT+FTM={modulation}"),
        ResultCode::Connect,
        5 * SECOND,
    )
    .expect("CONNECT to AT+FTM");
    tx.write_data(data, limit).expect("write the block");
    rx.expect_result(ResultCode::Connect, 10 * SECOND)
        .unwrap_or_else(|e| panic!("{} trained on +FRM={modulation}: {e}", rx.name()));
    let got = rx.read_data(limit).expect("the block");
    assert!(
        got.len() >= data.len() && got[..data.len()] == *data,
        "+FTM={modulation}: {} got {} bytes, first difference at {:?}",
        rx.name(),
        got.len(),
        got.iter().zip(data).position(|(g, d)| g != d)
    );
    // After the data the transmitter idles on ones until it drops the
    // carrier; the receiver passes on what it demodulates until it notices.
    assert!(
        got.len() - data.len() < 200,
        "+FTM={modulation}: {} trailing bytes",
        got.len() - data.len()
    );
    rx.expect_result(ResultCode::NoCarrier, 5 * SECOND)
        .expect("NO CARRIER at the end of the block");
    // The transmitter's text holds its XOFF/XON flow control.
    tx.expect_result(ResultCode::Ok, limit)
        .expect("OK once the block is sent");
}

/// The caller `caller` dials `number` and `callee` answers: both must
/// report CONNECT (the caller only once it has demodulated the callee's
/// V.21 flags, i.e. audio came through).
fn call(caller: &mut Modem, callee: &mut Modem, number: &str) {
    caller
        .write(format!("ATDT{number}\r").as_bytes(), PROMPT)
        .expect("dial");
    callee
        .expect_result(ResultCode::Ring, 5 * SECOND)
        .expect("RING");
    callee
        .command("ATA", ResultCode::Connect, ANSWER)
        .expect("CONNECT after ATA");
    caller
        .expect_result(ResultCode::Connect, ANSWER)
        .expect("the caller's CONNECT (V.21 flags heard)");
}

/// The caller hangs up while the callee listens for a frame: the callee
/// must report NO CARRIER, and iaxmodem must log the IAX2 HANGUP.
fn hang_up(caller: &mut Modem, callee: &mut Modem) {
    callee.start_command("AT+FRH=3", PROMPT).expect("AT+FRH=3");
    caller
        .command("ATH0", ResultCode::Ok, 5 * SECOND)
        .expect("OK to ATH0");
    callee
        .expect_result(ResultCode::NoCarrier, 5 * SECOND)
        .expect("the callee's NO CARRIER on the far hangup");
    wait_for("the callee to log the HANGUP", PROMPT, || {
        callee.logged("Remote hangup.")
    });
}

/// Counters of a gateway that relayed `calls` calls between a local peer
/// and the far gateway: each created and ended by signalling (none left
/// to a timer), and nothing dropped.
fn assert_clean(site: &str, c: &CounterSnapshot, calls: u64) {
    assert_eq!(c.calls_created, calls, "{site}: calls created {c:?}");
    assert_eq!(c.calls_ended, calls, "{site}: calls ended {c:?}");
    assert_eq!(c.calls_reaped, 0, "{site}: calls reaped {c:?}");
    assert_eq!(c.total_drops(), 0, "{site}: drops {c:?}");
}

/// Both modems register with MD5 at the registrar of the other site,
/// which sees them at that site's gateway; the REGREQ exchanges leave no
/// state in the gateways; SIGTERM makes a modem unregister (REGREL)
/// through the pair.
#[test]
fn modems_register_through_the_pair() {
    let mut lab = Lab::start("register", "sekritB");
    lab.wait_registered();
    assert_eq!(
        registered(&lab.registrar_b, "modemA"),
        Some(lab.gw_b),
        "modemA is at gateway B"
    );
    assert_eq!(
        registered(&lab.registrar_a, "modemB"),
        Some(lab.gw_a),
        "modemB is at gateway A"
    );
    for (site, registrar) in [("A", &lab.registrar_a), ("B", &lab.registrar_b)] {
        let s = registration_stats(registrar);
        assert!(
            s.challenges >= 1 && s.accepted >= 1,
            "registrar {site}: MD5 challenge and REGACK {s:?}"
        );
        assert_eq!(s.rejected, 0, "registrar {site}: {s:?}");
    }
    let (a, b) = lab.settled();
    for (site, c) in [("A", &a), ("B", &b)] {
        assert_eq!(
            c.calls_created, 0,
            "gateway {site}: a REGREQ is no call {c:?}"
        );
        // REGREQ, REGAUTH, REGREQ with MD5, REGACK, ACK: both modems'.
        assert!(
            c.rx_full >= 10 && c.tx_full >= 10,
            "gateway {site} relayed both exchanges {c:?}"
        );
        assert_eq!(c.total_drops(), 0, "gateway {site}: drops {c:?}");
    }

    // iaxmodem exits on SIGTERM only once its REGREL is answered.
    let status = lab
        .a
        .terminate(5 * SECOND)
        .expect("modem A exits after unregistering");
    assert!(lab.a.logged("Terminating on signal 15"), "{status}");
    wait_for("modemA to leave registrar B", PROMPT, || {
        registered(&lab.registrar_b, "modemA").is_none()
    });
    assert_eq!(registration_stats(&lab.registrar_b).released, 1);
    assert!(registered(&lab.registrar_a, "modemB").is_some());
    lab.settled();
}

/// Modem A calls modem B across the pair: RING, answer, CONNECT on both
/// sides, a V.21 HDLC frame with its FCS, a V.29 block from A to B and a
/// V.17 block from B to A compared byte for byte, then A hangs up and B
/// notices. Every voice frame crossed the trunk.
#[test]
fn modem_calls_modem_a_to_b() {
    let mut lab = Lab::ready("a-to-b");
    let Lab { a, b, .. } = &mut lab;
    call(a, b, "200");
    assert!(
        b.logged("Incoming call connected 200, 100, A."),
        "{}",
        b.log()
    );
    // The answering modem sends the first frame (DIS).
    hdlc_frame(b, a, &DIS);
    data_block(a, b, 96, &block(6000, 1));
    // V.17 at 14 400 bit/s, long training.
    data_block(b, a, 145, &block(6000, 2));
    hang_up(a, b);

    let (ca, cb) = lab.settled();
    assert_clean("gateway A", &ca, 1);
    assert_clean("gateway B", &cb, 1);
    // Voice went modem → mini → gateway → trunk entry → far gateway →
    // mini → modem, in both directions, all of it.
    assert!(ca.rx_mini > 500 && cb.rx_mini > 500, "{ca:?}\n{cb:?}");
    assert_eq!(
        ca.tx_trunk_entries, ca.rx_mini,
        "gateway A trunks all of modem A's minis"
    );
    assert_eq!(
        cb.tx_trunk_entries, cb.rx_mini,
        "gateway B trunks all of modem B's minis"
    );
    assert_eq!(cb.rx_trunk_entries, ca.tx_trunk_entries, "A → B entries");
    assert_eq!(ca.rx_trunk_entries, cb.tx_trunk_entries, "B → A entries");
    assert_eq!(
        cb.tx_mini, cb.rx_trunk_entries,
        "gateway B delivers every entry"
    );
    assert_eq!(
        ca.tx_mini, ca.rx_trunk_entries,
        "gateway A delivers every entry"
    );
    assert_eq!(cb.rx_trunk_frames, ca.tx_trunk_frames);
    assert_eq!(ca.rx_trunk_frames, cb.tx_trunk_frames);
}

/// Modem B calls modem A (the other direction): CONNECT, a frame each
/// way in V.21, then B hangs up and A notices.
#[test]
fn modem_calls_modem_b_to_a() {
    let mut lab = Lab::ready("b-to-a");
    let Lab { a, b, .. } = &mut lab;
    call(b, a, "100");
    assert!(
        a.logged("Incoming call connected 100, 200, B."),
        "{}",
        a.log()
    );
    hdlc_frame(a, b, &DIS);
    // The caller answers with a frame of its own.
    a.start_command("AT+FRH=3", PROMPT).expect("AT+FRH=3");
    b.command("AT+FTH=3", ResultCode::Connect, 5 * SECOND)
        .expect("CONNECT to AT+FTH=3");
    a.expect_result(ResultCode::Connect, 5 * SECOND)
        .expect("CONNECT on B's flags");
    hdlc_frame(b, a, &DCS);
    hang_up(b, a);

    let (ca, cb) = lab.settled();
    assert_clean("gateway A", &ca, 1);
    assert_clean("gateway B", &cb, 1);
    assert!(
        ca.tx_trunk_frames > 0 && cb.tx_trunk_frames > 0,
        "{ca:?}\n{cb:?}"
    );
}

/// A modem calls the registrar at the far site (the loadtest answerer),
/// which demands MD5: with the right secret it answers, and counts the
/// modem's hangup; with a wrong one it rejects, and the modem reports
/// NO DIALTONE (iaxmodem's word for a REJECT).
#[test]
fn modems_call_the_far_answerer_with_md5() {
    let mut lab = Lab::start("answerer", "not-sekritB");
    lab.wait_registered();
    for m in [&mut lab.a, &mut lab.b] {
        m.command("AT+FCLASS=1", ResultCode::Ok, PROMPT)
            .expect("AT+FCLASS=1");
    }
    lab.a.write(b"ATDT900\r", PROMPT).expect("dial");
    lab.b.write(b"ATDT900\r", PROMPT).expect("dial");

    // B's secret is not registrar A's: AUTHREP refused, REJECT.
    lab.b
        .expect_result(ResultCode::NoDialtone, 5 * SECOND)
        .expect("B's call rejected");
    assert!(lab.b.logged("Rejected call."), "{}", lab.b.log());
    let sa = lab.registrar_a.stats();
    assert_eq!(
        (sa.auth_failures, sa.calls_answered),
        (1, 0),
        "registrar A {sa:?}"
    );

    // A's is registrar B's: answered.
    wait_for("registrar B to answer modem A", 5 * SECOND, || {
        lab.registrar_b.stats().calls_answered == 1
    });
    wait_for("modem A to hear the answer", PROMPT, || {
        lab.a.logged("Remote answered.")
    });
    assert_eq!(lab.registrar_b.stats().auth_failures, 0);
    // Voice both ways for a while.
    std::thread::sleep(SECOND);
    // The answerer sends no V.21 flags, so A is still waiting for them:
    // any character ends the wait (an empty block, then OK).
    lab.a.write(b"\r", PROMPT).expect("abort the receive");
    lab.a
        .expect_result(ResultCode::Ok, 5 * SECOND)
        .expect("OK to the abort");
    lab.a
        .command("ATH0", ResultCode::Ok, 5 * SECOND)
        .expect("OK to ATH0");
    wait_for("registrar B to see the hangup", SETTLE, || {
        let s = lab.registrar_b.stats();
        s.calls_hung_up_by_peer == 1 && s.active_calls == 0
    });

    let (ca, cb) = lab.settled();
    assert_clean("gateway A", &ca, 2);
    assert_clean("gateway B", &cb, 2);
    // The answerer's voice reached modem A, and modem A's the answerer.
    assert!(ca.tx_mini >= 30 && cb.tx_mini >= 30, "{ca:?}\n{cb:?}");
    assert_eq!(
        cb.tx_mini, ca.tx_trunk_entries,
        "all of modem A's minis delivered"
    );
    assert_eq!(
        ca.tx_mini, cb.tx_trunk_entries,
        "all of the answerer's minis delivered"
    );
}
