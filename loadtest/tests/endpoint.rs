//! Two emulated PBXs wired through the in-memory network with a virtual
//! clock: call set-up with CALLTOKEN and MD5, media, DTMF, text, teardown,
//! rejects, loss recovery, give-up, timestamp wraps and stateless replies.
// Test helpers outside #[test] functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]
#![allow(clippy::wildcard_enum_match_arm)]

use std::net::SocketAddr;
use std::time::Duration;

use iax2_loadtest::sim::{Datagram, SimNet, Verdict};
use iax2_loadtest::{
    md5_response, AnswerMode, CallId, CallState, Codec, EndReason, Endpoint, EndpointConfig, Event,
    FailReason,
};
use trunk_core::time::Instant;
use trunk_core::wire::{
    CallNumber, ControlSubclass, FrameType, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeBlock,
    IeList, IeLookup, IeType, MediaFormat, MiniFrame, SeqNo,
};

const A: &str = "10.0.0.1:4569";
const B: &str = "10.0.0.2:4569";
/// A scripted peer that is not an endpoint (the test sends for it).
const X: &str = "10.0.0.3:4569";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cfg(local: &str, seed: u64) -> EndpointConfig {
    let mut c = EndpointConfig::new(addr(local), seed);
    c.record_media = true;
    c
}

/// Two endpoints, A (caller) and B (callee), and their events.
struct World {
    net: SimNet,
    a: Endpoint,
    b: Endpoint,
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
}

impl World {
    fn new(a: EndpointConfig, b: EndpointConfig) -> Self {
        let mut net = SimNet::new(Instant::from_millis(1_000_000), Duration::from_millis(5));
        net.start_capture();
        Self {
            net,
            a: Endpoint::new(a),
            b: Endpoint::new(b),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.ev_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.ev_b.push(e);
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.net.run_for(d, &mut [&mut self.a, &mut self.b]);
        self.drain();
    }

    /// Runs in 1 ms steps until `pred` holds (at most `limit`); returns
    /// whether it did.
    fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Self) -> bool) -> bool {
        let end = self.net.now() + limit;
        while self.net.now() < end {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(1));
        }
        pred(self)
    }

    fn originate(&mut self, called: &str) -> CallId {
        let now = self.net.now();
        let mut tx = self.net.sender(addr(A));
        self.a.originate(now, addr(B), called, &mut tx).unwrap()
    }

    /// The id of B's side of the call (its only or latest incoming call).
    fn b_call(&self) -> CallId {
        self.ev_b
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::IncomingCall { call, .. } => Some(*call),
                _ => None,
            })
            .expect("B saw an incoming call")
    }

    /// Sets up an answered call; returns (A's id, B's id).
    fn answered_call(&mut self) -> (CallId, CallId) {
        let ca = self.originate("2001");
        assert!(self.run_until(Duration::from_secs(1), |w| {
            w.ev_a.contains(&Event::Answered { call: ca })
        }));
        (ca, self.b_call())
    }
}

fn full(d: &Datagram) -> Option<FullFrame<&[u8]>> {
    FullFrame::new_checked(&d.bytes[..]).ok()
}

fn iax_sub(d: &Datagram) -> Option<IaxSubclass> {
    full(d).and_then(|f| f.iax_subclass())
}

/// The captured datagrams from `from`, with their verdicts dropped.
fn sent_by(cap: &[(Datagram, Verdict)], from: &str) -> Vec<Datagram> {
    cap.iter()
        .filter(|(d, _)| d.from == addr(from))
        .map(|(d, _)| d.clone())
        .collect()
}

#[test]
fn call_with_calltoken_md5_voice_dtmf_text_and_hangup() {
    let mut ca_cfg = cfg(A, 1);
    ca_cfg.secret = Some("s3cret".into());
    ca_cfg.username = "siteA".into();
    let mut cb_cfg = cfg(B, 2);
    cb_cfg.secret = Some("s3cret".into());
    cb_cfg.require_calltoken = true;
    let mut w = World::new(ca_cfg, cb_cfg);

    let ca = w.originate("2001");
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Answered { call: ca })
    }));
    let cb = w.b_call();
    assert!(w.ev_b.contains(&Event::IncomingCall {
        call: cb,
        called: "2001".into(),
        calling: "1000".into(),
        username: "siteA".into(),
    }));
    assert!(w.ev_a.contains(&Event::Accepted {
        call: ca,
        codec: Codec::Ulaw
    }));
    assert!(w.ev_a.contains(&Event::Ringing { call: ca }));
    assert!(w.ev_b.contains(&Event::Answered { call: cb }));

    // The signalling on the wire, in order (PROTOCOL.md 11.1).
    let cap = w.net.take_capture();
    let signalling: Vec<(SocketAddr, Option<IaxSubclass>, Option<ControlSubclass>)> = cap
        .iter()
        .filter_map(|(d, _)| {
            let f = full(d)?;
            (f.frame_type() != FrameType::Voice && f.iax_subclass() != Some(IaxSubclass::Ack))
                .then(|| (d.from, f.iax_subclass(), f.control_subclass()))
        })
        .collect();
    let (a, b) = (addr(A), addr(B));
    assert_eq!(
        signalling,
        vec![
            (a, Some(IaxSubclass::New), None),
            (b, Some(IaxSubclass::CallToken), None),
            (a, Some(IaxSubclass::New), None),
            (b, Some(IaxSubclass::AuthReq), None),
            (a, Some(IaxSubclass::AuthRep), None),
            (b, Some(IaxSubclass::Accept), None),
            (b, None, Some(ControlSubclass::Ringing)),
            (b, None, Some(ControlSubclass::Answer)),
        ]
    );
    let news: Vec<FullFrame<&[u8]>> = cap
        .iter()
        .filter(|(d, _)| iax_sub(d) == Some(IaxSubclass::New))
        .map(|(d, _)| full(d).unwrap())
        .collect();
    let ies0 = IeBlock::new_checked(news[0].payload()).unwrap();
    let ies1 = IeBlock::new_checked(news[1].payload()).unwrap();
    // VERSION first, empty CALLTOKEN last; the re-sent NEW carries the
    // token, the same source number, reset sequence numbers and a new ts.
    assert_eq!(ies0.iter().next().unwrap().ie_type, IeType::Version);
    assert_eq!(ies0.iter().last().unwrap().ie_type, IeType::CallToken);
    assert_eq!(ies0.calltoken(), Some(&[][..]));
    assert_eq!(ies0.format().unwrap(), Some(MediaFormat::ULAW));
    assert_eq!(ies0.called_number().unwrap(), Some("2001"));
    let token = ies1.calltoken().unwrap();
    assert!(!token.is_empty());
    assert_eq!(news[0].source_call_number(), news[1].source_call_number());
    assert_eq!((news[1].oseqno(), news[1].iseqno()), (SeqNo(0), SeqNo(0)));
    assert!(news[1].timestamp() > news[0].timestamp());
    let ct = cap
        .iter()
        .find(|(d, _)| iax_sub(d) == Some(IaxSubclass::CallToken))
        .map(|(d, _)| full(d).unwrap())
        .unwrap();
    assert_eq!(ct.source_call_number(), CallNumber::STATELESS);
    assert_eq!(ct.dest_call_number(), news[0].source_call_number());
    assert_eq!(ct.timestamp(), news[0].timestamp());
    // The MD5 answer matches the challenge.
    let authreq = cap
        .iter()
        .find(|(d, _)| iax_sub(d) == Some(IaxSubclass::AuthReq))
        .map(|(d, _)| full(d).unwrap())
        .unwrap();
    let authrep = cap
        .iter()
        .find(|(d, _)| iax_sub(d) == Some(IaxSubclass::AuthRep))
        .map(|(d, _)| full(d).unwrap())
        .unwrap();
    let challenge = std::str::from_utf8(
        IeBlock::new_checked(authreq.payload())
            .unwrap()
            .challenge()
            .unwrap(),
    )
    .unwrap()
    .to_owned();
    assert_eq!(
        IeBlock::new_checked(authrep.payload())
            .unwrap()
            .md5_result()
            .unwrap(),
        Some(md5_response(&challenge, "s3cret").as_str())
    );
    // No call ever used 0 or 1 as its own number, and A never bound 1.
    let a_stats = w.a.call_stats(ca).unwrap().clone();
    let b_stats = w.b.call_stats(cb).unwrap().clone();
    assert!(a_stats.local_call_number >= 2 && b_stats.local_call_number >= 2);
    assert_eq!(a_stats.peer_call_number, Some(b_stats.local_call_number));
    assert_eq!(b_stats.peer_call_number, Some(a_stats.local_call_number));

    // Ten seconds of voice both ways.
    w.run_for(Duration::from_secs(10));
    for (ep, id) in [(&w.a, ca), (&w.b, cb)] {
        let s = ep.call_stats(id).unwrap();
        assert_eq!(s.state, CallState::Up);
        assert!(s.rx.received >= 499, "received {}", s.rx.received);
        assert_eq!(s.rx.lost(), 0);
        assert_eq!(s.rx.duplicates, 0);
        assert_eq!(s.rx.reordered, 0);
        assert_eq!(s.rx.corrupt, 0);
        assert_eq!(s.rx.dropped, 0);
        assert_eq!(s.voice_full_sent, 1);
        // Same host clock: latency is the network's 5 ms, jitter none.
        assert_eq!(s.rx.latency_min_us, 5_000);
        assert_eq!(s.rx.latency_max_us, 5_000);
        assert!(s.rx.jitter_us < 1.0);
    }

    // DTMF and text both ways.
    let now = w.net.now();
    assert!(w.a.send_dtmf(now, ca, '5', &mut w.net.sender(addr(A))));
    assert!(w
        .b
        .send_text(now, cb, "hello A", &mut w.net.sender(addr(B))));
    assert!(w.b.send_dtmf(now, cb, '#', &mut w.net.sender(addr(B))));
    w.run_for(Duration::from_millis(100));
    assert!(w.ev_b.contains(&Event::Dtmf {
        call: cb,
        digit: '5'
    }));
    assert!(w.ev_a.contains(&Event::Dtmf {
        call: ca,
        digit: '#'
    }));
    assert!(w.ev_a.contains(&Event::Text {
        call: ca,
        text: "hello A".into()
    }));

    // Stop both senders, let the last frames land, and compare every
    // voice frame end to end: payload and full timestamp.
    let now = w.net.now();
    w.a.stop_media(now, ca);
    w.b.stop_media(now, cb);
    w.run_for(Duration::from_millis(100));
    for (tx, tx_id, rx, rx_id) in [(&w.a, ca, &w.b, cb), (&w.b, cb, &w.a, ca)] {
        let sent = tx.sent_media(tx_id).unwrap();
        let got = rx.received_media(rx_id).unwrap();
        assert!(sent.len() > 500);
        assert_eq!(sent, got);
        for pair in sent.windows(2) {
            assert_eq!(pair[1].ts, pair[0].ts + 20);
        }
        assert!(sent.iter().all(|f| f.payload.len() == 160));
    }

    // A hangs up: B sees the cause, both sides release the call.
    let now = w.net.now();
    assert!(w.a.hangup(now, ca, 16, &mut w.net.sender(addr(A))));
    w.run_for(Duration::from_millis(100));
    assert!(w.ev_b.contains(&Event::HungUp {
        call: cb,
        cause_code: 16
    }));
    assert!(w.ev_a.contains(&Event::Ended { call: ca }));
    assert!(w.ev_b.contains(&Event::Ended { call: cb }));
    assert_eq!(w.a.active_calls(), 0);
    assert_eq!(w.b.active_calls(), 0);
    assert_eq!(
        w.a.call_stats(ca).unwrap().end,
        Some(EndReason::HungUpLocally(16))
    );
    assert_eq!(
        w.b.call_stats(cb).unwrap().end,
        Some(EndReason::HungUpByPeer(16))
    );
    let (sa, sb) = (w.a.stats(), w.b.stats());
    assert_eq!(sa.calls_hung_up_locally, 1);
    assert_eq!(sb.calls_hung_up_by_peer, 1);
    assert_eq!(sb.calltoken_challenges, 1);
    assert_eq!(sa.retransmissions + sb.retransmissions, 0);
    assert_eq!(sa.voice_lost + sb.voice_lost, 0);
    assert_eq!(sa.malformed + sb.malformed, 0);
    assert_eq!(sb.invals_sent + sa.invals_sent, 0);
    assert!(w.a.poll_timeout().is_none());
    assert!(w.b.poll_timeout().is_none() || w.b.active_calls() == 0);
}

#[test]
fn callee_hangs_up() {
    let mut w = World::new(cfg(A, 3), cfg(B, 4));
    let (ca, cb) = w.answered_call();
    w.run_for(Duration::from_secs(1));
    let now = w.net.now();
    assert!(w.b.hangup(now, cb, 17, &mut w.net.sender(addr(B))));
    // A second hangup of a call that is ending does nothing.
    assert!(!w.b.hangup(now, cb, 17, &mut w.net.sender(addr(B))));
    w.run_for(Duration::from_millis(100));
    assert!(w.ev_a.contains(&Event::HungUp {
        call: ca,
        cause_code: 17
    }));
    assert_eq!(w.ev_a.last(), Some(&Event::Ended { call: ca }));
    assert_eq!(w.ev_b.last(), Some(&Event::Ended { call: cb }));
    assert_eq!((w.a.active_calls(), w.b.active_calls()), (0, 0));
    // A frame for the dead call now draws an INVAL (PROTOCOL.md 11.2).
    let now = w.net.now();
    assert!(!w.a.send_text(now, ca, "late", &mut w.net.sender(addr(A))));
}

#[test]
fn callee_rejects() {
    let mut b = cfg(B, 6);
    b.answer = AnswerMode::Reject(21);
    let mut w = World::new(cfg(A, 5), b);
    let ca = w.originate("999");
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Ended { call: ca })
    }));
    assert!(w.ev_a.contains(&Event::Rejected {
        call: ca,
        cause_code: 21,
        cause: "Call Rejected".into()
    }));
    assert!(!w.ev_a.iter().any(|e| matches!(e, Event::Answered { .. })));
    w.run_for(Duration::from_millis(50));
    assert_eq!((w.a.active_calls(), w.b.active_calls()), (0, 0));
    assert_eq!(w.a.stats().calls_rejected_by_peer, 1);
    assert_eq!(w.b.stats().calls_rejected_locally, 1);
}

#[test]
fn wrong_md5_secret_is_rejected_like_asterisk() {
    let mut a = cfg(A, 7);
    a.secret = Some("wrong".into());
    let mut b = cfg(B, 8);
    b.secret = Some("right".into());
    let mut w = World::new(a, b);
    let ca = w.originate("2001");
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Ended { call: ca })
    }));
    assert!(w.ev_a.contains(&Event::Rejected {
        call: ca,
        cause_code: 50,
        cause: "No authority found".into()
    }));
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.b.stats().auth_failures, 1);
    assert_eq!((w.a.active_calls(), w.b.active_calls()), (0, 0));
}

#[test]
fn caller_without_secret_cannot_authenticate() {
    let mut b = cfg(B, 10);
    b.secret = Some("right".into());
    let mut w = World::new(cfg(A, 9), b);
    let ca = w.originate("2001");
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Ended { call: ca })
    }));
    assert!(w.ev_a.contains(&Event::CallFailed {
        call: ca,
        reason: FailReason::NoAuthMethod
    }));
}

/// Drops the first datagram `pred` matches.
fn drop_first(w: &mut World, mut pred: impl FnMut(&Datagram) -> bool + 'static) {
    let mut dropped = false;
    w.net.set_filter(move |d| {
        if !dropped && pred(d) {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
}

#[test]
fn dropped_new_is_retransmitted_after_two_seconds() {
    let mut w = World::new(cfg(A, 11), cfg(B, 12));
    drop_first(&mut w, |d| iax_sub(d) == Some(IaxSubclass::New));
    let ca = w.originate("2001");
    w.run_for(Duration::from_millis(1900));
    assert!(w.ev_b.is_empty());
    // A's retransmission timer (2 x the initial 1 s ping time) resends it.
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Answered { call: ca })
    }));
    let cap = w.net.take_capture();
    let news: Vec<&Datagram> = cap
        .iter()
        .map(|(d, _)| d)
        .filter(|d| iax_sub(d) == Some(IaxSubclass::New))
        .collect();
    assert_eq!(news.len(), 2);
    let (first, again) = (full(news[0]).unwrap(), full(news[1]).unwrap());
    assert!(!first.is_retransmission() && again.is_retransmission());
    assert_eq!(again.oseqno(), first.oseqno());
    assert_eq!(again.timestamp(), first.timestamp());
    assert_eq!(news[1].sent_at - news[0].sent_at, Duration::from_secs(2));
    assert_eq!(w.a.stats().retransmissions, 1);
}

#[test]
fn dropped_answer_is_recovered_through_vnak() {
    let mut w = World::new(cfg(A, 11), cfg(B, 12));
    drop_first(&mut w, |d| {
        full(d).and_then(|f| f.control_subclass()) == Some(ControlSubclass::Answer)
    });
    let ca = w.originate("2001");
    // B's first voice frame arrives out of order at A, A asks for the
    // missing ANSWER with a VNAK, and B resends it at once.
    assert!(w.run_until(Duration::from_millis(100), |w| {
        w.ev_a.contains(&Event::Answered { call: ca })
    }));
    assert_eq!(w.a.stats().vnaks_sent, 1);
    assert_eq!(w.b.stats().vnaks_received, 1);
    let cap = w.net.take_capture();
    let answers: Vec<FullFrame<&[u8]>> = cap
        .iter()
        .filter_map(|(d, _)| full(d))
        .filter(|f| f.control_subclass() == Some(ControlSubclass::Answer))
        .collect();
    assert_eq!(answers.len(), 2);
    assert!(answers[1].is_retransmission());
    assert_eq!(answers[1].oseqno(), answers[0].oseqno());
    w.run_for(Duration::from_secs(1));
    let cb = w.b_call();
    assert_eq!(w.a.call_stats(ca).unwrap().rx.lost(), 0);
    assert_eq!(w.b.call_stats(cb).unwrap().rx.lost(), 0);
}

#[test]
fn lost_first_voice_frame_is_asked_for_with_vnak() {
    let mut w = World::new(cfg(A, 13), cfg(B, 14));
    drop_first(&mut w, |d| {
        d.from == addr(A) && full(d).is_some_and(|f| f.frame_type() == FrameType::Voice)
    });
    let (ca, cb) = w.answered_call();
    w.run_for(Duration::from_secs(1));
    let (sa, sb) = (w.a.stats(), w.b.stats());
    assert!(sb.vnaks_sent >= 1);
    assert!(sa.vnaks_received >= 1);
    assert!(sa.retransmissions >= 1);
    let rx = &w.b.call_stats(cb).unwrap().rx;
    // Frame 0 came back; only the minis that arrived before it (no codec
    // known yet) were dropped, and those are exactly the ones lost.
    assert!(rx.received > 40);
    assert_eq!(rx.corrupt, 0);
    assert!(rx.dropped >= 1);
    assert_eq!(rx.lost(), rx.dropped);
    assert_eq!(
        w.b.received_media(cb).unwrap()[0].payload,
        w.a.sent_media(ca).unwrap()[0].payload
    );
    assert_eq!(w.a.call_stats(ca).unwrap().rx.lost(), 0);
}

#[test]
fn reordered_and_late_voice_is_counted() {
    let mut w = World::new(cfg(A, 15), cfg(B, 16));
    let (_ca, cb) = w.answered_call();
    w.run_for(Duration::from_millis(200));
    let mut n = 0;
    w.net.set_filter(move |d| {
        if d.from == addr(A) && MiniFrame::new_checked(&d.bytes[..]).is_ok() {
            n += 1;
            if n == 3 {
                return Verdict::Delay(Duration::from_millis(50));
            }
        }
        Verdict::Deliver
    });
    w.run_for(Duration::from_millis(500));
    let rx = &w.b.call_stats(cb).unwrap().rx;
    assert_eq!(rx.reordered, 1);
    assert_eq!(rx.lost(), 0);
    assert_eq!(rx.duplicates, 0);
    assert!(rx.latency_max_us >= 55_000);
}

#[test]
fn far_side_vanishes_and_the_call_fails_after_the_retransmission_schedule() {
    let mut w = World::new(cfg(A, 17), cfg(B, 18));
    let (ca, _cb) = w.answered_call();
    let answered = w.net.now();
    w.run_for(Duration::from_secs(1));
    // B disappears: nothing reaches it any more.
    w.net.set_filter(|d| {
        if d.to == addr(B) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    w.net.take_capture();
    assert!(w.run_until(Duration::from_secs(60), |w| w.ev_a.contains(
        &Event::CallFailed {
            call: ca,
            reason: FailReason::Timeout
        }
    )));
    let failed = w.net.now();
    // A's first reliable frame after the partition is its LAGRQ, 10 s after
    // the call was accepted; it went out at 0, 2, 12, 22 s and the call was
    // given up at 32 s (PROTOCOL.md 6.3).
    let cap = w.net.take_capture();
    let first_lagrq: Vec<Datagram> = sent_by(&cap, A)
        .into_iter()
        .filter(|d| iax_sub(d) == Some(IaxSubclass::LagRq))
        .collect();
    let oseqno = full(&first_lagrq[0]).unwrap().oseqno();
    let lagrqs: Vec<u64> = first_lagrq
        .iter()
        .filter(|d| full(d).unwrap().oseqno() == oseqno)
        .map(|d| d.sent_at.as_millis())
        .collect();
    assert_eq!(lagrqs.len(), 4, "{lagrqs:?}");
    let t0 = lagrqs[0];
    assert!(t0 >= answered.as_millis() + 9_990 && t0 <= answered.as_millis() + 10_010);
    let offsets: Vec<u64> = lagrqs.iter().map(|t| t - t0).collect();
    assert_eq!(offsets, vec![0, 2_000, 12_000, 22_000]);
    assert!(failed.as_millis() >= t0 + 32_000 && failed.as_millis() <= t0 + 32_002);
    assert_eq!(w.ev_a.last(), Some(&Event::Ended { call: ca }));
    assert_eq!(w.a.active_calls(), 0);
    assert_eq!(
        w.a.call_stats(ca).unwrap().end,
        Some(EndReason::Failed(FailReason::Timeout))
    );
}

fn wrap_call(full_voice_on_wrap: bool) {
    let mut a = cfg(A, 19);
    a.full_voice_on_wrap = full_voice_on_wrap;
    a.voice_events = true;
    let mut b = cfg(B, 20);
    b.full_voice_on_wrap = full_voice_on_wrap;
    let mut w = World::new(a, b);
    let (ca, cb) = w.answered_call();
    // Past the 16-bit wrap of the call clocks (65 536 ms).
    w.run_for(Duration::from_secs(70));
    let now = w.net.now();
    w.a.stop_media(now, ca);
    w.b.stop_media(now, cb);
    w.run_for(Duration::from_millis(100));
    for (tx, tx_id, rx, rx_id) in [(&w.a, ca, &w.b, cb), (&w.b, cb, &w.a, ca)] {
        let sent = tx.sent_media(tx_id).unwrap();
        let got = rx.received_media(rx_id).unwrap();
        assert!(sent.last().unwrap().ts > 0x1_0000 + 1000);
        assert_eq!(sent.len(), got.len());
        for (s, g) in sent.iter().zip(got) {
            assert_eq!(s.ts, g.ts, "timestamp rebuilt across the wrap");
            assert_eq!(s.payload, g.payload);
        }
        let st = tx.call_stats(tx_id).unwrap();
        let want_full = if full_voice_on_wrap { 2 } else { 1 };
        assert_eq!(st.voice_full_sent, want_full);
        assert_eq!(rx.call_stats(rx_id).unwrap().rx.lost(), 0);
    }
    // A's voice events carry the full 32-bit timestamps too.
    let ts: Vec<u32> = w
        .ev_a
        .iter()
        .filter_map(|e| match e {
            Event::Voice { ts, .. } => Some(*ts),
            _ => None,
        })
        .collect();
    assert!(ts.len() > 3400);
    assert!(ts.windows(2).all(|p| p[1] == p[0] + 20));
}

#[test]
fn timestamp_wrap_with_full_voice_frame() {
    wrap_call(true);
}

#[test]
fn timestamp_wrap_with_minis_only_like_asterisk() {
    wrap_call(false);
}

#[test]
fn many_concurrent_calls_with_unique_numbers_and_no_loss() {
    let mut w = World::new(cfg(A, 21), cfg(B, 22));
    let ids: Vec<CallId> = (0..300).map(|i| w.originate(&format!("{i}"))).collect();
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.a.active_calls(), 300);
    assert_eq!(w.b.active_calls(), 300);
    let mut numbers: Vec<u16> = ids
        .iter()
        .map(|&id| w.a.call_stats(id).unwrap().local_call_number)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 300);
    assert!(numbers[0] >= 2);
    let now = w.net.now();
    assert_eq!(w.a.hangup_all(now, 16, &mut w.net.sender(addr(A))), 300);
    w.run_for(Duration::from_millis(100));
    assert_eq!((w.a.active_calls(), w.b.active_calls()), (0, 0));
    for s in [w.a.stats(), w.b.stats()] {
        assert_eq!(s.calls_answered, 300);
        assert!(s.voice_received > 300 * 90);
        assert_eq!(s.voice_lost, 0);
        assert_eq!(s.voice_corrupt, 0);
        assert_eq!(s.retransmissions, 0);
    }
}

// ---------------------------------------------------------------------------
// A scripted peer X talking to B, frame by frame.
// ---------------------------------------------------------------------------

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

fn iax(src: u16, dst: u16, ts: u32, o: u8, i: u8, sub: IaxSubclass, ies: IeList) -> Vec<u8> {
    FullFrameRepr::iax(cn(src), cn(dst), ts, SeqNo(o), SeqNo(i), sub, ies).to_vec()
}

fn new_ies() -> IeList {
    IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, "2001").unwrap())
        .with(Ie::format(MediaFormat::ULAW))
        .with(Ie::capability(MediaFormat::ULAW))
}

/// B alone with a scripted peer: returns B's replies to each datagram.
struct Scripted {
    net: SimNet,
    b: Endpoint,
}

impl Scripted {
    fn new(b: EndpointConfig) -> Self {
        let mut net = SimNet::new(Instant::from_millis(5_000_000), Duration::from_millis(1));
        net.start_capture();
        Self {
            net,
            b: Endpoint::new(b),
        }
    }

    /// Sends `bytes` from X to B and returns what B sent back within 10 ms.
    fn exchange(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        use trunk_core::transmit::Transmit;
        self.net.sender(addr(X)).send(addr(B), bytes);
        self.net
            .run_for(Duration::from_millis(10), &mut [&mut self.b]);
        self.net
            .take_capture()
            .into_iter()
            .filter(|(d, _)| d.from == addr(B))
            .map(|(d, _)| d.bytes)
            .collect()
    }
}

fn parse(bytes: &[u8]) -> FullFrameRepr {
    FullFrameRepr::parse(bytes).unwrap()
}

#[test]
fn poke_gets_a_stateless_pong_and_unknown_calls_get_inval() {
    let mut s = Scripted::new(cfg(B, 30));
    let r = s.exchange(&iax(700, 0, 1234, 0, 0, IaxSubclass::Poke, IeList::new()));
    assert_eq!(r.len(), 1);
    let pong = parse(&r[0]);
    assert_eq!(pong.iax_subclass(), Some(IaxSubclass::Pong));
    assert_eq!(pong.source_call_number, CallNumber::STATELESS);
    assert_eq!(pong.dest_call_number, cn(700));
    assert_eq!(pong.timestamp, 1234);
    assert_eq!((pong.oseqno, pong.iseqno), (SeqNo(0), SeqNo(1)));

    let r = s.exchange(&iax(700, 4321, 99, 3, 4, IaxSubclass::Ping, IeList::new()));
    assert_eq!(r.len(), 1);
    let inval = parse(&r[0]);
    assert_eq!(inval.iax_subclass(), Some(IaxSubclass::Inval));
    assert_eq!(inval.source_call_number, cn(4321));
    assert_eq!(inval.dest_call_number, cn(700));
    assert_eq!(
        (inval.timestamp, inval.oseqno, inval.iseqno),
        (0, SeqNo(0), SeqNo(0))
    );
    // No INVAL answers an ACK or an INVAL.
    assert!(s
        .exchange(&iax(700, 4321, 99, 3, 4, IaxSubclass::Ack, IeList::new()))
        .is_empty());
    assert!(s
        .exchange(&iax(700, 4321, 99, 0, 0, IaxSubclass::Inval, IeList::new()))
        .is_empty());
    assert_eq!(s.b.stats().invals_sent, 1);
    assert_eq!(s.b.stats().pokes_answered, 1);
}

#[test]
fn calltoken_missing_or_forged_is_rejected_statelessly() {
    let mut b = cfg(B, 31);
    b.require_calltoken = true;
    let mut s = Scripted::new(b);
    // No CALLTOKEN IE at all.
    let r = s.exchange(&iax(800, 0, 10, 0, 0, IaxSubclass::New, new_ies()));
    let rej = parse(&r[0]);
    assert_eq!(rej.iax_subclass(), Some(IaxSubclass::Reject));
    assert_eq!(rej.source_call_number, CallNumber::STATELESS);
    // A forged token.
    let forged = new_ies().with(Ie::calltoken(b"1?deadbeef").unwrap());
    let r = s.exchange(&iax(800, 0, 20, 0, 0, IaxSubclass::New, forged));
    assert_eq!(parse(&r[0]).iax_subclass(), Some(IaxSubclass::Reject));
    // A token minted for another address does not work from X either: ask
    // for one, then present it with a changed port byte.
    let r = s.exchange(&iax(
        800,
        0,
        30,
        0,
        0,
        IaxSubclass::New,
        new_ies().with(Ie::empty(IeType::CallToken)),
    ));
    let ct = parse(&r[0]);
    assert_eq!(ct.iax_subclass(), Some(IaxSubclass::CallToken));
    let token = ct.ies().unwrap().calltoken().unwrap().to_vec();
    let mut bad = token.clone();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
    let r = s.exchange(&iax(
        800,
        0,
        40,
        0,
        0,
        IaxSubclass::New,
        new_ies().with(Ie::calltoken(&bad).unwrap()),
    ));
    assert_eq!(parse(&r[0]).iax_subclass(), Some(IaxSubclass::Reject));
    assert_eq!(s.b.active_calls(), 0);
    // The good token creates the call: ACCEPT, RINGING, ANSWER.
    let r = s.exchange(&iax(
        800,
        0,
        50,
        0,
        0,
        IaxSubclass::New,
        new_ies().with(Ie::calltoken(&token).unwrap()),
    ));
    assert_eq!(s.b.active_calls(), 1);
    let accept = parse(&r[0]);
    assert_eq!(accept.iax_subclass(), Some(IaxSubclass::Accept));
    assert_eq!((accept.oseqno, accept.iseqno), (SeqNo(0), SeqNo(1)));
    assert_eq!(accept.dest_call_number, cn(800));
    let st = s.b.stats();
    assert_eq!((st.calltoken_challenges, st.calltoken_rejects), (1, 3));
}

#[test]
fn txreq_is_refused_with_txrej_and_duplicates_are_reacked() {
    let mut s = Scripted::new(cfg(B, 32));
    let r = s.exchange(&iax(900, 0, 10, 0, 0, IaxSubclass::New, new_ies()));
    // ACCEPT, RINGING, ANSWER; the first voice frame may follow.
    let accept = parse(&r[0]);
    assert_eq!(accept.iax_subclass(), Some(IaxSubclass::Accept));
    let bn = accept.source_call_number.get();
    assert_eq!(
        parse(&r[1]).control_subclass(),
        Some(ControlSubclass::Ringing)
    );
    assert_eq!(
        parse(&r[2]).control_subclass(),
        Some(ControlSubclass::Answer)
    );
    // The NEW again (a retransmission): an old duplicate, re-ACKed.
    let r = s.exchange(&iax(900, 0, 10, 0, 0, IaxSubclass::New, new_ies()));
    let acks: Vec<FullFrameRepr> = r
        .iter()
        .filter_map(|b| FullFrameRepr::parse(b).ok())
        .filter(|f| f.iax_subclass() == Some(IaxSubclass::Ack))
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].timestamp, 10);
    assert_eq!(s.b.stats().duplicate_full_frames, 1);
    // TXREQ (our OSeqno 1, acknowledging B's first four frames).
    let r = s.exchange(&iax(900, bn, 20, 1, 4, IaxSubclass::TxReq, IeList::new()));
    let txrej: Vec<FullFrameRepr> = r
        .iter()
        .filter_map(|b| FullFrameRepr::parse(b).ok())
        .filter(|f| f.iax_subclass() == Some(IaxSubclass::TxRej))
        .collect();
    assert_eq!(txrej.len(), 1);
    assert_eq!(txrej[0].iseqno, SeqNo(2));
    assert_eq!(s.b.stats().txreq_received, 1);
    // A frame from the future draws a VNAK.
    let r = s.exchange(&iax(900, bn, 30, 9, 4, IaxSubclass::LagRq, IeList::new()));
    assert!(r
        .iter()
        .filter_map(|b| FullFrameRepr::parse(b).ok())
        .any(|f| f.iax_subclass() == Some(IaxSubclass::Vnak) && f.iseqno == SeqNo(2)));
    // LAGRQ in order: LAGRP echoing the timestamp, no separate ACK.
    let r = s.exchange(&iax(900, bn, 40, 2, 4, IaxSubclass::LagRq, IeList::new()));
    let replies: Vec<FullFrameRepr> = r
        .iter()
        .filter_map(|b| FullFrameRepr::parse(b).ok())
        .filter(|f| f.frame_type == FrameType::Iax)
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].iax_subclass(), Some(IaxSubclass::LagRp));
    assert_eq!(replies[0].timestamp, 40);
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let mut s = Scripted::new(cfg(B, 33));
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80, 1, 0, 0, 0, 0],
        vec![0, 0, 1, 0, 0, 0, 0, 0, 0x12, 0x34, 0x00, 0xff],
        // NEW with a broken IE block.
        {
            let mut v = iax(50, 0, 1, 0, 0, IaxSubclass::New, IeList::new());
            v.extend_from_slice(&[0x01, 0x09, b'x']);
            v
        },
    ];
    // Pseudo-random datagrams of every short length.
    let mut x: u32 = 12345;
    for len in 0..200 {
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        junk.push(v);
    }
    for j in &junk {
        s.exchange(j);
    }
    let st = s.b.stats();
    assert!(st.malformed >= 4);
    assert_eq!(st.datagrams_received, junk.len() as u64);
}

#[test]
fn voice_in_trunk_frames_of_both_layouts_is_received() {
    use iax2_loadtest::endpoint::media;
    use trunk_core::wire::{FrameRepr, MetaTrunkFrameRepr, Subclass, Timestamp16, TrunkEntryRepr};

    let mut s = Scripted::new(cfg(B, 34));
    let r = s.exchange(&iax(900, 0, 10, 0, 0, IaxSubclass::New, new_ies()));
    let accept = parse(&r[0]);
    let bn = accept.source_call_number.get();
    let cb = s.b.call_ids()[0];
    let now = s.net.now();
    // The first voice frame is a full one (it tells B the codec).
    let mut voice = FullFrameRepr::iax(
        cn(900),
        cn(bn),
        100,
        SeqNo(1),
        SeqNo(3),
        IaxSubclass::Ack,
        IeList::new(),
    );
    voice.frame_type = FrameType::Voice;
    voice.subclass = Subclass(0x04);
    voice.payload = trunk_core::wire::FullFramePayload::Raw(media::payload(160, 0, now));
    s.exchange(&voice.to_vec());
    let entry = |seq: u32, ts: Option<u16>| TrunkEntryRepr {
        call_number: cn(900),
        flag: false,
        timestamp: ts.map(Timestamp16),
        payload: media::payload(160, seq, now),
    };
    let with_ts = FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
        command_data: 1,
        trunk_timestamp: 5000,
        entries: vec![entry(1, Some(120)), entry(2, Some(140))],
    });
    s.exchange(&with_ts.to_vec().unwrap());
    let without_ts = FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
        command_data: 0,
        trunk_timestamp: 0,
        entries: vec![entry(3, None)],
    });
    s.exchange(&without_ts.to_vec().unwrap());
    // An entry for a call B does not know is counted, not delivered.
    let stranger = FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
        command_data: 1,
        trunk_timestamp: 5020,
        entries: vec![TrunkEntryRepr {
            call_number: cn(901),
            ..entry(4, Some(160))
        }],
    });
    s.exchange(&stranger.to_vec().unwrap());

    let rx = &s.b.call_stats(cb).unwrap().rx;
    assert_eq!((rx.received, rx.lost(), rx.corrupt), (4, 0, 0));
    let got = s.b.received_media(cb).unwrap();
    let ts: Vec<u32> = got.iter().map(|f| f.ts).collect();
    // Without per-entry timestamps the time comes from the trunk clock:
    // the NEW (ts 10) arrived 30 ms before this frame, on B's clock.
    assert_eq!(ts, vec![100, 120, 140, 40]);
    assert_eq!(s.b.stats().unknown_call_media, 1);
}

/// A trunk frame reaches every shard of a sharded PBX: each takes its own
/// entries, leaves those of calls another shard owns alone, and counts
/// only entries no shard owns as media for an unknown call.
#[test]
fn a_shard_skips_trunk_entries_another_shard_owns() {
    use iax2_loadtest::endpoint::media;
    use iax2_loadtest::{CallOwners, Shard};
    use std::sync::Arc;
    use trunk_core::wire::{FrameRepr, MetaTrunkFrameRepr, Timestamp16, TrunkEntryRepr};

    let owners = Arc::new(CallOwners::default());
    let mut c = cfg(B, 35);
    c.shard = Some(Shard::new(0, 2, owners.clone()));
    let mut s = Scripted::new(c);
    // Peer call 700 belongs to shard 1; 701 to nobody.
    owners.claim(700, 1);
    let now = s.net.now();
    let entry = |call: u16, ts: Option<u16>| TrunkEntryRepr {
        call_number: cn(call),
        flag: false,
        timestamp: ts.map(Timestamp16),
        payload: media::payload(160, 0, now),
    };
    for (command_data, ts) in [(1u8, Some(120u16)), (0, None)] {
        let frame = FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
            command_data,
            trunk_timestamp: 5000,
            entries: vec![entry(700, ts), entry(701, ts)],
        });
        s.exchange(&frame.to_vec().unwrap());
    }
    // Both layouts: one unknown entry each, the other shard's skipped.
    assert_eq!(s.b.stats().unknown_call_media, 2);
    // A mini frame is never broadcast: one for another shard's call that
    // still reaches this one is counted.
    let mini = trunk_core::wire::MiniFrameRepr {
        source_call_number: cn(700),
        timestamp: Timestamp16(140),
        payload: media::payload(160, 1, now),
    };
    s.exchange(&FrameRepr::Mini(mini).to_vec().unwrap());
    assert_eq!(s.b.stats().unknown_call_media, 3);
}

#[test]
fn mutated_frames_of_a_live_call_never_panic() {
    use trunk_core::transmit::VecTransmit;

    let mut a = cfg(A, 35);
    a.secret = Some("x".into());
    let mut b = cfg(B, 36);
    b.secret = Some("x".into());
    b.require_calltoken = true;
    let mut w = World::new(a, b);
    let (ca, _cb) = w.answered_call();
    w.run_for(Duration::from_millis(300));
    let now = w.net.now();
    w.a.send_dtmf(now, ca, '1', &mut w.net.sender(addr(A)));
    w.a.send_text(now, ca, "t", &mut w.net.sender(addr(A)));
    w.run_for(Duration::from_millis(100));
    let cap: Vec<Datagram> = w.net.take_capture().into_iter().map(|(d, _)| d).collect();
    assert!(cap.len() > 50);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sink = VecTransmit::new();
    let mut t = w.net.now();
    for round in 0..20 {
        for d in &cap {
            let mut bytes = d.bytes.clone();
            // Keep the call numbers so the mutants reach the live calls.
            for _ in 0..1 + rnd() % 3 {
                let i = 4 + (rnd() as usize) % bytes.len().saturating_sub(4).max(1);
                if let Some(b) = bytes.get_mut(i) {
                    *b = rnd() as u8;
                }
            }
            if round % 5 == 4 {
                bytes.truncate((rnd() as usize) % (bytes.len() + 1));
            }
            t += Duration::from_micros(100);
            let (ep, from) = if d.to == addr(A) {
                (&mut w.a, addr(B))
            } else {
                (&mut w.b, addr(A))
            };
            ep.handle_datagram(t, from, &bytes, &mut sink);
            if ep.poll_timeout().is_some_and(|p| p <= t) {
                ep.handle_timeout(t, &mut sink);
            }
        }
        sink.take();
    }
    // Whatever state the mutants left, the endpoints still run and drain.
    let mut sink = VecTransmit::new();
    for ep in [&mut w.a, &mut w.b] {
        let _ = ep.hangup_all(t, 16, &mut sink);
        for _ in 0..100 {
            match ep.poll_timeout() {
                Some(p) => {
                    t = t.max(p);
                    ep.handle_timeout(t, &mut sink);
                }
                None => break,
            }
        }
        assert_eq!(ep.active_calls(), 0);
    }
}

#[test]
fn same_seeds_same_datagrams() {
    let run = || {
        let mut a = cfg(A, 40);
        a.secret = Some("k".into());
        let mut b = cfg(B, 41);
        b.secret = Some("k".into());
        b.require_calltoken = true;
        let mut w = World::new(a, b);
        for i in 0..20 {
            w.originate(&format!("{i}"));
        }
        w.run_for(Duration::from_secs(1));
        let now = w.net.now();
        w.a.hangup_all(now, 16, &mut w.net.sender(addr(A)));
        w.run_for(Duration::from_millis(100));
        w.net.take_capture()
    };
    let (one, two) = (run(), run());
    assert!(one.len() > 1000);
    assert!(one == two, "two runs with the same seeds differ");
}

#[test]
fn expired_call_token_draws_a_stateless_reject_and_the_caller_gives_up() {
    let mut b = cfg(B, 42);
    b.require_calltoken = true;
    let mut w = World::new(cfg(A, 43), b);
    // Hold the NEW that carries the token for 11 s: past the token's life.
    w.net.set_filter(|d| {
        let carries_token = full(d)
            .filter(|f| f.iax_subclass() == Some(IaxSubclass::New))
            .and_then(|f| {
                IeBlock::new_checked(f.payload())
                    .ok()
                    .and_then(|ies| ies.calltoken().map(|t| !t.is_empty()))
            })
            .unwrap_or(false);
        if carries_token {
            Verdict::Delay(Duration::from_secs(11))
        } else {
            Verdict::Deliver
        }
    });
    let ca = w.originate("2001");
    w.run_for(Duration::from_secs(15));
    assert!(w.ev_a.contains(&Event::Rejected {
        call: ca,
        cause_code: 21,
        cause: "Call token required or invalid".into()
    }));
    assert_eq!(w.ev_a.last(), Some(&Event::Ended { call: ca }));
    assert!(w.ev_b.is_empty());
    // The NEW and its retransmission 2 s later were both held past the
    // token's life; the REJECT of the second finds no call at A and is
    // dropped there (no INVAL answers a frame from call 1).
    assert_eq!(w.b.stats().calltoken_rejects, 2);
    assert_eq!(w.a.stats().invals_sent, 0);
    assert_eq!((w.a.active_calls(), w.b.active_calls()), (0, 0));
}

fn trunked_calls(layout: trunk_core::wire::TrunkLayout) -> World {
    let mut a = cfg(A, 44);
    a.trunk = Some(iax2_loadtest::endpoint::TrunkConfig {
        layout,
        ..Default::default()
    });
    let mut w = World::new(a, cfg(B, 45));
    for i in 0..20 {
        w.originate(&format!("{i}"));
    }
    w.run_for(Duration::from_secs(2));
    let ids_a = w.a.call_ids();
    let now = w.net.now();
    for &id in &ids_a {
        w.a.stop_media(now, id);
    }
    w.run_for(Duration::from_millis(100));
    let st = w.a.stats();
    assert!(st.trunk_frames_sent > 0);
    // 20 calls at 20 ms: about one trunk frame per tick, 7 u-law entries
    // at most in 1240 bytes.
    let cap = w.net.take_capture();
    let mut entries = 0;
    for d in &sent_by(&cap, A) {
        assert!(
            MiniFrame::new_checked(&d.bytes[..]).is_err(),
            "no plain minis when trunking"
        );
        if let Ok(t) = trunk_core::wire::MetaTrunkFrame::new_checked(&d.bytes[..]) {
            assert!(d.bytes.len() <= 1240);
            assert_eq!(t.layout(), layout);
            let n = t.entries().count();
            assert!((1..=7).contains(&n));
            entries += n;
        }
    }
    assert_eq!(entries as u64, st.voice_sent - st.voice_full_sent);
    for s in [w.a.stats(), w.b.stats()] {
        assert_eq!((s.voice_lost, s.voice_corrupt, s.voice_dropped), (0, 0, 0));
    }
    w
}

#[test]
fn trunked_voice_with_timestamps_arrives_byte_and_timestamp_identical() {
    let w = trunked_calls(trunk_core::wire::TrunkLayout::Timestamps);
    let ids_b = w.b.call_ids();
    for (ia, ib) in w.a.call_ids().into_iter().zip(ids_b) {
        // Calls were created in the same order on both sides.
        assert_eq!(w.a.sent_media(ia).unwrap(), w.b.received_media(ib).unwrap());
        assert_eq!(w.a.call_stats(ia).unwrap().voice_full_sent, 1);
    }
}

#[test]
fn trunked_voice_without_timestamps_keeps_payloads_and_close_timestamps() {
    let w = trunked_calls(trunk_core::wire::TrunkLayout::NoTimestamps);
    let ids_b = w.b.call_ids();
    for (ia, ib) in w.a.call_ids().into_iter().zip(ids_b) {
        let sent = w.a.sent_media(ia).unwrap();
        let got = w.b.received_media(ib).unwrap();
        assert_eq!(sent.len(), got.len());
        for (s, g) in sent.iter().zip(got) {
            assert_eq!(s.payload, g.payload);
            // Rebuilt from the trunk clock: off by at most a trunk
            // interval plus the path's delay.
            let off = (i64::from(g.ts) - i64::from(s.ts)).abs();
            assert!(off <= 30, "sent ts {} received ts {}", s.ts, g.ts);
        }
    }
}

// ---------------------------------------------------------------------
// Registration (PROTOCOL.md 11.3): A registers with B.
// ---------------------------------------------------------------------

use iax2_loadtest::endpoint::{
    RegistrarConfig, RegistrationFailure, RegistrationId, RegistrationState,
};

/// A (registrant) and B (registrar for `siteA`/`s3cret`, with CALLTOKEN).
fn reg_world(registrar: RegistrarConfig) -> World {
    let a = cfg(A, 31);
    let mut b = cfg(B, 32);
    b.require_calltoken = true;
    b.registrar = Some(registrar);
    World::new(a, b)
}

fn site_a() -> RegistrarConfig {
    RegistrarConfig::new(vec![("siteA".into(), "s3cret".into())])
}

impl World {
    fn register(&mut self, user: &str, secret: &str, refresh: u16) -> RegistrationId {
        let now = self.net.now();
        let mut tx = self.net.sender(addr(A));
        self.a
            .register(now, addr(B), user, secret, refresh, &mut tx)
            .unwrap()
    }

    fn registered_events(&self, reg: RegistrationId) -> usize {
        self.ev_a
            .iter()
            .filter(|e| matches!(e, Event::Registered { reg: r, .. } if *r == reg))
            .count()
    }

    fn failure(&self, reg: RegistrationId) -> Option<RegistrationFailure> {
        self.ev_a.iter().find_map(|e| match e {
            Event::RegistrationFailed { reg: r, failure } if *r == reg => Some(failure.clone()),
            _ => None,
        })
    }
}

fn ies_of(d: &Datagram) -> Vec<u8> {
    full(d).unwrap().payload().to_vec()
}

#[test]
fn registration_with_calltoken_and_md5_like_asterisk() {
    let mut w = reg_world(site_a());
    let reg = w.register("siteA", "s3cret", 60);
    assert!(w.run_until(Duration::from_secs(1), |w| w.registered_events(reg) == 1));
    assert_eq!(
        w.ev_a.last(),
        Some(&Event::Registered {
            reg,
            refresh: 60,
            apparent_addr: Some(addr(A)),
        })
    );
    w.run_for(Duration::from_millis(100));
    let cap = w.net.take_capture();
    let subs: Vec<(SocketAddr, Option<IaxSubclass>)> =
        cap.iter().map(|(d, _)| (d.from, iax_sub(d))).collect();
    use IaxSubclass::*;
    assert_eq!(
        subs,
        vec![
            (addr(A), Some(RegReq)),
            (addr(B), Some(CallToken)),
            (addr(A), Some(RegReq)),
            (addr(B), Some(RegAuth)),
            (addr(A), Some(RegReq)),
            (addr(B), Some(RegAck)),
            (addr(A), Some(Ack)),
        ]
    );
    let frames: Vec<FullFrame<&[u8]>> = cap.iter().map(|(d, _)| full(d).unwrap()).collect();
    // First REGREQ: USERNAME, REFRESH, empty CALLTOKEN; o0 i0, d=0.
    let first = IeBlock::new_checked(frames[0].payload()).unwrap();
    assert_eq!(first.username().unwrap(), Some("siteA"));
    assert_eq!(first.refresh().unwrap(), Some(60));
    assert_eq!(first.calltoken(), Some(&[][..]));
    assert_eq!(frames[0].dest_call_number(), CallNumber::UNKNOWN);
    // The challenge comes from call 1 and is not bound: the second REGREQ
    // keeps the source number, resets o/i to 0 and carries the token.
    assert_eq!(frames[1].source_call_number(), CallNumber::STATELESS);
    let token = IeBlock::new_checked(frames[1].payload())
        .unwrap()
        .calltoken()
        .unwrap()
        .to_vec();
    assert!(!token.is_empty());
    let src = frames[0].source_call_number();
    assert_eq!(frames[2].source_call_number(), src);
    assert_eq!(frames[2].dest_call_number(), CallNumber::UNKNOWN);
    assert_eq!(
        (frames[2].oseqno(), frames[2].iseqno()),
        (SeqNo(0), SeqNo(0))
    );
    let again = ies_of(&cap[2].0);
    assert_eq!(
        IeBlock::new_checked(&again[..]).unwrap().calltoken(),
        Some(&token[..])
    );
    // REGAUTH: AUTHMETHODS MD5, a decimal challenge, USERNAME.
    let auth = IeBlock::new_checked(frames[3].payload()).unwrap();
    assert!(auth
        .auth_methods()
        .unwrap()
        .unwrap()
        .contains(trunk_core::wire::AuthMethods::MD5));
    let challenge = std::str::from_utf8(auth.challenge().unwrap()).unwrap();
    assert!(challenge.len() <= 10 && challenge.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(auth.username().unwrap(), Some("siteA"));
    assert_eq!(
        (frames[3].oseqno(), frames[3].iseqno()),
        (SeqNo(0), SeqNo(1))
    );
    // REGREQ with the MD5 RESULT and an empty CALLTOKEN, o1 i1.
    let md5 = IeBlock::new_checked(frames[4].payload()).unwrap();
    assert_eq!(
        md5.md5_result().unwrap(),
        Some(md5_response(challenge, "s3cret").as_str())
    );
    assert_eq!(md5.calltoken(), Some(&[][..]));
    assert_eq!(
        (frames[4].oseqno(), frames[4].iseqno()),
        (SeqNo(1), SeqNo(1))
    );
    // REGACK: USERNAME, DATETIME, REFRESH, APPARENT ADDR (host-order
    // family, as Asterisk sends it), o1 i2; the ACK echoes its timestamp.
    let ack = IeBlock::new_checked(frames[5].payload()).unwrap();
    assert_eq!(ack.username().unwrap(), Some("siteA"));
    assert_eq!(ack.refresh().unwrap(), Some(60));
    assert_eq!(
        ack.datetime().unwrap(),
        Some(RegistrarConfig::new(vec![]).datetime)
    );
    let apparent = ack.apparent_addr().unwrap().unwrap();
    assert_eq!(apparent.addr, addr(A));
    assert_eq!(apparent.family_order, trunk_core::wire::FamilyOrder::Little);
    assert_eq!(
        (frames[5].oseqno(), frames[5].iseqno()),
        (SeqNo(1), SeqNo(2))
    );
    assert_eq!(frames[6].timestamp(), frames[5].timestamp());
    assert_eq!(
        (frames[6].oseqno(), frames[6].iseqno()),
        (SeqNo(2), SeqNo(2))
    );
    // Both sides destroyed the transaction; none of it shows as a call.
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
    assert_eq!(w.a.stats().calls_ended + w.b.stats().calls_ended, 0);
    assert!(w.ev_b.is_empty());
    // B's registry and A's status.
    let e = w.b.registered("siteA").unwrap();
    assert_eq!((e.addr, e.refresh), (addr(A), 60));
    assert_eq!(e.expires, e.registered_at + Duration::from_secs(70));
    let st = w.a.registration(reg).unwrap();
    assert_eq!(st.state, RegistrationState::Registered);
    assert_eq!(st.granted_refresh, Some(60));
    assert_eq!(st.apparent_addr, Some(addr(A)));
    assert_eq!((st.attempts, st.successes, st.failures), (1, 1, 0));
    let bs = w.b.registration_stats();
    assert_eq!((bs.requests, bs.challenges, bs.accepted), (1, 1, 1));
    assert_eq!(w.b.stats().calltoken_challenges, 1);
}

#[test]
fn registrar_clamps_refresh() {
    let mut rc = RegistrarConfig::new(vec![
        ("long".into(), "x".into()),
        ("short".into(), "y".into()),
    ]);
    rc.min_refresh = 30;
    rc.max_refresh = 120;
    let mut w = reg_world(rc);
    let long = w.register("long", "x", 3600);
    let short = w.register("short", "y", 5);
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.registered_events(long) == 1 && w.registered_events(short) == 1
    }));
    assert_eq!(w.a.registration(long).unwrap().granted_refresh, Some(120));
    assert_eq!(w.a.registration(short).unwrap().granted_refresh, Some(30));
    assert_eq!(w.b.registered("long").unwrap().refresh, 120);
    assert_eq!(w.b.registered("short").unwrap().refresh, 30);
    // Defaults are Asterisk's 60..60.
    assert_eq!(RegistrarConfig::new(vec![]).clamp_refresh(Some(3600)), 60);
    assert_eq!(RegistrarConfig::new(vec![]).clamp_refresh(None), 60);
}

#[test]
fn reregistration_before_expiry_keeps_the_entry_for_minutes() {
    let mut w = reg_world(site_a());
    let reg = w.register("siteA", "s3cret", 60);
    w.run_for(Duration::from_secs(1));
    let first = w.b.registered("siteA").unwrap().registered_at;
    for _ in 0..300 {
        w.run_for(Duration::from_secs(1));
        assert!(w.b.registered("siteA").is_some(), "entry lapsed");
    }
    // Every 50 s (5/6 of 60) for 5 minutes: 6 more registrations.
    assert_eq!(w.registered_events(reg), 7);
    let last = w.b.registered("siteA").unwrap().registered_at;
    // Each refresh is timed from the REGACK (Asterisk), so the round
    // trips add up a little.
    assert!(last - first >= Duration::from_secs(300) && last - first < Duration::from_secs(301));
    let regreqs: Vec<Datagram> = sent_by(&w.net.take_capture(), A)
        .into_iter()
        .filter(|d| {
            full(d).is_some_and(|f| {
                f.iax_subclass() == Some(IaxSubclass::RegReq)
                    && f.dest_call_number() == CallNumber::UNKNOWN
                    && IeBlock::new_checked(f.payload())
                        .unwrap()
                        .calltoken()
                        .is_some_and(<[u8]>::is_empty)
            })
        })
        .collect();
    assert_eq!(regreqs.len(), 7);
    for pair in regreqs.windows(2) {
        let gap = pair[1].sent_at - pair[0].sent_at;
        assert!(gap >= Duration::from_secs(50) && gap < Duration::from_millis(50_100));
    }
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
    assert_eq!(w.b.registration_stats().expired, 0);
}

#[test]
fn wrong_secret_gets_regrej_and_an_event() {
    let mut w = reg_world(site_a());
    let reg = w.register("siteA", "wrong", 60);
    assert!(w.run_until(Duration::from_secs(1), |w| w.failure(reg).is_some()));
    assert_eq!(
        w.failure(reg),
        Some(RegistrationFailure::Rejected {
            cause_code: 29,
            cause: "Registration Refused".into()
        })
    );
    w.run_for(Duration::from_millis(100));
    let cap = w.net.take_capture();
    let last: Vec<Option<IaxSubclass>> =
        cap.iter().rev().take(2).map(|(d, _)| iax_sub(d)).collect();
    assert_eq!(
        last,
        vec![Some(IaxSubclass::Ack), Some(IaxSubclass::RegRej)]
    );
    assert!(w.b.registrations().is_empty());
    assert_eq!(
        w.a.registration(reg).unwrap().state,
        RegistrationState::Rejected
    );
    assert_eq!(w.b.registration_stats().rejected, 1);
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
}

#[test]
fn unknown_user_gets_a_challenge_then_regrej() {
    let mut w = reg_world(site_a());
    let reg = w.register("mallory", "s3cret", 60);
    assert!(w.run_until(Duration::from_secs(1), |w| w.failure(reg).is_some()));
    assert!(matches!(
        w.failure(reg),
        Some(RegistrationFailure::Rejected { cause_code: 29, .. })
    ));
    w.run_for(Duration::from_millis(100));
    let cap = w.net.take_capture();
    // Like Asterisk, an unknown user is not told so before the MD5 step.
    assert!(cap
        .iter()
        .any(|(d, _)| iax_sub(d) == Some(IaxSubclass::RegAuth)));
    assert!(w.b.registrations().is_empty());
    assert_eq!(w.b.registration_transactions(), 0);
}

#[test]
fn lost_regauth_regack_and_ack_are_recovered() {
    let mut w = reg_world(site_a());
    let mut seen = [false; 3];
    w.net.set_filter(move |d| {
        let i = match iax_sub(d) {
            Some(IaxSubclass::RegAuth) => 0,
            Some(IaxSubclass::RegAck) => 1,
            Some(IaxSubclass::Ack) if d.from == addr(A) => 2,
            _ => return Verdict::Deliver,
        };
        if seen[i] {
            Verdict::Deliver
        } else {
            seen[i] = true;
            Verdict::Drop
        }
    });
    let reg = w.register("siteA", "s3cret", 60);
    assert!(w.run_until(Duration::from_secs(10), |w| w.registered_events(reg) == 1));
    w.run_for(Duration::from_secs(40));
    assert_eq!(w.registered_events(reg), 1);
    assert_eq!(w.b.registered("siteA").unwrap().addr, addr(A));
    // B resent REGAUTH and REGACK; A resent nothing it did not have to.
    assert!(w.b.stats().retransmissions >= 2);
    // The lost ACK of REGACK: B resent REGACK, A no longer knew the
    // transaction and answered INVAL (or ACKed it): either way B is done.
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
    assert!(w.failure(reg).is_none());
}

#[test]
fn registry_entry_expires_ten_seconds_after_refresh_when_the_registrant_stops() {
    let mut w = reg_world(site_a());
    let reg = w.register("siteA", "s3cret", 60);
    assert!(w.run_until(Duration::from_secs(1), |w| w.registered_events(reg) == 1));
    let at = w.b.registered("siteA").unwrap().registered_at;
    let now = w.net.now();
    assert!(w.a.stop_registration(now, reg));
    w.net
        .run_until(at + Duration::from_secs(69), &mut [&mut w.a, &mut w.b]);
    assert!(w.b.registered("siteA").is_some());
    w.net
        .run_until(at + Duration::from_secs(71), &mut [&mut w.a, &mut w.b]);
    assert!(w.b.registered("siteA").is_none());
    assert_eq!(w.b.registration_stats().expired, 1);
    assert_eq!(w.a.registration_stats().attempts, 1);
}

#[test]
fn regrel_unregisters_with_the_same_authentication() {
    let mut w = reg_world(site_a());
    let reg = w.register("siteA", "s3cret", 60);
    assert!(w.run_until(Duration::from_secs(1), |w| w.registered_events(reg) == 1));
    let now = w.net.now();
    let mut tx = w.net.sender(addr(A));
    assert!(w.a.unregister(now, reg, &mut tx));
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.ev_a.contains(&Event::Unregistered { reg })
    }));
    assert!(w.b.registered("siteA").is_none());
    assert_eq!(w.b.registration_stats().released, 1);
    assert_eq!(
        w.a.registration(reg).unwrap().state,
        RegistrationState::Unregistered
    );
    // Nothing more goes out.
    w.net.take_capture();
    w.run_for(Duration::from_secs(120));
    assert!(w.net.take_capture().is_empty());
}

#[test]
fn registrar_requires_the_call_token() {
    let mut w = reg_world(site_a());
    use trunk_core::transmit::Transmit;
    let forged = IeList::new()
        .with(Ie::string(IeType::Username, "siteA").unwrap())
        .with(Ie::calltoken(b"1?forged").unwrap());
    let bytes = iax(700, 0, 5, 0, 0, IaxSubclass::RegReq, forged);
    w.net.sender(addr(X)).send(addr(B), &bytes);
    w.run_for(Duration::from_millis(50));
    let cap = w.net.take_capture();
    let reply = cap.iter().find(|(d, _)| d.from == addr(B)).unwrap();
    let f = full(&reply.0).unwrap();
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::RegRej));
    assert_eq!(f.source_call_number(), CallNumber::STATELESS);
    assert_eq!(w.b.registration_stats().calltoken_rejects, 1);
    assert_eq!(w.b.registration_transactions(), 0);
}

// ---------------------------------------------------------------------------
// Echo answerer, measured distributions, shards
// ---------------------------------------------------------------------------

#[test]
fn echo_answerer_returns_the_callers_own_frames_and_latency_is_the_round_trip() {
    let mut b = cfg(B, 32);
    b.echo = true;
    let mut w = World::new(cfg(A, 31), b);
    let (ca, cb) = w.answered_call();
    w.run_for(Duration::from_secs(2));
    let a = w.a.call_stats(ca).unwrap().clone();
    let b = w.b.call_stats(cb).unwrap().clone();
    // B generated nothing of its own: every frame it sent was an echo.
    assert_eq!(b.voice_sent, b.rx.unique());
    assert!(a.rx.received > 90, "{a:?}");
    assert_eq!((a.rx.lost(), a.rx.corrupt), (0, 0));
    // The payloads A got back are the ones it sent, in order.
    let sent = w.a.sent_media(ca).unwrap();
    let back = w.a.received_media(ca).unwrap();
    for (s, r) in sent.iter().zip(back) {
        assert_eq!(s.payload, r.payload);
    }
    // The network delays each hop by 5 ms: A measures both hops.
    let m = w.a.measurements();
    let p50 = iax2_loadtest::endpoint::measure::quantile_ms(&m.latency_us, 0.5);
    assert!((9.9..=10.1).contains(&p50), "{p50}");
}

#[test]
fn latency_setup_and_jitter_histograms() {
    let mut w = World::new(cfg(A, 41), cfg(B, 42));
    let ids: Vec<CallId> = (0..20).map(|i| w.originate(&format!("{i}"))).collect();
    w.run_for(Duration::from_secs(1));
    let m = w.a.take_measurements();
    use iax2_loadtest::endpoint::measure::{max_ms, quantile_ms};
    // One-way 5 ms on the simulated network, for every frame.
    assert!(m.latency_us.len() > 20 * 40, "{}", m.latency_us.len());
    assert!((4.9..=5.1).contains(&quantile_ms(&m.latency_us, 0.99)));
    // NEW, ACCEPT+ANSWER: one round trip, 10 ms.
    assert_eq!(m.setup_us.len(), 20);
    assert!((9.9..=10.1).contains(&max_ms(&m.setup_us)));
    // Perfect pacing: jitter of each live call is (nearly) zero.
    assert_eq!(m.jitter_us.len(), 20);
    assert!(max_ms(&m.jitter_us) < 0.01);
    // The window was emptied; B answered, so it measured no setup time.
    assert_eq!(w.a.take_measurements().latency_us.len(), 0);
    assert_eq!(w.b.measurements().setup_us.len(), 0);
    let now = w.net.now();
    for id in ids {
        w.a.hangup(now, id, 16, &mut w.net.sender(addr(A)));
    }
}

#[test]
fn a_shard_allocates_only_its_own_call_numbers_and_publishes_peer_owners() {
    use iax2_loadtest::{CallOwners, Shard};
    use std::sync::Arc;
    let owners = Arc::new(CallOwners::default());
    let mut a = cfg(A, 51);
    a.shard = Some(Shard::new(2, 3, owners.clone()));
    let mut w = World::new(a, cfg(B, 52));
    let ids: Vec<CallId> = (0..50).map(|i| w.originate(&format!("{i}"))).collect();
    w.run_for(Duration::from_millis(500));
    for &id in &ids {
        let s = w.a.call_stats(id).unwrap();
        assert_eq!(s.local_call_number % 3, 2);
        let peer = s.peer_call_number.unwrap();
        assert_eq!(owners.owner(peer), Some(2));
    }
    let peer0 = w.a.call_stats(ids[0]).unwrap().peer_call_number.unwrap();
    let now = w.net.now();
    w.a.hangup_all(now, 16, &mut w.net.sender(addr(A)));
    w.run_for(Duration::from_millis(200));
    assert_eq!(owners.owner(peer0), None);
}

#[test]
fn periodic_dtmf_from_the_caller_arrives_in_order() {
    let mut a = cfg(A, 71);
    a.dtmf_interval = Some(Duration::from_millis(100));
    let mut w = World::new(a, cfg(B, 72));
    let (_, cb) = w.answered_call();
    w.run_for(Duration::from_millis(1250));
    let digits: Vec<char> = w
        .ev_b
        .iter()
        .filter_map(|e| match e {
            Event::Dtmf { call, digit } if *call == cb => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits.iter().collect::<String>(), "0123456789*#");
    let (sa, sb) = (w.a.stats(), w.b.stats());
    assert_eq!((sa.dtmf_sent, sb.dtmf_received), (12, 12));
    // The callee sends none of its own.
    assert_eq!((sb.dtmf_sent, sa.dtmf_received), (0, 0));
}

/// A call hung up while its HANGUP waits for an ACK sends no more DTMF
/// (a digit after the HANGUP would reach a call the far end has ended).
#[test]
fn no_periodic_dtmf_after_hangup() {
    let mut a = cfg(A, 73);
    a.dtmf_interval = Some(Duration::from_millis(100));
    let mut w = World::new(a, cfg(B, 74));
    let (ca, _) = w.answered_call();
    w.run_for(Duration::from_millis(250));
    // B's replies are lost from now on: A's call stays in Ending,
    // retransmitting its HANGUP, well past the next digit's time.
    w.net.set_filter(|d| {
        if d.from == addr(B) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let now = w.net.now();
    assert!(w.a.hangup(now, ca, 16, &mut w.net.sender(addr(A))));
    let sent = w.a.stats().dtmf_sent;
    w.net.take_capture();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.a.stats().dtmf_sent, sent);
    let dtmf_after = w
        .net
        .take_capture()
        .iter()
        .filter(|(d, _)| {
            d.from == addr(A)
                && full(d).is_some_and(|f| {
                    matches!(f.frame_type(), FrameType::Dtmf | FrameType::DtmfBegin)
                })
        })
        .count();
    assert_eq!(dtmf_after, 0);
    assert_eq!(w.b.stats().dtmf_received, sent);
}
