//! The `iax2` crate (0.2.2, crates.io) as an independent IAX2 client at
//! site A, through the gateway pair, against the load generator's answerer
//! (registrar and PBX) at site B.
//!
//! The crate is sans-IO (`PbxClient`): the tests drive it with a plain
//! `UdpSocket` bound on loopback, gateway A being its "PBX".
//!
//! # What works
//!
//! - Registration: REGREQ with an empty CALLTOKEN, the re-sent REGREQ with
//!   the token, REGAUTH answered with MD5, REGACK (then `Event::Registered`);
//!   the registrar sees the user at gateway B's address. A wrong secret
//!   gets REGREJ (`Event::RegisterLost`).
//! - Outgoing calls: NEW (u-law only: CAPABILITY = FORMAT = u-law), the
//!   CALLTOKEN challenge, AUTHREQ answered with MD5, ACCEPT, RINGING, ANSWER;
//!   a wrong secret gets REJECT cause 50.
//! - Voice both ways (u-law, 160 bytes per 20 ms): the first frame full,
//!   then mini frames; the answerer's echo comes back byte for byte.
//! - DTMF both ways (the crate sends type-1 DTMF frames; it ACKs the
//!   DTMF_BEGIN our endpoint sends first and reports the type-1 digit).
//! - Incoming calls through the pair: the crate ACCEPTs and rings, answers
//!   on `Command::Answer`, voice flows, a far HANGUP ends the call.
//! - Hangup from either side; both gateways' tables empty afterwards.
//!
//! # What does not, and why
//!
//! - Registration from call number 1. The crate registers from source
//!   call number 1 (`client.rs`: `const CALLNO_REG: u16 = 1`, used by
//!   `Leg::new(CALLNO_REG)` for every REGREQ and its ACKs), the number
//!   Asterisk reserves for its stateless replies and never allocates
//!   (PROTOCOL.md 8.1, 8.3). Asterisk maps frames by the peer's number
//!   whatever it is, so it accepts this; the gateway first dropped such a
//!   REGREQ as malformed, and now relays it (a frame from call 1 is a
//!   stateless reply only when call 1 is not the requester's own number:
//!   `trunk-core/tests/relay.rs`, `a_requester_may_use_call_number_1`).
//!   The client runs unmodified in every test.
//! - Incoming calls are neither authenticated nor challenged with a call
//!   token: `on_incoming_new` ACCEPTs any NEW (with the client's one
//!   format) and rings. It does not recognise a retransmitted NEW either:
//!   each NEW makes a new call leg and a new `Event::Incoming`
//!   (`a_repeated_new_makes_a_second_incoming_call`).
//! - Reliability shortcuts that do not show on loopback: the first full
//!   voice frame is not kept for retransmission, and a VNAK is only ACKed
//!   (the default arm of `on_call_frame`); `hangup` forgets the call right
//!   after sending HANGUP, so a lost HANGUP is never sent again; ACKs carry
//!   the client's own clock instead of the acknowledged frame's timestamp
//!   (`Leg::ack_bytes(self.ts())`; our endpoint releases frames by ISeqno,
//!   so it does not matter here). One millisecond clock serves every call
//!   (`PbxClient::ts`, since the client was created).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use iax2::consts::{frametype, iax, ie};
use iax2::{Command, Config, Event, FullFrame, PbxClient};
use iax2_interop::lab::{Answerer, Local, Pair, SiteSpec};
use iax2_loadtest::endpoint::{media, Codec, EndpointStats, RegistrationStats};
use iax2_loadtest::sim::DynTransmit;
use trunk_core::relay::DropReason;

/// The registered user and its MD5 secret at the registrar.
const USER: &str = "alice";
const SECRET: &str = "pw";

/// Voice frame interval and u-law payload size.
const PTIME: Duration = Duration::from_millis(20);
const FRAME_LEN: usize = 160;

/// Bound on every wait for a signalling step.
const LIMIT: Duration = Duration::from_secs(5);

/// One voice frame the client reported.
#[derive(Debug)]
struct Voice {
    call: u16,
    ulaw: Vec<u8>,
}

/// The crate's client on its own loopback socket, with gateway A as its
/// PBX.
struct Client {
    iax: PbxClient,
    socket: UdpSocket,
    gateway: SocketAddr,
    /// Send every voice frame received back on its call.
    echo: bool,
    /// Every event but voice, in order.
    events: Vec<Event>,
    voice: Vec<Voice>,
    /// Datagrams from anyone but the gateway.
    strangers: u64,
    buf: Vec<u8>,
}

impl Client {
    fn new(socket: UdpSocket, gateway: SocketAddr, secret: &str) -> Self {
        Self {
            iax: PbxClient::new(Config::new("site A", USER, secret)),
            socket,
            gateway,
            echo: false,
            events: Vec::new(),
            voice: Vec::new(),
            strangers: 0,
            buf: vec![0; 4096],
        }
    }

    /// Sends what the client has to send and files its events.
    fn flush(&mut self) {
        while let Some(datagram) = self.iax.poll_transmit() {
            self.socket
                .send_to(&datagram, self.gateway)
                .expect("send to gateway A");
        }
        let mut echoes = Vec::new();
        while let Some(event) = self.iax.poll_event() {
            if let Event::Voice { call, ulaw, .. } = event {
                if self.echo {
                    echoes.push((call, ulaw.clone()));
                }
                self.voice.push(Voice { call, ulaw });
            } else {
                self.events.push(event);
            }
        }
        if !echoes.is_empty() {
            for (call, ulaw) in echoes {
                self.iax
                    .handle_command(Command::SendVoice { call, ulaw }, Instant::now());
            }
            self.flush();
        }
    }

    /// Runs the client (socket, timers) until `deadline`.
    fn pump_until(&mut self, deadline: Instant) {
        loop {
            self.flush();
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wake = self
                .iax
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            let wait = wake
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(10));
            self.socket
                .set_read_timeout(Some(wait))
                .expect("set read timeout");
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) if from == self.gateway => {
                    self.iax.handle_input(&self.buf[..n], Instant::now());
                }
                Ok(_) => self.strangers += 1,
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::ConnectionRefused
                    ),
                    "client socket: {e}"
                ),
            }
            let now = Instant::now();
            if self.iax.poll_timeout().is_some_and(|t| t <= now) {
                self.iax.handle_timeout(now);
            }
        }
    }

    fn pump_for(&mut self, d: Duration) {
        self.pump_until(Instant::now() + d);
    }

    fn command(&mut self, cmd: Command) {
        self.iax.handle_command(cmd, Instant::now());
        self.flush();
    }

    /// Runs the client until an event matching `pred` has come (now or
    /// earlier) and returns it; panics with every event after [`LIMIT`].
    fn wait_event(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let end = Instant::now() + LIMIT;
        loop {
            if let Some(e) = self.events.iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < end,
                "timed out after {LIMIT:?} waiting for {what}; events: {:#?}",
                self.events
            );
            self.pump_for(Duration::from_millis(10));
        }
    }

    /// Runs the client until `ready` (which looks at something else, the
    /// answerer or the gateways) is true.
    fn pump_while_waiting(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let end = Instant::now() + LIMIT;
        while !ready() {
            assert!(
                Instant::now() < end,
                "timed out after {LIMIT:?} waiting for {what}; client events: {:#?}",
                self.events
            );
            self.pump_for(Duration::from_millis(20));
        }
    }

    fn has(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(pred)
    }
}

/// A socket on a free loopback port, for a peer that must be in the
/// configuration before it starts.
fn bind_loopback() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback UDP socket")
}

/// The answerer as a registrar for [`USER`], demanding a call token and
/// MD5 on calls and registrations; `echo` sends voice back instead of
/// generating it.
fn start_answerer(echo: bool) -> Answerer {
    Answerer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), |o| {
        o.users = vec![(USER.into(), SECRET.into())];
        o.secret = Some(SECRET.into());
        o.calltoken = true;
        o.echo = echo;
    })
}

/// The pair: site A has the clients (by name, socket), site B the
/// answerer. Calls from the far side go to the first client.
fn start_pair(clients: &[(&str, &UdpSocket)], answerer: &Answerer) -> (Pair, SiteSpec, SiteSpec) {
    let locals = clients
        .iter()
        .map(|(name, s)| Local::new(name, s.local_addr().expect("client address"), None))
        .collect();
    let site_a = SiteSpec::new(locals);
    let site_b = SiteSpec::new(vec![Local::new("answerer", answerer.addr(), None)]);
    let pair = Pair::start(&site_a, &site_b);
    (pair, site_a, site_b)
}

fn registrar_stats(answerer: &Answerer) -> RegistrationStats {
    answerer
        .group()
        .each(|ep, _, _| ep.registration_stats().clone())
        .into_iter()
        .next()
        .expect("one answerer shard")
}

/// The crate's REGREQ, fed nothing: it comes from call number 1.
#[test]
fn crate_registers_from_call_number_1() {
    let mut c = PbxClient::new(Config::new("x", USER, SECRET));
    c.handle_timeout(Instant::now());
    let regreq = std::iter::from_fn(|| c.poll_transmit())
        .filter_map(|d| FullFrame::decode(&d))
        .find(|f| f.frametype == frametype::IAX && f.subclass == iax::REGREQ)
        .expect("a REGREQ at start");
    assert_eq!((regreq.src_call, regreq.dst_call), (1, 0));
    let token = regreq.ies.iter().find(|i| i.kind == ie::CALLTOKEN);
    assert!(token.is_some_and(|t| t.data.is_empty()), "{regreq:?}");
}

/// A NEW retransmitted by the PBX (R bit set, same source call number)
/// becomes a second call in the crate.
#[test]
fn a_repeated_new_makes_a_second_incoming_call() {
    let mut c = PbxClient::new(Config::new("x", USER, SECRET));
    let now = Instant::now();
    let new = FullFrame::new(
        42,
        0,
        100,
        0,
        0,
        frametype::IAX,
        iax::NEW,
        vec![iax2::Ie::str(ie::CALLED_NUMBER, "7001")],
    )
    .encode();
    let mut again = new.clone();
    again[2] |= 0x80;
    c.handle_input(&new, now);
    c.handle_input(&again, now);
    let incoming = std::iter::from_fn(|| c.poll_event())
        .filter(|e| matches!(e, Event::Incoming { .. }))
        .count();
    assert_eq!(incoming, 2);
    assert_eq!(c.active_calls(), 2);
}

/// The unmodified client: CALLTOKEN, REGAUTH/MD5, REGACK through the pair.
#[test]
fn registers_through_the_pair_with_calltoken_and_md5() {
    let answerer = start_answerer(true);
    let socket = bind_loopback();
    let (pair, site_a, site_b) = start_pair(&[("iax2crate", &socket)], &answerer);
    let mut client = Client::new(socket, site_a.listen, SECRET);

    client.wait_event("Registered", |e| matches!(e, Event::Registered));
    assert!(client.iax.is_registered());
    let registry = answerer.registry();
    assert_eq!(registry.len(), 1, "{registry:?}");
    assert_eq!(registry[0].username, USER);
    assert_eq!(registry[0].addr, site_b.listen, "seen from gateway B");
    assert!(registry[0].refresh > 0);

    let stats = answerer.stats();
    assert_eq!(stats.calltoken_challenges, 1, "{stats:?}");
    assert_eq!((stats.calltoken_rejects, stats.auth_failures), (0, 0));
    let reg = registrar_stats(&answerer);
    assert_eq!((reg.requests, reg.challenges, reg.accepted), (1, 1, 1));
    assert_eq!(reg.rejected, 0, "{reg:?}");

    // The exchange ends with the REGACK, and nothing was dropped.
    client.pump_while_waiting("both gateway tables to empty", || {
        pair.active_calls() == (0, 0)
    });
    let (a, b) = (pair.a.counters(), pair.b.counters());
    assert_eq!(
        a.drops(DropReason::Malformed) + b.total_drops(),
        0,
        "{a:?} {b:?}"
    );
    assert_eq!(client.strangers, 0);
}

/// MD5 is really checked: a wrong secret gets REGREJ, and REJECT cause 50
/// on a call.
#[test]
fn wrong_secret_is_refused_for_registration_and_calls() {
    let answerer = start_answerer(true);
    let socket = bind_loopback();
    let (pair, site_a, _) = start_pair(&[("iax2crate", &socket)], &answerer);
    let mut client = Client::new(socket, site_a.listen, "not-the-secret");

    let lost = client.wait_event("RegisterLost", |e| matches!(e, Event::RegisterLost { .. }));
    assert!(
        matches!(&lost, Event::RegisterLost { reason } if reason.starts_with("REGREJ")),
        "{lost:?}"
    );
    assert!(answerer.registry().is_empty());
    assert_eq!(registrar_stats(&answerer).rejected, 1);

    client.command(Command::Dial {
        number: "200".into(),
    });
    let ended = client.wait_event("the call to end", |e| matches!(e, Event::Ended { .. }));
    assert!(
        matches!(&ended, Event::Ended { reason, .. } if reason == "refused causecode=Some(50)"),
        "{ended:?}"
    );
    assert!(!client.has(|e| matches!(e, Event::Answered { .. })));
    let stats = answerer.stats();
    assert_eq!(stats.auth_failures, 2, "registration and call: {stats:?}");
    assert_eq!((stats.calls_answered, stats.calls_rejected_locally), (0, 1));
    client.pump_while_waiting("both gateway tables to empty", || {
        pair.active_calls() == (0, 0)
    });
}

/// The payloads the client sent, by media sequence number, against the
/// voice it got back on `call`: every frame must be one it sent, byte for
/// byte. Returns (frames, distinct frames).
fn check_echo(client: &Client, call: u16, sent: &[Vec<u8>]) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut n = 0;
    for v in client.voice.iter().filter(|v| v.call == call) {
        let (seq, _) = media::check_payload(&v.ulaw).expect("an intact payload");
        let sent = sent.get(seq as usize).expect("a sequence number we sent");
        assert_eq!(&v.ulaw, sent, "echo of frame {seq}");
        seen.insert(seq);
        n += 1;
    }
    (n, seen.len())
}

/// The unmodified client calls through the pair: call token, MD5, u-law
/// voice both ways (echoed byte for byte), a DTMF digit, its HANGUP.
#[test]
fn calls_the_answerer_with_voice_dtmf_and_hangup() {
    let answerer = start_answerer(true);
    let socket = bind_loopback();
    let (pair, site_a, _) = start_pair(&[("iax2crate", &socket)], &answerer);
    // The client registers meanwhile (from call 1) and calls from 16 up.
    let mut client = Client::new(socket, site_a.listen, SECRET);

    client.command(Command::Dial {
        number: "200".into(),
    });
    let Event::Dialing { call, .. } =
        client.wait_event("Dialing", |e| matches!(e, Event::Dialing { .. }))
    else {
        unreachable!("matched above")
    };
    client.wait_event(
        "Answered",
        |e| matches!(e, Event::Answered { call: c } if *c == call),
    );
    assert!(client.has(|e| matches!(e, Event::Ringing { call: c } if *c == call)));
    let stats = answerer.stats();
    assert_eq!(
        (stats.calls_incoming, stats.calls_answered),
        (1, 1),
        "{stats:?}"
    );
    // The NEW (and the REGREQ the client sent at start) were challenged
    // for a token, then for MD5, and passed both.
    assert_eq!(stats.calltoken_challenges, 2, "{stats:?}");
    assert_eq!((stats.calltoken_rejects, stats.auth_failures), (0, 0));
    assert_eq!((stats.calltoken_rejects, stats.auth_failures), (0, 0));
    let codecs = answerer.group().each(|ep, _, _| {
        ep.call_ids()
            .into_iter()
            .filter_map(|id| ep.call_stats(id).map(|s| s.codec))
            .collect::<Vec<_>>()
    });
    assert_eq!(codecs, vec![vec![Codec::Ulaw]]);

    // 3 s of voice: the answerer's own payloads (sequence number, send
    // time on its clock), which its echo mode sends back unchanged.
    const FRAMES: u32 = 150;
    let mut sent = Vec::new();
    let start = Instant::now();
    let mut next = start;
    for seq in 0..FRAMES {
        client.pump_until(next);
        let payload = media::payload(FRAME_LEN, seq, answerer.group().now());
        sent.push(payload.clone());
        client.command(Command::SendVoice {
            call,
            ulaw: payload,
        });
        if seq == FRAMES / 2 {
            client.command(Command::Dtmf { call, digit: '5' });
        }
        next += PTIME;
    }
    let elapsed = start.elapsed();
    client.pump_for(Duration::from_millis(300));

    let (echoed, distinct) = check_echo(&client, call, &sent);
    let min = FRAMES as usize * 3 / 4;
    assert!(distinct >= min, "{distinct} of {FRAMES} came back");
    assert!(
        echoed <= distinct + 1,
        "{echoed} frames for {distinct} distinct"
    );
    let stats = answerer.stats();
    assert!(stats.voice_received >= min as u64, "{stats:?}");
    assert_eq!(
        (stats.voice_corrupt, stats.voice_dropped),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.dtmf_received, 1, "{stats:?}");
    eprintln!(
        "iax2 crate call: sent {FRAMES} frames in {elapsed:?}, answerer received {}, \
         {echoed} echoed back ({distinct} distinct, {:.1}/s), mean one-way latency {:?} us",
        stats.voice_received,
        distinct as f64 / elapsed.as_secs_f64(),
        stats.latency_mean_us(),
    );

    client.command(Command::Hangup { call });
    assert!(client.has(|e| matches!(e, Event::Ended { call: c, .. } if *c == call)));
    client.pump_while_waiting("the answerer to see the hangup", || {
        let s = answerer.stats();
        s.calls_hung_up_by_peer == 1 && s.active_calls == 0
    });
    assert_eq!(client.iax.active_calls(), 0);
    client.pump_while_waiting("both gateway tables to empty", || {
        pair.active_calls() == (0, 0)
    });
    assert_eq!(answerer.registry().len(), 1, "it registered meanwhile");
    let a = pair.a.counters();
    assert_eq!((a.calls_created, a.calls_ended), (1, 1), "{a:?}");
}

/// A call from site B's endpoint to the (registered) client:
/// it rings, answers, echoes the endpoint's voice, exchanges DTMF, and
/// takes the far HANGUP.
#[test]
fn answers_a_call_from_the_answerer_side() {
    // The answerer generates voice here; the client echoes it.
    let answerer = start_answerer(false);
    let socket = bind_loopback();
    let (pair, site_a, site_b) = start_pair(&[("iax2crate", &socket)], &answerer);
    let mut client = Client::new(socket, site_a.listen, SECRET);
    client.echo = true;
    client.wait_event("Registered", |e| matches!(e, Event::Registered));

    let ids = answerer.group().shards()[0].originate(site_b.listen, "7001", 1);
    assert_eq!(ids.len(), 1);
    let incoming = client.wait_event("Incoming", |e| matches!(e, Event::Incoming { .. }));
    let Event::Incoming { call, from, to } = incoming else {
        unreachable!("matched above")
    };
    assert_eq!((from.as_str(), to.as_str()), ("1000", "7001"));
    assert_eq!(
        client.iax.call_state(call),
        Some(iax2::client::CallState::Ringing)
    );

    client.command(Command::Answer { call });
    assert!(client.has(|e| matches!(e, Event::Answered { call: c } if *c == call)));
    client.pump_while_waiting("the answerer to see the answer", || {
        answerer.stats().calls_answered == 1
    });
    let start = Instant::now();
    client.pump_for(Duration::from_millis(1500));
    client.command(Command::Dtmf { call, digit: '#' });
    // DTMF the other way: DTMF_BEGIN then DTMF from the answerer.
    let sent = answerer.group().each(|ep, now, out| {
        ep.call_ids()
            .into_iter()
            .filter(|&id| ep.send_dtmf(now, id, '7', &mut DynTransmit(out)))
            .count()
    });
    assert_eq!(sent, vec![1]);
    client.pump_for(Duration::from_millis(1500));
    let elapsed = start.elapsed();
    client.wait_event(
        "DTMF 7",
        |e| matches!(e, Event::Dtmf { call: c, digit: '7' } if *c == call),
    );

    // The answerer's voice, intact and in sequence, at about 50 frames/s.
    let mut seqs = Vec::new();
    for v in client.voice.iter().filter(|v| v.call == call) {
        assert_eq!(v.ulaw.len(), FRAME_LEN);
        let (seq, _) = media::check_payload(&v.ulaw).expect("an intact payload");
        seqs.push(seq);
    }
    let expected = (elapsed.as_millis() / PTIME.as_millis()) as usize;
    assert!(
        seqs.len() >= expected * 7 / 10 && seqs.len() <= expected + 25,
        "{} frames in {elapsed:?}",
        seqs.len()
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    client.pump_while_waiting("the answerer to get the client's voice and DTMF", || {
        let s = answerer.stats();
        s.voice_received >= seqs.len() as u64 * 7 / 10 && s.dtmf_received == 1
    });
    let stats: EndpointStats = answerer.stats();
    assert_eq!(
        (stats.voice_corrupt, stats.voice_dropped),
        (0, 0),
        "{stats:?}"
    );
    eprintln!(
        "iax2 crate answering: {} frames received in {elapsed:?} ({:.1}/s), \
         answerer got {} back",
        seqs.len(),
        seqs.len() as f64 / elapsed.as_secs_f64(),
        stats.voice_received,
    );

    // The far end hangs up.
    assert_eq!(answerer.group().hangup_all(16), 1);
    let ended = client.wait_event(
        "Ended",
        |e| matches!(e, Event::Ended { call: c, .. } if *c == call),
    );
    assert!(
        matches!(&ended, Event::Ended { reason, .. } if reason == "hangup by remote"),
        "{ended:?}"
    );
    client.pump_while_waiting("the answerer's HANGUP to be acknowledged", || {
        let s = answerer.stats();
        s.calls_hung_up_locally == 1 && s.active_calls == 0
    });
    client.pump_while_waiting("both gateway tables to empty", || {
        pair.active_calls() == (0, 0)
    });
    let b = pair.b.counters();
    assert_eq!((b.calls_created, b.calls_ended), (1, 1), "{b:?}");
}
