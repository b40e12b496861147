//! The relay driven with hand-built frames through a gateway pair:
//! PBX A -> gateway A -> gateway B -> PBX B, on a virtual clock.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is the test failing

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use iax2_config::{
    CalledPrefix, Config, Peer, PeerHost, PeerKind, PeerName, PrivateKeyFile, PublicKeyFile, Route,
    Secret, Timeouts, TrunkSettings,
};
use trunk_core::relay::{DropReason, Relay, RelayWorker};
use trunk_core::time::Instant;
use trunk_core::transmit::VecTransmit;
use trunk_core::wire::{
    CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, MiniFrame,
    MiniFrameRepr, SeqNo, Timestamp16,
};

const PBX_A: &str = "127.0.0.1:4570";
const GW_A: &str = "127.0.0.1:4569";
const GW_B: &str = "127.0.0.2:4569";
const PBX_B: &str = "127.0.0.2:4570";
/// Gateway A's NAT's public address, and the one it moves to.
const NAT_1: &str = "127.0.0.9:40001";
const NAT_2: &str = "127.0.0.9:40777";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn peer(name: &str, host: &str, kind: PeerKind, trunk: Option<TrunkSettings>) -> Peer {
    Peer {
        trunk,
        ..Peer::new(
            PeerName::new(name).unwrap(),
            PeerHost::Static(addr(host)),
            kind,
        )
    }
}

fn route(from: &str, prefix: Option<&str>, to: &str) -> Route {
    Route {
        from: Some(PeerName::new(from).unwrap()),
        prefix: prefix.map(|p| CalledPrefix::new(p).unwrap()),
        to: PeerName::new(to).unwrap(),
    }
}

fn site(listen: &str, pbx: &str, gw: &str, trunk: TrunkSettings) -> Config {
    Config {
        listen: addr(listen),
        workers: NonZeroUsize::new(1).unwrap(),
        udp_gso: true,
        peers: vec![
            peer("pbx", pbx, PeerKind::Pbx, None),
            peer("gw", gw, PeerKind::Gateway, Some(trunk)),
        ],
        routes: vec![route("pbx", Some("6"), "gw"), route("gw", None, "pbx")],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    }
}

struct Pair {
    now: Instant,
    a: RelayWorker,
    b: RelayWorker,
    /// Gateway A's NAT: the public address B sees A's datagrams come
    /// from, and earlier mappings, now gone (datagrams to them are lost).
    nat: Option<SocketAddr>,
    stale: Vec<SocketAddr>,
    /// Datagrams lost at the NAT.
    nat_lost: usize,
}

impl Pair {
    fn new(trunk: TrunkSettings) -> Self {
        let now = Instant::from_millis(1_000);
        let ca = site(GW_A, PBX_A, GW_B, trunk);
        let cb = site(GW_B, PBX_B, GW_A, trunk);
        Self::from_configs(now, &ca, &cb)
    }

    fn from_configs(now: Instant, ca: &Config, cb: &Config) -> Self {
        Self {
            now,
            a: RelayWorker::new(Arc::new(Relay::new(ca, now, 1)), 0),
            b: RelayWorker::new(Arc::new(Relay::new(cb, now, 2)), 0),
            nat: None,
            stale: Vec::new(),
            nat_lost: 0,
        }
    }

    /// Gateway A behind a NAT (public address `NAT_1`), registering with
    /// B under the name B gives it ("gw") with `secret`; B knows the
    /// secret `b_secret`.
    fn behind_nat(secret: &str, b_secret: &str) -> Self {
        let (mut ca, mut cb) = nat_sites();
        ca.peers[1].secret = Some(Secret::new(secret).unwrap());
        cb.peers[1].secret = Some(Secret::new(b_secret).unwrap());
        Self::with_nat(&ca, &cb)
    }

    /// Like [`behind_nat`](Self::behind_nat) with RSA instead of a
    /// secret: A signs with `gw-a.key`; B checks with `b_key` (a public key
    /// file of `config/tests/keys`).
    fn behind_nat_rsa(b_key: &str) -> Self {
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/tests/keys/");
        let read = |name: &str| std::fs::read_to_string(format!("{keys}{name}")).unwrap();
        let (mut ca, mut cb) = nat_sites();
        ca.peers[1].outkey = Some(PrivateKeyFile::from_pem("gw-a.key", &read("gw-a.key")).unwrap());
        cb.peers[1].inkeys = vec![PublicKeyFile::from_pem(b_key, &read(b_key)).unwrap()];
        Self::with_nat(&ca, &cb)
    }

    fn with_nat(ca: &Config, cb: &Config) -> Self {
        let mut pair = Self::from_configs(Instant::from_millis(1_000), ca, cb);
        pair.nat = Some(addr(NAT_1));
        pair
    }

    /// The NAT forgets its mapping and makes a new one on `public`.
    fn rebind(&mut self, public: &str) {
        if let Some(old) = self.nat.replace(addr(public)) {
            self.stale.push(old);
        }
    }

    /// Where a datagram from `src` to `dst` really goes (through the NAT),
    /// and from where; `None`: lost at the NAT.
    fn through_nat(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let Some(public) = self.nat else {
            return Some((src, dst));
        };
        if src == addr(GW_A) && dst == addr(GW_B) {
            return Some((public, dst));
        }
        if dst == public {
            return Some((src, addr(GW_A)));
        }
        if self.stale.contains(&dst) {
            self.nat_lost += 1;
            return None;
        }
        Some((src, dst))
    }

    fn is_gateway(&self, dst: SocketAddr) -> bool {
        dst == addr(GW_A) || dst == addr(GW_B) || Some(dst) == self.nat || self.stale.contains(&dst)
    }

    /// Delivers `bytes` from `from` to the gateway at `to`, then carries
    /// whatever crosses between the gateways, and returns what reached
    /// the PBXs (destination, bytes).
    fn deliver(&mut self, from: &str, to: &str, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut queue = vec![(addr(from), addr(to), bytes.to_vec())];
        let mut out = Vec::new();
        while let Some((src, dst, mut data)) = queue.pop() {
            let Some((src, dst)) = self.through_nat(src, dst) else {
                continue;
            };
            let mut tx = VecTransmit::new();
            let worker = if dst == addr(GW_A) {
                &mut self.a
            } else {
                &mut self.b
            };
            worker.handle_datagram(self.now, src, &mut data, &mut tx);
            for (d, bytes) in tx.take() {
                if self.is_gateway(d) {
                    queue.push((dst, d, bytes));
                } else {
                    out.push((d, bytes));
                }
            }
        }
        out
    }

    /// Advances the clock by `ms`, firing timers (trunk ticks).
    fn advance(&mut self, ms: u64) -> Vec<(SocketAddr, Vec<u8>)> {
        let end = self.now + Duration::from_millis(ms);
        let mut out = Vec::new();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .filter(|t| *t <= end);
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for gw in [GW_A, GW_B] {
                let mut tx = VecTransmit::new();
                let worker = if gw == GW_A { &mut self.a } else { &mut self.b };
                worker.handle_timeout(self.now, &mut tx);
                for (d, bytes) in tx.take() {
                    if self.is_gateway(d) {
                        out.extend(self.deliver(gw, &d.to_string(), &bytes));
                    } else {
                        out.push((d, bytes));
                    }
                }
            }
        }
        self.now = end;
        out
    }
}

/// Site A registering with site B ("gw" on both sides), B's peer for A
/// dynamic; no credentials yet.
fn nat_sites() -> (Config, Config) {
    let mut ca = site(GW_A, PBX_A, GW_B, TrunkSettings::default());
    ca.peers[1].register = Some(PeerName::new("gw").unwrap());
    let mut cb = site(GW_B, PBX_B, GW_A, TrunkSettings::default());
    cb.peers[1].host = PeerHost::Dynamic;
    (ca, cb)
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).unwrap()
}

fn iax(src: u16, dst: u16, ts: u32, o: u8, i: u8, sub: IaxSubclass, ies: IeList) -> Vec<u8> {
    FullFrameRepr::iax(
        cn(src),
        CallNumber::new(dst).unwrap(),
        ts,
        SeqNo(o),
        SeqNo(i),
        sub,
        ies,
    )
    .to_vec()
}

fn new_frame(src: u16, called: &str) -> Vec<u8> {
    let ies = IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, called).unwrap())
        .with(Ie::calltoken(b"").unwrap());
    iax(src, 0, 3, 0, 0, IaxSubclass::New, ies)
}

/// A mini frame of `len` bytes of `byte` from `call` at `ts`.
fn mini(call: u16, ts: u16, byte: u8, len: usize) -> Vec<u8> {
    let repr = MiniFrameRepr {
        source_call_number: cn(call),
        timestamp: Timestamp16(ts),
        payload: vec![byte; len],
    };
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

fn full(bytes: &[u8]) -> FullFrame<&[u8]> {
    FullFrame::new_checked(bytes).unwrap()
}

/// Sets up a call (NEW, ACCEPT) and returns the call numbers PBX A and
/// PBX B see for the far side.
fn set_up(pair: &mut Pair) -> (u16, u16) {
    let out = pair.deliver(PBX_A, GW_A, &new_frame(100, "600"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(PBX_B));
    let at_b = full(&out[0].1);
    assert_eq!(at_b.iax_subclass(), Some(IaxSubclass::New));
    assert_eq!(at_b.dest_call_number(), CallNumber::UNKNOWN);
    let b_sees = at_b.source_call_number().get();
    // Everything but the call numbers is untouched.
    assert_eq!(out[0].1[4..], new_frame(100, "600")[4..]);

    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(PBX_A));
    let at_a = full(&out[0].1);
    assert_eq!(at_a.iax_subclass(), Some(IaxSubclass::Accept));
    assert_eq!(at_a.dest_call_number(), cn(100));
    let a_sees = at_a.source_call_number().get();
    // PBX A's ACK of the ACCEPT: the first frame it addresses to the call,
    // after which the gateways trunk the call's voice towards it.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 10, 1, 1, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0, full(&out[0].1).dest_call_number()),
        (addr(PBX_B), cn(200))
    );
    (a_sees, b_sees)
}

fn check(pair: &Pair) {
    pair.a.relay().check_invariants().unwrap();
    pair.b.relay().check_invariants().unwrap();
}

#[test]
fn call_setup_media_through_trunk_and_hangup() {
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    check(&pair);
    assert_eq!(pair.a.relay().active_calls(), 1);

    // Voice A -> B: mini frames become trunk entries, then minis again.
    let mut sent = Vec::new();
    for k in 0..5u16 {
        let buf = mini(100, 1000 + 20 * k, k as u8, 160);
        assert!(
            pair.deliver(PBX_A, GW_A, &buf).is_empty(),
            "voice waits for the tick"
        );
        sent.push(MiniFrameRepr::parse(&buf).unwrap());
    }
    let out = pair.advance(20);
    assert_eq!(out.len(), 5);
    for ((to, bytes), mini) in out.iter().zip(&sent) {
        assert_eq!(*to, addr(PBX_B));
        let got = MiniFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(got.source_call_number(), cn(b_sees));
        assert_eq!(got.timestamp(), mini.timestamp);
        assert_eq!(got.payload(), &mini.payload[..]);
    }
    let sa = pair.a.counters().snapshot();
    assert_eq!(sa.tx_trunk_frames, 1);
    assert_eq!(sa.tx_trunk_entries, 5);

    // Voice B -> A.
    let buf = mini(200, 7, 9, 160);
    pair.deliver(PBX_B, GW_B, &buf);
    let out = pair.advance(20);
    assert_eq!(out.len(), 1);
    let got = MiniFrame::new_checked(&out[0].1[..]).unwrap();
    assert_eq!(
        (out[0].0, got.source_call_number(), got.timestamp()),
        (addr(PBX_A), cn(a_sees), Timestamp16(7))
    );

    // HANGUP from A, ACK from B: the call lingers, then is freed.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 5000, 1, 1, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(full(&out[0].1).dest_call_number(), cn(200));
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 5000, 1, 2, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Ack));
    assert_eq!(pair.a.counters().snapshot().calls_ended, 1);
    pair.advance(11_000);
    assert_eq!(pair.a.relay().active_calls(), 0);
    assert_eq!(pair.b.relay().active_calls(), 0);
    check(&pair);
    // A late retransmission of the HANGUP now draws an INVAL.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 5000, 1, 1, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Inval));
}

#[test]
fn no_timestamp_trunks_and_calltoken() {
    let settings = TrunkSettings {
        timestamps: false,
        ..TrunkSettings::default()
    };
    let mut pair = Pair::new(settings);
    // CALLTOKEN from the far PBX comes from call 1 and reaches PBX A as
    // from call 1; the re-sent NEW maps to the same call.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(100, "600"));
    let b_sees = full(&out[0].1).source_call_number().get();
    let token = IeList::new().with(Ie::calltoken(b"123?abc").unwrap());
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(1, b_sees, 3, 0, 1, IaxSubclass::CallToken, token),
    );
    let f = full(&out[0].1);
    assert_eq!(
        (f.source_call_number(), f.dest_call_number()),
        (CallNumber::STATELESS, cn(100))
    );
    let out = pair.deliver(PBX_A, GW_A, &new_frame(100, "600"));
    assert_eq!(
        full(&out[0].1).source_call_number().get(),
        b_sees,
        "same call, same number"
    );
    assert_eq!(pair.a.relay().active_calls(), 1);
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    assert_eq!(out.len(), 1);

    let buf = mini(100, 40, 1, 20);
    pair.deliver(PBX_A, GW_A, &buf);
    let out = pair.advance(20);
    assert_eq!(out.len(), 1);
    assert_eq!(
        MiniFrame::new_checked(&out[0].1[..]).unwrap().payload(),
        &[1; 20][..]
    );
    check(&pair);
}

#[test]
fn a_new_sent_again_crosses_the_gateway_link_twice_and_the_far_pbx_gets_one() {
    let mut pair = Pair::new(TrunkSettings::default());
    let first = new_frame(100, "600");
    let out = pair.deliver(PBX_A, GW_A, &first);
    assert_eq!(out.len(), 1, "the first NEW crosses once");
    let b_sees = full(&out[0].1).source_call_number().get();
    let token = IeList::new().with(Ie::calltoken(b"123?abc").unwrap());
    pair.deliver(
        PBX_B,
        GW_B,
        &iax(1, b_sees, 3, 0, 1, IaxSubclass::CallToken, token.clone()),
    );
    // The NEW with the token: gateway A sends two identical copies on the
    // link; gateway B relays the first to PBX B and drops the second.
    let with_token = iax(
        100,
        0,
        3,
        0,
        0,
        IaxSubclass::New,
        IeList::new()
            .with(Ie::version())
            .with(Ie::string(IeType::CalledNumber, "600").unwrap())
            .with(Ie::calltoken(b"123?abc").unwrap()),
    );
    let on_link = |pair: &mut Pair| {
        let mut tx = VecTransmit::new();
        pair.a
            .handle_datagram(pair.now, addr(PBX_A), &mut with_token.clone(), &mut tx);
        tx.take()
    };
    let to_b = |pair: &mut Pair, copies: &[(SocketAddr, Vec<u8>)]| {
        let mut tx = VecTransmit::new();
        for (to, bytes) in copies {
            assert_eq!(*to, addr(GW_B));
            pair.b
                .handle_datagram(pair.now, addr(GW_A), &mut bytes.clone(), &mut tx);
        }
        tx.take()
    };
    let copies = on_link(&mut pair);
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0], copies[1]);
    let out = to_b(&mut pair, &copies);
    assert_eq!(out.len(), 1, "PBX B gets one");
    assert_eq!(out[0].0, addr(PBX_B));
    assert_eq!(full(&out[0].1).source_call_number().get(), b_sees);
    assert_eq!(full(&out[0].1).payload(), full(&with_token).payload());
    let link_copies = |pair: &Pair| pair.b.counters().snapshot().drops(DropReason::LinkCopy);
    assert_eq!(link_copies(&pair), 1);
    // PBX A retransmits it 2 s later: one of the two copies passes again.
    pair.advance(2000);
    let copies = on_link(&mut pair);
    assert_eq!(copies.len(), 2);
    assert_eq!(to_b(&mut pair, &copies).len(), 1);
    assert_eq!(link_copies(&pair), 2);
    // Had the first copy been lost on the WAN, the second passes.
    pair.advance(2000);
    let copies = on_link(&mut pair);
    assert_eq!(to_b(&mut pair, &copies[1..]).len(), 1);
    assert_eq!(link_copies(&pair), 2);
    assert_eq!(
        (pair.a.relay().active_calls(), pair.b.relay().active_calls()),
        (1, 1)
    );
    // Toward a PBX, and for any other frame, one copy.
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    assert_eq!(out.len(), 1);
    let a_sees = full(&out[0].1).source_call_number().get();
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 10, 1, 1, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(out.len(), 1);
    check(&pair);
}

#[test]
fn strangers_unrouted_and_transfers() {
    let mut pair = Pair::new(TrunkSettings::default());
    // A stranger's NEW is dropped silently.
    assert!(pair
        .deliver("10.9.9.9:4569", GW_A, &new_frame(100, "600"))
        .is_empty());
    assert_eq!(pair.a.counters().snapshot().drops(DropReason::Stranger), 1);
    // An unrouted number gets a stateless REJECT, and no state is kept.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(100, "700"));
    let f = full(&out[0].1);
    assert_eq!(
        (out[0].0, f.iax_subclass(), f.source_call_number()),
        (
            addr(PBX_A),
            Some(IaxSubclass::Reject),
            CallNumber::STATELESS
        )
    );
    assert_eq!(pair.a.relay().active_calls(), 0);

    let (a_sees, b_sees) = set_up(&mut pair);
    // B sends TXREQ (o1 i1, with IEs): it reaches A as a PING in the same
    // sequence slot, without its IEs.
    let txreq_ies = IeList::new().with(Ie::callno(cn(4321)));
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 100, 1, 1, IaxSubclass::TxReq, txreq_ies),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(PBX_A));
    let ping = full(&out[0].1);
    assert_eq!(ping.iax_subclass(), Some(IaxSubclass::Ping));
    assert_eq!(
        (ping.source_call_number(), ping.dest_call_number()),
        (cn(a_sees), cn(100))
    );
    assert_eq!(
        (ping.oseqno(), ping.iseqno(), ping.timestamp()),
        (SeqNo(1), SeqNo(1), 100)
    );
    assert!(ping.payload().is_empty());
    // A's PONG (o1 i2, echoing ts 100) reaches B as the TXREJ, same slot.
    let pong_ies = IeList::new().with(Ie::u32(IeType::RrJitter, 5));
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 100, 1, 2, IaxSubclass::Pong, pong_ies),
    );
    assert_eq!(out[0].0, addr(PBX_B));
    let rej = full(&out[0].1);
    assert_eq!(rej.iax_subclass(), Some(IaxSubclass::TxRej));
    assert_eq!(
        (rej.source_call_number(), rej.dest_call_number()),
        (cn(b_sees), cn(200))
    );
    assert_eq!(
        (rej.oseqno(), rej.iseqno(), rej.timestamp()),
        (SeqNo(1), SeqNo(2), 100)
    );
    assert!(rej.payload().is_empty());
    // A later PONG to a real PING passes unchanged; sequence numbers are
    // never touched.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 300, 2, 2, IaxSubclass::Pong, IeList::new()),
    );
    let f = full(&out[0].1);
    assert_eq!(
        (f.iax_subclass(), f.oseqno(), f.iseqno()),
        (Some(IaxSubclass::Pong), SeqNo(2), SeqNo(2))
    );
    // Transfer frames that only follow an accepted TXREQ are dropped.
    assert!(pair
        .deliver(
            PBX_A,
            GW_A,
            &iax(100, a_sees, 400, 3, 2, IaxSubclass::TxReady, IeList::new())
        )
        .is_empty());
    assert_eq!(pair.b.counters().snapshot().transfers_refused, 1);

    // A trunk frame from the PBX (not a trunk peer) is refused.
    let mut t = vec![0, 0, 1, 1, 0, 0, 0, 0];
    t.extend_from_slice(&[0, 2, 0, 100, 0, 0, 7, 7]);
    assert!(pair.deliver(PBX_A, GW_A, &t).is_empty());
    assert_eq!(
        pair.a
            .counters()
            .snapshot()
            .drops(DropReason::TrunkNotAllowed),
        1
    );
    check(&pair);
}

#[test]
fn idle_and_unanswered_calls_are_reaped() {
    let mut pair = Pair::new(TrunkSettings::default());
    set_up(&mut pair);
    pair.deliver(PBX_A, GW_A, &new_frame(300, "601")); // never answered
    assert_eq!(pair.a.relay().active_calls(), 2);
    pair.advance(45_000);
    assert_eq!(
        pair.a.relay().active_calls(),
        1,
        "unanswered call reaped after the setup timeout"
    );
    pair.advance(20_000);
    assert_eq!(pair.a.relay().active_calls(), 0, "idle call reaped");
    assert_eq!(pair.a.counters().snapshot().calls_reaped, 2);
    check(&pair);
}

#[test]
fn trunk_frames_fill_the_mtu() {
    let mut pair = Pair::new(TrunkSettings::default());
    // (PBX A's number, gateway A's number) of each call.
    let mut calls = Vec::new();
    for k in 0..40u16 {
        let out = pair.deliver(PBX_A, GW_A, &new_frame(100 + k, "600"));
        let b_sees = full(&out[0].1).source_call_number().get();
        let accept = iax(
            500 + k,
            b_sees,
            10,
            0,
            1,
            IaxSubclass::Accept,
            IeList::new(),
        );
        let out = pair.deliver(PBX_B, GW_B, &accept);
        calls.push((100 + k, full(&out[0].1).source_call_number().get()));
    }
    let before = pair.a.counters().snapshot();
    // Frames that fill up leave at once; the rest at the tick.
    let mut out = Vec::new();
    for &(c, _) in &calls {
        let buf = mini(c, 20, 0xff, 160);
        out.extend(pair.deliver(PBX_A, GW_A, &buf));
    }
    out.extend(pair.advance(20));
    assert_eq!(out.len(), 40);
    let after = pair.a.counters().snapshot();
    // 166-byte entries in 1240-byte frames hold 7; towards a gateway the
    // entries are grouped by our call number modulo 4, each group in as
    // few frames as fit.
    let mut per_group = [0u64; 4];
    for &(_, ours) in &calls {
        per_group[usize::from(ours % 4)] += 1;
    }
    let expected: u64 = per_group.iter().map(|n| n.div_ceil(7)).sum();
    assert_eq!(after.tx_trunk_frames - before.tx_trunk_frames, expected);
    assert_eq!(after.tx_trunk_entries - before.tx_trunk_entries, 40);
}

/// A valid relay program for `fuzzing::relay`: a call from the PBX, its
/// ACCEPT, voice, a trunk frame back, a HANGUP.
fn relay_program() -> Vec<u8> {
    let mut p = Vec::new();
    let mut rec = |control: u8, bytes: &[u8]| {
        p.push(control);
        p.push(bytes.len() as u8);
        p.extend_from_slice(bytes);
    };
    rec(0, &new_frame(100, "600"));
    // The first call number the relay hands out with seed 7 is unknown
    // to the test; the ACCEPT names the call by a guess the mutator can
    // fix, and the NEW alone already exercises creation.
    rec(
        1,
        &iax(300, 2, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    let m = mini(100, 20, 5, 20);
    rec(0, &m);
    rec(
        0x0c,
        &[0, 0, 1, 1, 0, 0, 0, 40, 0, 4, 1, 44, 0, 20, 1, 2, 3, 4],
    );
    rec(2, &[0, 0, 1, 0, 0, 0, 0, 40, 1, 44, 0, 2, 9, 9]);
    rec(3, &new_frame(101, "600"));
    rec(
        0,
        &iax(100, 2, 500, 1, 1, IaxSubclass::Hangup, IeList::new()),
    );
    p
}

#[test]
fn relay_survives_mutated_and_random_programs() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    trunk_core::fuzzing::relay(&relay_program());
    let mut runner = TestRunner::new(PtConfig {
        cases: 64,
        ..PtConfig::default()
    });
    let seed = relay_program();
    runner
        .run(
            &(
                proptest::collection::vec(any::<(usize, u8)>(), 0..40),
                proptest::collection::vec(any::<u8>(), 0..600),
            ),
            |(edits, random)| {
                let mut p = seed.clone();
                for (at, byte) in edits {
                    let i = at % p.len();
                    p[i] = byte;
                }
                trunk_core::fuzzing::relay(&p);
                trunk_core::fuzzing::relay(&random);
                Ok(())
            },
        )
        .unwrap();
}

fn relay_corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/relay")
}

/// Replays the committed corpus of the `relay` fuzz target (seeds and any
/// crash found since) as a regression test.
#[test]
fn relay_fuzz_corpus_replays() {
    let mut n = 0;
    for entry in std::fs::read_dir(relay_corpus_dir()).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        trunk_core::fuzzing::relay(&data);
        n += 1;
    }
    assert!(n > 0, "the relay corpus is empty");
}

/// Writes the seed programs of the `relay` fuzz target:
/// `cargo test -p trunk-core --test relay -- --ignored regenerate_relay_seeds`.
#[test]
#[ignore = "writes the seed corpus"]
fn regenerate_relay_seeds() {
    let dir = relay_corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds = vec![relay_program()];
    // The same call set up from the gateway side, and a registration.
    let mut p = Vec::new();
    let mut rec = |control: u8, bytes: &[u8]| {
        p.push(control);
        p.push(bytes.len() as u8);
        p.extend_from_slice(bytes);
    };
    rec(1, &new_frame(400, "100"));
    rec(
        0,
        &iax(500, 2, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    rec(0, &iax(500, 2, 11, 1, 1, IaxSubclass::TxReq, IeList::new()));
    rec(1, &iax(400, 2, 12, 1, 2, IaxSubclass::Ping, IeList::new()));
    let reg = IeList::new()
        .with(Ie::string(IeType::Username, "siteA").unwrap())
        .with(Ie::calltoken(b"").unwrap());
    rec(3, &iax(600, 0, 1, 0, 0, IaxSubclass::RegReq, reg));
    rec(2, &iax(700, 0, 1, 0, 0, IaxSubclass::Poke, IeList::new()));
    seeds.push(p);
    for seed in seeds {
        let hash = seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        std::fs::write(dir.join(format!("{hash:016x}")), seed).unwrap();
    }
}

#[test]
fn poke_and_registration_cross_the_pair_and_leave_no_state() {
    let mut pair = Pair::new(TrunkSettings::default());
    // PBX A qualifies PBX B through both gateways: the POKE goes end to
    // end, the stateless PONG from call 1 comes back as from call 1.
    let poke = iax(
        300,
        0,
        7,
        0,
        0,
        IaxSubclass::Poke,
        IeList::new().with(Ie::calltoken(b"").unwrap()),
    );
    let out = pair.deliver(PBX_A, GW_A, &poke);
    assert_eq!(out.len(), 1);
    let at_b = full(&out[0].1);
    assert_eq!(
        (out[0].0, at_b.iax_subclass()),
        (addr(PBX_B), Some(IaxSubclass::Poke))
    );
    let b_sees = at_b.source_call_number().get();
    let pong = iax(1, b_sees, 7, 0, 1, IaxSubclass::Pong, IeList::new());
    let out = pair.deliver(PBX_B, GW_B, &pong);
    let f = full(&out[0].1);
    assert_eq!(
        (out[0].0, f.iax_subclass()),
        (addr(PBX_A), Some(IaxSubclass::Pong))
    );
    assert_eq!(
        (f.source_call_number(), f.dest_call_number()),
        (CallNumber::STATELESS, cn(300))
    );
    // PBX A's ACK to call 1 goes no further.
    let ack = iax(300, 1, 7, 0, 1, IaxSubclass::Ack, IeList::new());
    assert!(pair.deliver(PBX_A, GW_A, &ack).is_empty());
    assert_eq!(
        pair.a.counters().snapshot().drops(DropReason::StatelessAck),
        1
    );

    // A registration: REGREQ, REGAUTH, REGREQ with the answer, REGACK.
    let user = || IeList::new().with(Ie::string(IeType::Username, "siteA").unwrap());
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(400, 0, 1, 0, 0, IaxSubclass::RegReq, user()),
    );
    let b_sees = full(&out[0].1).source_call_number().get();
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(500, b_sees, 2, 0, 1, IaxSubclass::RegAuth, user()),
    );
    let a_sees = full(&out[0].1).source_call_number().get();
    assert_eq!(full(&out[0].1).dest_call_number(), cn(400));
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(400, a_sees, 3, 1, 1, IaxSubclass::RegReq, user()),
    );
    assert_eq!(full(&out[0].1).dest_call_number(), cn(500));
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(500, b_sees, 4, 1, 2, IaxSubclass::RegAck, user()),
    );
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::RegAck));
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(400, a_sees, 4, 2, 2, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(
        out[0].0,
        addr(PBX_B),
        "the final ACK still passes during the linger"
    );
    // Both exchanges end: after the linger (and the setup timeout for the
    // POKE, whose PONG came statelessly) the tables are empty.
    pair.advance(45_000);
    assert_eq!(pair.a.relay().active_calls(), 0);
    assert_eq!(pair.b.relay().active_calls(), 0);
    assert_eq!(
        pair.a.counters().snapshot().calls_created,
        0,
        "no call, only exchanges"
    );
    check(&pair);
}

#[test]
fn gateways_probe_their_links_and_answer_each_others_probes() {
    use trunk_core::relay::LinkState;
    // With no call up, each gateway POKEs the other from its reserved
    // probe number every 10 s; the far gateway answers with a stateless
    // PONG itself, and nothing reaches a PBX.
    let mut pair = Pair::new(TrunkSettings::default());
    assert!(
        pair.advance(25_000).is_empty(),
        "probes stay between the gateways"
    );
    for w in [&pair.a, &pair.b] {
        let links = w.relay().link_views(pair.now);
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].peer.as_str(), links[0].state),
            ("gw", LinkState::Ok)
        );
        assert_eq!(links[0].rtt, Some(Duration::ZERO), "delivered at once here");
        let c = w.counters().snapshot();
        assert_eq!(c.replies_sent, 6, "3 probes sent and 3 answered");
        assert_eq!(c.total_drops(), 0);
    }
    // Gateway B stops answering (its side of the link is gone): A counts
    // three missed probes in a row and calls the link unreachable.
    let mut tx = VecTransmit::new();
    let mut now = pair.now;
    let mut states = Vec::new();
    for _ in 0..(45_000 / 250) {
        now += Duration::from_millis(250);
        pair.a.handle_timeout(now, &mut tx);
        states.push(pair.a.relay().link_views(now)[0].state);
    }
    let probes = tx
        .take()
        .into_iter()
        .filter(|(to, b)| *to == addr(GW_B) && full(b).iax_subclass() == Some(IaxSubclass::Poke))
        .count();
    assert!((4..=5).contains(&probes), "{probes} probes in 45 s");
    assert_eq!(states.last(), Some(&LinkState::Unreachable));
    let first_down = states
        .iter()
        .position(|s| *s == LinkState::Unreachable)
        .unwrap();
    assert!(
        first_down * 250 <= 33_000,
        "unreachable after {} ms",
        first_down * 250
    );
    // A POKE from a PBX is still relayed end to end, not answered here.
    let poke = iax(300, 0, 7, 0, 0, IaxSubclass::Poke, IeList::new());
    let out = pair.deliver(PBX_A, GW_A, &poke);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(PBX_B));
}

#[test]
fn keepalive_sets_the_probe_interval_and_zero_turns_probes_off() {
    let probes = |keepalive: Option<Duration>| {
        let mut gw = peer("gw", GW_B, PeerKind::Gateway, None);
        gw.keepalive = keepalive;
        let (mut w, start) = single(
            vec![peer("pbx", PBX_A, PeerKind::Pbx, None), gw],
            vec![route("pbx", None, "gw")],
        );
        let mut tx = VecTransmit::new();
        let mut now = start;
        while now.saturating_duration_since(start) < Duration::from_secs(10) {
            now += Duration::from_millis(250);
            w.handle_timeout(now, &mut tx);
        }
        tx.take()
            .into_iter()
            .filter(|(to, b)| {
                *to == addr(GW_B) && full(b).iax_subclass() == Some(IaxSubclass::Poke)
            })
            .count()
    };
    assert_eq!(
        probes(Some(Duration::from_secs(3))),
        4,
        "at 0, 3, 6 and 9 s"
    );
    assert_eq!(probes(None), 1, "the default, 10 s");
    assert_eq!(probes(Some(Duration::ZERO)), 0);
}

#[test]
fn a_requester_may_use_call_number_1() {
    // Asterisk never allocates call number 1 (its stateless replies come
    // from it), but it maps frames by the peer's number whatever it is,
    // and the `iax2` crate registers from call 1. The exchange crosses
    // the pair; a stateless reply from the far side still passes as one.
    let mut pair = Pair::new(TrunkSettings::default());
    let user = || IeList::new().with(Ie::string(IeType::Username, "alice").unwrap());
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(1, 0, 1, 0, 0, IaxSubclass::RegReq, user()),
    );
    assert_eq!(out.len(), 1, "relayed, not dropped");
    let b_sees = full(&out[0].1).source_call_number().get();
    assert!(b_sees > 1);
    // The far PBX challenges statelessly first (CALLTOKEN from call 1).
    let token = IeList::new().with(Ie::calltoken(b"t0k").unwrap());
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(1, b_sees, 1, 0, 1, IaxSubclass::CallToken, token),
    );
    let f = full(&out[0].1);
    assert_eq!(
        (f.source_call_number(), f.dest_call_number()),
        (CallNumber::STATELESS, cn(1))
    );
    // The REGREQ again with the token: the same exchange.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(1, 0, 1, 0, 0, IaxSubclass::RegReq, user()),
    );
    assert_eq!(full(&out[0].1).source_call_number().get(), b_sees);
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(500, b_sees, 2, 0, 1, IaxSubclass::RegAuth, user()),
    );
    let f = full(&out[0].1);
    let a_sees = f.source_call_number().get();
    assert_eq!(f.dest_call_number(), cn(1));
    assert!(a_sees > 1);
    // Frames from call 1 addressed to the exchange are the requester's
    // own, not stateless replies: they reach the far PBX renumbered.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(1, a_sees, 3, 1, 1, IaxSubclass::RegReq, user()),
    );
    let f = full(&out[0].1);
    assert_eq!(
        (f.source_call_number(), f.dest_call_number()),
        (cn(b_sees), cn(500))
    );
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(500, b_sees, 4, 1, 2, IaxSubclass::RegAck, user()),
    );
    assert_eq!(full(&out[0].1).dest_call_number(), cn(1));
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(1, a_sees, 4, 2, 2, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(full(&out[0].1).dest_call_number(), cn(500));
    check(&pair);
    pair.advance(11_000);
    assert_eq!(
        (pair.a.relay().active_calls(), pair.b.relay().active_calls()),
        (0, 0)
    );
    check(&pair);
}

#[test]
fn a_number_reused_after_hangup_starts_a_new_call() {
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    let hangup = iax(100, a_sees, 900, 1, 1, IaxSubclass::Hangup, IeList::new());
    pair.deliver(PBX_A, GW_A, &hangup);
    // Within the linger, PBX A places a new call from the same number (a
    // peer that does not quarantine its numbers).
    let out = pair.deliver(PBX_A, GW_A, &new_frame(100, "600"));
    let f = full(&out[0].1);
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
    assert_ne!(
        f.source_call_number().get(),
        b_sees,
        "a new call, with a new number"
    );
    assert_eq!(pair.a.relay().active_calls(), 1);
    assert_eq!(pair.a.counters().snapshot().calls_created, 2);
    // A retransmission of a NEW is never taken for a new call.
    let mut again = new_frame(100, "600");
    FullFrame::new_checked(&mut again[..])
        .unwrap()
        .set_retransmission(true);
    let out = pair.deliver(PBX_A, GW_A, &again);
    assert_eq!(full(&out[0].1).source_call_number(), f.source_call_number());
    assert_eq!(pair.a.counters().snapshot().calls_created, 2);
    check(&pair);
}

#[test]
fn an_answer_from_the_number_of_a_lingering_call_binds_the_new_call() {
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    // PBX A hangs up; PBX B acknowledges and forgets the call at once,
    // while both gateways keep its entry for the linger.
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 900, 1, 1, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Hangup));
    pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 900, 1, 2, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(pair.b.relay().active_calls(), 1, "the old call lingers");
    // A new call from another number of PBX A; PBX B, which does not
    // quarantine its numbers, answers it from the number of the old call.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(101, "600"));
    let b_sees_new = full(&out[0].1).source_call_number().get();
    assert_ne!(b_sees_new, b_sees);
    let drops_before = pair.b.counters().snapshot().drops(DropReason::UnknownCall);
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(
            200,
            b_sees_new,
            10,
            0,
            1,
            IaxSubclass::Accept,
            IeList::new(),
        ),
    );
    assert_eq!(out.len(), 1, "the ACCEPT reaches PBX A");
    let at_a = full(&out[0].1);
    assert_eq!(
        (out[0].0, at_a.iax_subclass(), at_a.dest_call_number()),
        (addr(PBX_A), Some(IaxSubclass::Accept), cn(101))
    );
    assert_eq!(
        pair.b.counters().snapshot().drops(DropReason::UnknownCall),
        drops_before
    );
    // The lingering entry gave way; the new call is bound to 200.
    assert_eq!(pair.b.relay().active_calls(), 1);
    check(&pair);
    // The new call carries on: PBX A's ACK reaches PBX B's number 200.
    let a_sees_new = at_a.source_call_number().get();
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(101, a_sees_new, 10, 1, 1, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(
        (out[0].0, full(&out[0].1).dest_call_number()),
        (addr(PBX_B), cn(200))
    );
    // A reply from a number held by a live call is still refused.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(102, "600"));
    let b_sees_third = full(&out[0].1).source_call_number().get();
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(
            200,
            b_sees_third,
            10,
            0,
            1,
            IaxSubclass::Accept,
            IeList::new(),
        ),
    );
    assert!(out.is_empty());
    assert_eq!(
        pair.b.counters().snapshot().drops(DropReason::UnknownCall),
        drops_before + 1
    );
    check(&pair);
}

/// One relay core with the given peers and routes, for the admission tests.
fn single(peers: Vec<Peer>, routes: Vec<Route>) -> (RelayWorker, Instant) {
    let config = Config {
        listen: addr(GW_A),
        workers: NonZeroUsize::new(1).unwrap(),
        udp_gso: true,
        peers,
        routes,
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    };
    let now = Instant::from_millis(5);
    (
        RelayWorker::new(Arc::new(Relay::new(&config, now, 9)), 0),
        now,
    )
}

fn feed(w: &mut RelayWorker, now: Instant, from: &str, bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut data = bytes.to_vec();
    let mut tx = VecTransmit::new();
    w.handle_datagram(now, addr(from), &mut data, &mut tx);
    tx.take()
}

#[test]
fn voice_is_trunked_only_to_a_peer_that_has_addressed_the_call() {
    use trunk_core::wire::{MetaTrunkFrame, TrunkLayout};
    // An Asterisk with `trunk=yes` and its default layout (no entry
    // timestamps) calls through the gateway. Asterisk loses the rest of a
    // trunk frame after an entry for a call it does not know (PROTOCOL.md
    // 2.5), so until it has sent a frame to our call number its voice goes
    // as mini frames.
    let nots = TrunkSettings {
        timestamps: false,
        ..TrunkSettings::default()
    };
    let (mut w, mut now) = single(
        vec![
            peer("ast", PBX_A, PeerKind::Pbx, Some(nots)),
            peer(
                "gw",
                GW_B,
                PeerKind::Gateway,
                Some(TrunkSettings::default()),
            ),
        ],
        vec![route("ast", None, "gw"), route("gw", None, "ast")],
    );
    let out = feed(&mut w, now, PBX_A, &new_frame(100, "600"));
    let gw_sees = full(&out[0].1).source_call_number().get();
    let out = feed(
        &mut w,
        now,
        GW_B,
        &iax(300, gw_sees, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    let ast_sees = full(&out[0].1).source_call_number().get();
    assert_eq!(out[0].0, addr(PBX_A));

    // Voice from the far gateway before Asterisk has ACKed the ACCEPT: it
    // may not have the ACCEPT yet, so a mini frame.
    let out = feed(&mut w, now, GW_B, &mini(300, 40, 7, 160));
    assert_eq!(out.len(), 1, "sent at once, not held for a trunk tick");
    let m = MiniFrame::new_checked(&out[0].1[..]).unwrap();
    assert_eq!(
        (out[0].0, m.source_call_number(), m.payload()),
        (addr(PBX_A), cn(ast_sees), &[7; 160][..])
    );
    let mut tx = VecTransmit::new();
    now += Duration::from_millis(20);
    w.handle_timeout(now, &mut tx);
    assert!(tx.take().is_empty(), "no trunk frame for it");

    // Asterisk ACKs the ACCEPT; from now on its voice is trunked, in the
    // layout it uses by default.
    let out = feed(
        &mut w,
        now,
        PBX_A,
        &iax(100, ast_sees, 12, 1, 1, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(out[0].0, addr(GW_B));
    for k in 0..3u8 {
        assert!(feed(
            &mut w,
            now,
            GW_B,
            &mini(300, 60 + 20 * u16::from(k), k, 160)
        )
        .is_empty());
    }
    let mut tx = VecTransmit::new();
    now += Duration::from_millis(20);
    w.handle_timeout(now, &mut tx);
    let sent = tx.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(PBX_A));
    let frame = MetaTrunkFrame::new_checked(&sent[0].1[..]).unwrap();
    assert_eq!(frame.layout(), TrunkLayout::NoTimestamps);
    let entries: Vec<_> = frame.entries().map(|e| e.unwrap()).collect();
    assert_eq!(entries.len(), 3);
    for (k, e) in entries.iter().enumerate() {
        assert_eq!(
            (e.call_number, e.flag, e.timestamp),
            (cn(ast_sees), false, None)
        );
        assert_eq!(e.payload, &[k as u8; 160][..]);
    }
    let c = w.counters().snapshot();
    assert_eq!((c.tx_mini, c.tx_trunk_entries), (1, 3));
    w.relay().check_invariants().unwrap();
}

/// Two workers of one relay between PBX "ast" (trunking with `trunk`) and
/// PBX "far", each routed to the other.
fn two_workers(trunk: Option<TrunkSettings>) -> ([RelayWorker; 2], Instant) {
    let config = Config {
        listen: addr(GW_A),
        workers: NonZeroUsize::new(2).unwrap(),
        udp_gso: true,
        peers: vec![
            peer("ast", PBX_A, PeerKind::Pbx, trunk),
            peer("far", PBX_B, PeerKind::Pbx, None),
        ],
        routes: vec![route("ast", None, "far"), route("far", None, "ast")],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    };
    let now = Instant::from_millis(5);
    let relay = Arc::new(Relay::new(&config, now, 3));
    (
        [
            RelayWorker::new(Arc::clone(&relay), 0),
            RelayWorker::new(relay, 1),
        ],
        now,
    )
}

#[test]
fn each_worker_relays_its_own_calls_entries_of_a_mixed_trunk_frame() {
    use trunk_core::wire::{TrunkFrameBuilder, TrunkLayout};
    // Two workers; an Asterisk trunk peer mixes its calls in one frame.
    // Each worker relays the entries of the calls the steering gives it
    // (call number modulo 2) and names the other for the rest, so that a
    // call's media always goes through one worker's trunk buffer.
    let (mut w, now) = two_workers(Some(TrunkSettings::default()));
    // Calls 100..104 from the Asterisk, each set up through its own worker
    // and ACKed so both sides know it.
    let mut far_sees = Vec::new();
    for call in 100..104u16 {
        let k = usize::from(call % 2);
        let out = feed(&mut w[k], now, PBX_A, &new_frame(call, "600"));
        let ours = full(&out[0].1).source_call_number().get();
        // The steering picks the worker by the sender's call number.
        let out = feed(
            &mut w[usize::from((500 + call) % 2)],
            now,
            PBX_B,
            &iax(
                500 + call,
                ours,
                10,
                0,
                1,
                IaxSubclass::Accept,
                IeList::new(),
            ),
        );
        let ast_sees = full(&out[0].1).source_call_number().get();
        feed(
            &mut w[k],
            now,
            PBX_A,
            &iax(call, ast_sees, 12, 1, 1, IaxSubclass::Ack, IeList::new()),
        );
        far_sees.push((call, ours));
    }
    let mut buf = vec![0; 1400];
    let mut b = TrunkFrameBuilder::new(&mut buf, 1400, TrunkLayout::Timestamps, 40).unwrap();
    for call in [101u16, 100, 103, 102] {
        b.push(
            cn(call),
            Timestamp16(40),
            &[u8::try_from(call - 100).unwrap(); 160],
        )
        .unwrap();
    }
    let len = b.len();
    let frame = buf[..len].to_vec();
    // The steering sends the frame to worker 1 (first entry 101).
    let mut data = frame.clone();
    let mut tx = VecTransmit::new();
    w[1].handle_datagram(now, addr(PBX_A), &mut data, &mut tx);
    assert_eq!(data, frame, "reading a trunk frame leaves it unchanged");
    let by_one: Vec<u8> = tx.take().iter().map(|(_, b)| b[4]).collect();
    assert_eq!(by_one, vec![1, 3], "worker 1 relays calls 101 and 103");
    let others = w[1].take_handoff();
    assert_eq!(others.iter().collect::<Vec<_>>(), vec![0]);
    assert!(w[1].take_handoff().is_empty(), "taken once");
    let mut tx = VecTransmit::new();
    w[0].handle_handed(now, addr(PBX_A), &mut frame.clone(), &mut tx);
    let handed = tx.take();
    assert_eq!(
        handed.iter().map(|(_, b)| b[4]).collect::<Vec<_>>(),
        vec![0, 2]
    );
    for (to, bytes) in &handed {
        let m = MiniFrame::new_checked(&bytes[..]).unwrap();
        let call = 100 + u16::from(bytes[4]);
        let ours = far_sees.iter().find(|(c, _)| *c == call).unwrap().1;
        assert_eq!((*to, m.source_call_number()), (addr(PBX_B), cn(ours)));
    }
    assert!(
        w[0].take_handoff().is_empty(),
        "a handed frame is not handed on"
    );
    let (c0, c1) = (w[0].counters().snapshot(), w[1].counters().snapshot());
    assert_eq!(
        (c1.rx_trunk_frames, c0.rx_trunk_frames),
        (1, 0),
        "counted once"
    );
    assert_eq!((c1.rx_trunk_entries, c0.rx_trunk_entries), (2, 2));
    w[0].relay().check_invariants().unwrap();
}

#[test]
fn a_full_or_mini_frame_that_reaches_another_workers_socket_goes_to_its_owner() {
    // The kernel steers a segmented send (UDP GSO) that stays whole up to
    // the socket (loopback, veth) by its first datagram: the rest may be
    // other workers' calls. The worker that reads such a frame counts it
    // and names its owner instead of relaying it; the owner relays it.
    let (mut w, now) = two_workers(None);
    // A NEW from call 101 (worker 1's) read by worker 0.
    let new = new_frame(101, "600");
    assert!(feed(&mut w[0], now, PBX_A, &new).is_empty());
    assert_eq!(w[0].take_handoff().iter().collect::<Vec<_>>(), vec![1]);
    let mut tx = VecTransmit::new();
    w[1].handle_handed(now, addr(PBX_A), &mut new.clone(), &mut tx);
    let out = tx.take();
    assert_eq!(out.len(), 1, "the owner relays the NEW");
    assert_eq!(out[0].0, addr(PBX_B));
    let ours = full(&out[0].1).source_call_number().get();
    assert!(
        w[1].take_handoff().is_empty(),
        "a handed frame is not handed on"
    );
    // The far end answers on the steered worker; the caller ACKs.
    let out = feed(
        &mut w[usize::from(600u16 % 2)],
        now,
        PBX_B,
        &iax(600, ours, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    let ast_sees = full(&out[0].1).source_call_number().get();
    assert!(feed(
        &mut w[1],
        now,
        PBX_A,
        &iax(101, ast_sees, 12, 1, 1, IaxSubclass::Ack, IeList::new())
    )
    .iter()
    .all(|(to, _)| *to == addr(PBX_B)));
    // A mini of the call read by worker 0: handed over, relayed once.
    let voice = mini(101, 40, 7, 160);
    assert!(feed(&mut w[0], now, PBX_A, &voice).is_empty());
    assert_eq!(w[0].take_handoff().iter().collect::<Vec<_>>(), vec![1]);
    let mut tx = VecTransmit::new();
    w[1].handle_handed(now, addr(PBX_A), &mut voice.clone(), &mut tx);
    let out = tx.take();
    assert_eq!(out.len(), 1);
    let m = MiniFrame::new_checked(&out[0].1[..]).unwrap();
    assert_eq!((out[0].0, m.source_call_number()), (addr(PBX_B), cn(ours)));
    assert_eq!(m.payload(), &[7; 160][..]);
    let (c0, c1) = (w[0].counters().snapshot(), w[1].counters().snapshot());
    assert_eq!((c0.rx_handed_over, c1.rx_handed_over), (2, 0));
    assert_eq!(
        (c0.rx_mini, c1.rx_mini),
        (0, 1),
        "counted once, by the owner"
    );
    assert_eq!((c0.tx_mini, c1.tx_mini), (0, 1));
    w[0].relay().check_invariants().unwrap();
}

#[test]
fn timestamps_of_an_asterisk_trunk_without_entry_timestamps_survive_its_clock_restart() {
    use trunk_core::wire::{TrunkFrameBuilder, TrunkLayout};
    // Asterisk's default trunk layout carries no per-call timestamps: the
    // receiver rebuilds them from the trunk timestamp and its own anchor,
    // and re-anchors when the sender restarts its trunk clock (a frame
    // stamped 0 after 5 s of silence, PROTOCOL.md 13.2, 13.3).
    let nots = TrunkSettings {
        timestamps: false,
        ..TrunkSettings::default()
    };
    let (mut w, start) = single(
        vec![
            peer("ast", PBX_A, PeerKind::Pbx, Some(nots)),
            peer("far", PBX_B, PeerKind::Pbx, None),
        ],
        vec![route("ast", None, "far"), route("far", None, "ast")],
    );
    let out = feed(&mut w, start, PBX_A, &new_frame(100, "600"));
    let ours = full(&out[0].1).source_call_number().get();
    feed(
        &mut w,
        start,
        PBX_B,
        &iax(300, ours, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    let mut at = |ms: u64, trunk_ts: u32| {
        let mut buf = vec![0; 300];
        let mut b =
            TrunkFrameBuilder::new(&mut buf, 300, TrunkLayout::NoTimestamps, trunk_ts).unwrap();
        b.push(cn(100), Timestamp16(0), &[5; 160]).unwrap();
        let len = b.len();
        let out = feed(
            &mut w,
            start + Duration::from_millis(ms),
            PBX_A,
            &buf[..len],
        );
        assert_eq!(out.len(), 1);
        MiniFrame::new_checked(&out[0].1[..]).unwrap().timestamp().0
    };
    // The trunk clock starts 1 s into the call: call time 1000, 1020.
    assert_eq!(at(1000, 0), 1000);
    assert_eq!(at(1020, 20), 1020);
    assert_eq!(at(1040, 40), 1040);
    // Six seconds of silence; the sender's clock starts again at 0.
    assert_eq!(at(7040, 0), 7040);
    assert_eq!(at(7060, 20), 7060);
}

#[test]
fn queued_voice_leaves_before_the_hangup_and_full_voice_frames_of_its_call() {
    use trunk_core::wire::{FrameType, MetaTrunkFrame};
    let (mut w, now) = single(
        vec![
            peer("pbx", PBX_A, PeerKind::Pbx, None),
            peer(
                "gw",
                GW_B,
                PeerKind::Gateway,
                Some(TrunkSettings::default()),
            ),
        ],
        vec![route("pbx", None, "gw"), route("gw", None, "pbx")],
    );
    let out = feed(&mut w, now, PBX_A, &new_frame(100, "600"));
    let ours = full(&out[0].1).source_call_number().get();
    let out = feed(
        &mut w,
        now,
        GW_B,
        &iax(300, ours, 10, 0, 1, IaxSubclass::Accept, IeList::new()),
    );
    let pbx_sees = full(&out[0].1).source_call_number().get();
    let kind = |bytes: &[u8]| {
        if MetaTrunkFrame::new_checked(bytes).is_ok() {
            "trunk"
        } else if full(bytes).frame_type() == FrameType::Voice {
            "voice"
        } else {
            "hangup"
        }
    };
    // A mini waits for the tick; a full voice frame of the call (as at a
    // timestamp wrap, the RFC's rule) sends it first.
    assert!(feed(&mut w, now, PBX_A, &mini(100, 65_500, 1, 160)).is_empty());
    let voice = FullFrameRepr {
        source_call_number: cn(100),
        retransmission: false,
        dest_call_number: cn(pbx_sees),
        timestamp: 65_536 + 4,
        oseqno: SeqNo(1),
        iseqno: SeqNo(1),
        frame_type: FrameType::Voice,
        subclass: trunk_core::wire::Subclass(4),
        payload: trunk_core::wire::FullFramePayload::Raw(vec![2; 160]),
    };
    let out = feed(&mut w, now, PBX_A, &voice.to_vec());
    let kinds: Vec<_> = out.iter().map(|(_, b)| kind(b)).collect();
    assert_eq!(kinds, vec!["trunk", "voice"]);
    // The same before a HANGUP.
    assert!(feed(&mut w, now, PBX_A, &mini(100, 24, 3, 160)).is_empty());
    let out = feed(
        &mut w,
        now,
        PBX_A,
        &iax(
            100,
            pbx_sees,
            5000,
            2,
            1,
            IaxSubclass::Hangup,
            IeList::new(),
        ),
    );
    let kinds: Vec<_> = out.iter().map(|(_, b)| kind(b)).collect();
    assert_eq!(kinds, vec!["trunk", "hangup"]);
    assert!(out.iter().all(|(to, _)| *to == addr(GW_B)));
    let c = w.counters().snapshot();
    assert_eq!((c.tx_trunk_frames, c.tx_trunk_entries), (2, 2));
    w.relay().check_invariants().unwrap();
}

#[test]
fn per_peer_counters_follow_the_traffic() {
    use trunk_core::relay::{CallDirection, CallResult, Direction, Kind};
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    // PBX B answers 300 ms after the NEW.
    pair.advance(300);
    assert_eq!(pair.deliver(PBX_B, GW_B, &answer_from_b(b_sees)).len(), 1);
    // Voice A -> B with one frame missing (ts 1040), then a PING from A
    // answered by B 50 ms later.
    for ts in [1000u16, 1020, 1060, 1080] {
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 1, 160));
    }
    pair.advance(20);
    let ping = iax(100, a_sees, 2000, 1, 2, IaxSubclass::Ping, IeList::new());
    assert_eq!(pair.deliver(PBX_A, GW_A, &ping).len(), 1);
    pair.advance(50);
    let pong = iax(200, b_sees, 2000, 2, 2, IaxSubclass::Pong, IeList::new());
    assert_eq!(pair.deliver(PBX_B, GW_B, &pong).len(), 1);
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 5000, 2, 3, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(out.len(), 1);

    let counters = pair.a.counters();
    let (pbx, gw) = (
        counters.peer(0).unwrap().snapshot(),
        counters.peer(1).unwrap().snapshot(),
    );
    // From PBX A: NEW, ACK, PING, HANGUP; 4 minis of 164 bytes.
    assert_eq!(pbx.packets(Direction::Rx, Kind::Full), 4);
    assert_eq!(
        (
            pbx.packets(Direction::Rx, Kind::Mini),
            pbx.bytes(Direction::Rx, Kind::Mini)
        ),
        (4, 4 * 164)
    );
    assert_eq!(pbx.voice_gaps, 1, "ts 1040 never came");
    // To PBX A: ACCEPT, ANSWER, PONG.
    assert_eq!(pbx.packets(Direction::Tx, Kind::Full), 3);
    // To gateway B: the four voice frames in one trunk frame.
    assert_eq!(gw.packets(Direction::Tx, Kind::Trunk), 1);
    assert_eq!(gw.trunk_entries(Direction::Tx), 4);
    assert_eq!(gw.trunk_frame_entries.count(), 1);
    assert_eq!(
        gw.trunk_frame_entries.cumulative()[3],
        (7.0, 1),
        "4 entries: the <= 7 bucket"
    );
    // The PING went to gateway B, its PONG came back 50 ms later.
    assert_eq!(gw.rtt_us, 50_000);
    // The call ended answered: in from PBX A, out to gateway B.
    assert_eq!(pbx.calls(CallDirection::In, CallResult::Answered), 1);
    assert_eq!(gw.calls(CallDirection::Out, CallResult::Answered), 1);
    let setup = counters.call_setup.snapshot();
    assert_eq!(setup.count(), 1);
    assert!((setup.sum - 0.3).abs() < 1e-9, "{setup:?}");
    // A refused NEW counts as refused, in.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(101, "999"));
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Reject));
    let pbx = pair.a.counters().peer(0).unwrap().snapshot();
    assert_eq!(pbx.calls(CallDirection::In, CallResult::Refused), 1);
    // Status views agree.
    let views = pair.a.relay().peer_views();
    assert_eq!(
        (views[0].name.as_str(), views[1].name.as_str()),
        ("pbx", "gw")
    );
    let calls = pair.a.relay().call_views(pair.now);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].legs[0].media.frames, 4);
    assert_eq!(calls[0].legs[1].their_call_number, Some(b_sees_gw(&pair)));
}

#[test]
fn voice_out_of_order_is_relayed_and_counted_by_the_peer_it_came_from() {
    let mut pair = Pair::new(TrunkSettings::default());
    let (_, b_sees) = set_up(&mut pair);
    assert_eq!(pair.deliver(PBX_B, GW_B, &answer_from_b(b_sees)).len(), 1);
    // 1040 overtakes 1020; 1040 repeated is a duplicate, not reordered.
    for ts in [1000u16, 1040, 1020, 1040, 1060] {
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 1, 160));
    }
    let at_b = pair.advance(40);
    let relayed: Vec<u16> = at_b
        .iter()
        .filter(|(to, b)| *to == addr(PBX_B) && b[0] & 0x80 == 0)
        .map(|(_, b)| u16::from_be_bytes([b[2], b[3]]))
        .collect();
    assert_eq!(
        relayed,
        [1000, 1040, 1020, 1040, 1060],
        "relayed as they came"
    );
    let reordered = |w: &RelayWorker, peer| w.counters().peer(peer).unwrap().snapshot();
    let from_pbx = reordered(&pair.a, 0);
    assert_eq!((from_pbx.voice_reordered, from_pbx.voice_frames), (1, 5));
    // Gateway B sees the same order in gateway A's trunk entries.
    let from_gw = reordered(&pair.b, 1);
    assert_eq!((from_gw.voice_reordered, from_gw.voice_frames), (1, 5));
}

/// PBX B's ANSWER (its call 200, at 300 ms) to the NEW gateway B sent it
/// as call `b_sees`.
fn answer_from_b(b_sees: u16) -> Vec<u8> {
    use trunk_core::wire::{ControlSubclass, FrameType, FullFramePayload, Subclass};
    FullFrameRepr {
        source_call_number: cn(200),
        retransmission: false,
        dest_call_number: cn(b_sees),
        timestamp: 300,
        oseqno: SeqNo(1),
        iseqno: SeqNo(2),
        frame_type: FrameType::Control,
        subclass: Subclass(ControlSubclass::Answer.code()),
        payload: FullFramePayload::Raw(vec![]),
    }
    .to_vec()
}

/// The call number gateway B uses toward gateway A for the one call.
fn b_sees_gw(pair: &Pair) -> u16 {
    let calls = pair.b.relay().call_views(pair.now);
    calls[0].call_number
}

#[test]
fn maxcalls_refuses_with_congestion_and_acl_drops() {
    use trunk_core::wire::IeLookup;
    let mut limited = peer("pbx", PBX_A, PeerKind::Pbx, None);
    limited.maxcalls = std::num::NonZeroU32::new(2);
    let mut shut = peer("shut", "127.0.0.9:4569", PeerKind::Pbx, None);
    shut.deny = vec!["127.0.0.0/8".parse().unwrap()];
    let gw = peer(
        "gw",
        GW_B,
        PeerKind::Gateway,
        Some(TrunkSettings::default()),
    );
    let (mut w, now) = single(
        vec![limited, shut, gw],
        vec![route("pbx", None, "gw"), route("shut", None, "gw")],
    );
    for k in 0..2 {
        let out = feed(&mut w, now, PBX_A, &new_frame(100 + k, "600"));
        assert_eq!(out[0].0, addr(GW_B));
    }
    let out = feed(&mut w, now, PBX_A, &new_frame(102, "600"));
    let f = full(&out[0].1);
    assert_eq!(
        (out[0].0, f.iax_subclass()),
        (addr(PBX_A), Some(IaxSubclass::Reject))
    );
    let ies = trunk_core::wire::IeBlock::new_checked(f.payload()).unwrap();
    assert_eq!(
        ies.causecode(),
        Ok(Some(34)),
        "no circuit/channel available"
    );
    assert_eq!(w.relay().active_calls(), 2);
    assert_eq!(w.counters().snapshot().drops(DropReason::CallLimit), 1);
    // A peer whose rules refuse its own address is heard from by nobody.
    assert!(feed(&mut w, now, "127.0.0.9:4569", &new_frame(100, "600")).is_empty());
    assert_eq!(w.counters().snapshot().drops(DropReason::Acl), 1);
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_dynamic_peer_is_learned_from_its_signalling_only() {
    let mut roamer = peer("roamer", "127.0.0.1:1", PeerKind::Pbx, None);
    roamer.host = PeerHost::Dynamic;
    roamer.permit = vec!["10.1.0.0/16".parse().unwrap()];
    roamer.deny = vec!["0.0.0.0/0".parse().unwrap()];
    let gw = peer(
        "gw",
        GW_B,
        PeerKind::Gateway,
        Some(TrunkSettings::default()),
    );
    let (mut w, now) = single(
        vec![roamer, gw],
        vec![route("roamer", None, "gw"), route("gw", None, "roamer")],
    );
    // Before it is heard from, calls to it have nowhere to go.
    let out = feed(&mut w, now, GW_B, &new_frame(700, "1"));
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Reject));
    assert_eq!(w.counters().snapshot().drops(DropReason::NoRoute), 1);
    // Media from a permitted address does not claim the peer; a NEW does.
    assert!(feed(&mut w, now, "10.1.2.3:5000", &[0, 100, 0, 20, 1, 2, 3]).is_empty());
    assert_eq!(w.counters().snapshot().drops(DropReason::Stranger), 1);
    let out = feed(&mut w, now, "10.1.2.3:5000", &new_frame(100, "600"));
    assert_eq!(out[0].0, addr(GW_B));
    // An address outside the permit ranges is a stranger.
    assert!(feed(&mut w, now, "10.2.0.1:5000", &new_frame(101, "600")).is_empty());
    assert_eq!(w.counters().snapshot().drops(DropReason::Stranger), 2);
    // Calls from the far side now reach the learned address.
    let out = feed(&mut w, now, GW_B, &new_frame(701, "1"));
    assert_eq!(out[0].0, addr("10.1.2.3:5000"));
    w.relay().check_invariants().unwrap();
}

#[test]
fn a_draining_relay_refuses_new_calls_with_cause_42_and_keeps_the_rest() {
    use trunk_core::relay::{CallDirection, CallResult};
    use trunk_core::wire::{IeBlock, IeLookup};
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    assert!(!pair.a.relay().is_draining());
    pair.a.relay().set_draining(true);
    assert!(pair.a.relay().is_draining());
    let refused = |out: &[(SocketAddr, Vec<u8>)], to: &str| {
        assert_eq!(out.len(), 1, "{out:?}");
        let f = full(&out[0].1);
        assert_eq!(
            (out[0].0, f.iax_subclass()),
            (addr(to), Some(IaxSubclass::Reject))
        );
        let ies = IeBlock::new_checked(f.payload()).unwrap();
        assert_eq!(
            ies.causecode(),
            Ok(Some(42)),
            "switching equipment congestion"
        );
        (f.source_call_number(), f.dest_call_number())
    };

    // A NEW from the PBX: a stateless REJECT, cause 42, and no state.
    let out = pair.deliver(PBX_A, GW_A, &new_frame(101, "600"));
    assert_eq!(refused(&out, PBX_A), (CallNumber::STATELESS, cn(101)));
    assert_eq!(pair.a.relay().active_calls(), 1);
    assert_eq!(pair.b.relay().active_calls(), 1, "nothing crossed the WAN");
    let sa = pair.a.counters().snapshot();
    assert_eq!(
        (sa.drops(DropReason::Draining), sa.calls_created),
        (1, 1),
        "counted as draining; only the first call was created"
    );
    assert_eq!(sa.drops(DropReason::CallLimit), 0);
    let pbx = pair.a.counters().peer(0).unwrap().snapshot();
    assert_eq!(pbx.calls(CallDirection::In, CallResult::Refused), 1);
    // A NEW from the far side is refused too; gateway B (not draining)
    // relays the REJECT to PBX B, cause and all.
    let out = pair.deliver(PBX_B, GW_B, &new_frame(201, "600"));
    refused(&out, PBX_B);
    assert_eq!(pair.a.counters().snapshot().drops(DropReason::Draining), 2);

    // POKE and REGREQ still cross, so the PBXs stay qualified and
    // registered while the calls finish.
    let poke = iax(300, 0, 7, 0, 0, IaxSubclass::Poke, IeList::new());
    let out = pair.deliver(PBX_A, GW_A, &poke);
    assert_eq!(
        (out[0].0, full(&out[0].1).iax_subclass()),
        (addr(PBX_B), Some(IaxSubclass::Poke))
    );
    let user = IeList::new().with(Ie::string(IeType::Username, "siteA").unwrap());
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(400, 0, 1, 0, 0, IaxSubclass::RegReq, user),
    );
    assert_eq!(
        (out[0].0, full(&out[0].1).iax_subclass()),
        (addr(PBX_B), Some(IaxSubclass::RegReq))
    );
    // Three entries, one call: the drain waits for the call alone.
    assert_eq!(
        (pair.a.relay().active_calls(), pair.a.relay().call_entries()),
        (3, 1)
    );

    // The call already up goes on: voice both ways, signalling too.
    assert!(pair
        .deliver(PBX_A, GW_A, &mini(100, 1000, 7, 160))
        .is_empty());
    pair.deliver(PBX_B, GW_B, &mini(200, 1000, 8, 160));
    let out = pair.advance(20);
    let to = |who: &str| {
        out.iter()
            .filter(|(d, b)| *d == addr(who) && MiniFrame::new_checked(&b[..]).is_ok())
            .count()
    };
    assert_eq!((to(PBX_A), to(PBX_B)), (1, 1), "{out:?}");
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 5000, 1, 1, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(
        (out[0].0, full(&out[0].1).dest_call_number()),
        (addr(PBX_B), cn(200))
    );
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 5000, 1, 2, IaxSubclass::Ack, IeList::new()),
    );
    assert_eq!(out[0].0, addr(PBX_A));
    // After the linger the call is gone; the unanswered POKE and REGREQ
    // wait for their setup timer.
    pair.advance(11_000);
    assert_eq!(pair.a.relay().call_entries(), 0, "the drain is over");
    pair.advance(34_000);
    assert_eq!(pair.a.relay().active_calls(), 0);
    check(&pair);

    // A drain can be called off: calls are taken again.
    pair.a.relay().set_draining(false);
    let out = pair.deliver(PBX_A, GW_A, &new_frame(102, "600"));
    assert_eq!(
        (out[0].0, full(&out[0].1).iax_subclass()),
        (addr(PBX_B), Some(IaxSubclass::New))
    );
    assert_eq!(pair.a.counters().snapshot().drops(DropReason::Draining), 2);
    check(&pair);
}

/// Site A's configuration with extra peers and routes.
fn site_a_with(extra_peers: Vec<Peer>, extra_routes: Vec<Route>, drop_pbx: bool) -> Config {
    let mut c = site(GW_A, PBX_A, GW_B, TrunkSettings::default());
    if drop_pbx {
        c.peers.retain(|p| p.name.as_str() != "pbx");
        c.routes.retain(|r| {
            r.to.as_str() != "pbx" && r.from.as_ref().is_none_or(|f| f.as_str() != "pbx")
        });
    }
    c.peers.extend(extra_peers);
    c.routes.extend(extra_routes);
    c
}

#[test]
fn a_reload_changes_peers_and_routes_and_live_calls_go_on() {
    const PBX_C: &str = "127.0.0.1:4580";
    let mut pair = Pair::new(TrunkSettings::default());
    let (a_sees, b_sees) = set_up(&mut pair);
    let voice = |pair: &mut Pair, ts: u16| {
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 7, 160));
        let out = pair.advance(20);
        assert_eq!(out.len(), 1, "voice at {ts} crossed");
        assert_eq!(out[0].0, addr(PBX_B));
    };
    voice(&mut pair, 1000);

    // Reload 1: a new PBX with its own route, and a smaller trunk MTU.
    let mut cfg = site_a_with(
        vec![peer("pbx-c", PBX_C, PeerKind::Pbx, None)],
        vec![route("pbx-c", None, "gw")],
        false,
    );
    for p in &mut cfg.peers {
        if let Some(t) = &mut p.trunk {
            t.mtu = iax2_config::TrunkMtu::new(600).unwrap();
        }
    }
    let report = pair.a.relay().reload(&cfg).unwrap();
    assert_eq!(report.added, vec!["pbx-c".to_owned()]);
    assert!(
        report.removed.is_empty() && report.need_restart.is_empty(),
        "{report}"
    );
    assert!(
        report
            .changed
            .iter()
            .any(|c| c.starts_with("gw (trunk settings")),
        "{report}"
    );
    voice(&mut pair, 1020);
    // The new peer can call at once.
    let out = pair.deliver(PBX_C, GW_A, &new_frame(300, "600"));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0, full(&out[0].1).iax_subclass()),
        (addr(PBX_B), Some(IaxSubclass::New))
    );
    check(&pair);

    // Reload 2: PBX A is removed. Its live call goes on, both ways and to
    // the HANGUP; it can start nothing new.
    let cfg = site_a_with(
        vec![peer("pbx-c", PBX_C, PeerKind::Pbx, None)],
        vec![route("pbx-c", None, "gw"), route("gw", None, "pbx-c")],
        true,
    );
    let report = pair.a.relay().reload(&cfg).unwrap();
    assert_eq!(report.removed, vec!["pbx".to_owned()], "{report}");
    assert_eq!(report.generation, 2);
    voice(&mut pair, 1040);
    pair.deliver(PBX_B, GW_B, &mini(200, 77, 3, 160));
    let out = pair.advance(20);
    assert_eq!(
        (out.len(), out[0].0),
        (1, addr(PBX_A)),
        "B -> A still reaches the removed peer"
    );
    let out = pair.deliver(PBX_A, GW_A, &new_frame(101, "600"));
    assert_eq!(
        (out[0].0, full(&out[0].1).iax_subclass()),
        (addr(PBX_A), Some(IaxSubclass::Reject)),
        "a removed peer starts no new call"
    );
    let out = pair.deliver(
        PBX_A,
        GW_A,
        &iax(100, a_sees, 5000, 2, 2, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(full(&out[0].1).dest_call_number(), cn(200));
    pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 5000, 2, 3, IaxSubclass::Ack, IeList::new()),
    );
    check(&pair);
    let views = pair.a.relay().peer_views();
    assert!(views.iter().any(|v| v.name == "pbx" && v.retired));
    pair.advance(11_000);
    assert_eq!(
        pair.a.relay().active_calls(),
        1,
        "only pbx-c's call is left"
    );
    check(&pair);

    // A change of listen address is reported, not applied.
    let mut cfg2 = cfg.clone();
    cfg2.listen = addr("127.0.0.1:9999");
    let report = pair.a.relay().reload(&cfg2).unwrap();
    assert_eq!(report.need_restart.len(), 1, "{report}");
}

/// The link number gateways exchange their own frames from.
const LINK: u16 = 0x7fff;

#[test]
fn a_gateway_behind_a_nat_registers_with_md5_and_the_registrar_sees_the_nat_address() {
    use trunk_core::relay::RegistrationState;
    let mut pair = Pair::behind_nat("s3cret-link", "s3cret-link");
    let out = pair.advance(2_000);
    assert!(out.is_empty(), "registration stays between the gateways");
    let a = pair.a.relay().link_views(pair.now);
    let reg = a[0].registration.clone().expect("A registers");
    assert_eq!(reg.state, RegistrationState::Registered);
    assert_eq!(
        reg.apparent,
        Some(addr(NAT_1)),
        "APPARENT ADDR is the NAT's"
    );
    assert_eq!(reg.granted, Some(Duration::from_secs(60)));
    assert_eq!((reg.attempts, reg.accepted, reg.rejected), (1, 1, 0));
    let b = pair.b.relay().link_views(pair.now);
    assert_eq!(b[0].addr, Some(addr(NAT_1)), "B learned A's public address");
    let r = b[0].registrar.clone().expect("B is A's registrar");
    assert!(r.registered);
    assert_eq!((r.accepted, r.address_changes), (1, 0));
    // Calls cross the NAT both ways; refreshes at 5/6 of 60 s keep it.
    let (_, _) = set_up(&mut pair);
    pair.advance(130_000);
    let reg = pair.a.relay().link_views(pair.now)[0]
        .registration
        .clone()
        .unwrap();
    assert_eq!(reg.state, RegistrationState::Registered);
    assert_eq!(reg.accepted, 3, "refreshed at 50 s and 100 s");
    assert_eq!(pair.b.counters().snapshot().drops(DropReason::Stranger), 0);
    check(&pair);
}

#[test]
fn a_wrong_secret_is_refused_with_its_cause_and_retries_back_off() {
    use trunk_core::relay::{RegistrationState, RejectCause};
    let mut pair = Pair::behind_nat("not-the-secret", "s3cret-link");
    pair.advance(600_000);
    let reg = pair.a.relay().link_views(pair.now)[0]
        .registration
        .clone()
        .unwrap();
    assert_eq!(reg.state, RegistrationState::Rejected);
    assert_eq!(reg.cause.as_deref(), Some("Registration Refused"));
    assert_eq!(reg.accepted, 0);
    assert!(
        (5..30).contains(&reg.attempts),
        "{} attempts in 10 minutes: backed off, not a fixed short loop",
        reg.attempts
    );
    let r = pair.b.relay().link_views(pair.now)[0]
        .registrar
        .clone()
        .unwrap();
    assert!(!r.registered);
    let bad = RejectCause::ALL
        .iter()
        .position(|c| *c == RejectCause::BadSecret)
        .unwrap();
    assert_eq!(r.rejected[bad], reg.attempts);
    assert_eq!(r.last_reject, Some(RejectCause::BadSecret));
    assert_eq!(
        pair.b.relay().link_views(pair.now)[0].addr,
        None,
        "never learned"
    );
}

#[test]
fn after_the_nat_rebinds_the_link_registers_again_and_the_calls_follow() {
    use trunk_core::relay::RegistrationState;
    let mut pair = Pair::behind_nat("s3cret-link", "s3cret-link");
    pair.advance(2_000);
    let (a_sees, b_sees) = set_up(&mut pair);
    // Voice both ways before.
    let out = pair.deliver(PBX_A, GW_A, &mini(100, 1, 0xa1, 160));
    assert!(out.is_empty(), "trunked: waits for the tick");
    let out = pair.advance(40);
    assert!(out.iter().any(|(to, _)| *to == addr(PBX_B)));
    // The NAT reboots and maps A to a new public port: B's datagrams to
    // the old one are lost, A's arrive from an address B does not know.
    pair.rebind(NAT_2);
    let t0 = pair.now;
    let mut heard_at_a = None;
    let mut ts = 2u16;
    while pair.now.saturating_duration_since(t0) < Duration::from_secs(30) {
        ts = ts.wrapping_add(20);
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 0xa1, 160));
        pair.deliver(PBX_B, GW_B, &mini(200, ts, 0xb2, 160));
        let out = pair.advance(20);
        if heard_at_a.is_none()
            && out
                .iter()
                .any(|(to, b)| *to == addr(PBX_A) && b.len() > 4 && b[4] == 0xb2)
        {
            heard_at_a = Some(pair.now.saturating_duration_since(t0));
        }
    }
    let took = heard_at_a.expect("media from B reached PBX A again");
    assert!(
        took <= Duration::from_secs(11),
        "media resumed {took:?} after the rebinding: one keepalive plus the exchange"
    );
    assert!(pair.nat_lost > 0, "the old mapping really was gone");
    let b = pair.b.relay().link_views(pair.now);
    assert_eq!(b[0].addr, Some(addr(NAT_2)));
    let r = b[0].registrar.clone().unwrap();
    assert_eq!((r.address_changes, r.calls_moved), (1, 1));
    let reg = pair.a.relay().link_views(pair.now)[0]
        .registration
        .clone()
        .unwrap();
    assert_eq!(reg.state, RegistrationState::Registered);
    assert_eq!(reg.apparent, Some(addr(NAT_2)));
    // The same call carried on: its numbers did not change.
    assert_eq!(pair.a.relay().active_calls(), 1);
    assert_eq!(pair.b.relay().active_calls(), 1);
    let out = pair.deliver(
        PBX_B,
        GW_B,
        &iax(200, b_sees, 9_000, 1, 2, IaxSubclass::Hangup, IeList::new()),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0, full(&out[0].1).dest_call_number()),
        (addr(PBX_A), cn(100))
    );
    let _ = a_sees;
    check(&pair);
}

#[test]
fn the_registrar_answers_nobody_it_does_not_know_and_a_stranger_poke_only_with_inval() {
    let mut pair = Pair::behind_nat("s3cret-link", "s3cret-link");
    // A REGREQ naming a peer B does not have: no reply at all.
    let regreq = iax(
        LINK,
        0,
        5,
        0,
        0,
        IaxSubclass::RegReq,
        IeList::new().with(Ie::string(IeType::Username, "nobody").unwrap()),
    );
    let out = feed(&mut pair.b, pair.now, "127.0.0.7:5000", &regreq);
    assert!(out.is_empty());
    let c = pair.b.counters().snapshot();
    assert_eq!(c.registrations_unknown_peer, 1);
    // A link POKE from an unknown address: an INVAL of the same size.
    let poke = iax(LINK, 0, 6, 0, 0, IaxSubclass::Poke, IeList::new());
    let out = feed(&mut pair.b, pair.now, "127.0.0.7:5000", &poke);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), poke.len());
    assert_eq!(full(&out[0].1).iax_subclass(), Some(IaxSubclass::Inval));
    // A PBX-style POKE (not from the link number) from a stranger: dropped.
    let poke = iax(300, 0, 6, 0, 0, IaxSubclass::Poke, IeList::new());
    assert!(feed(&mut pair.b, pair.now, "127.0.0.7:5000", &poke).is_empty());
    // A meta trunk frame from a stranger is counted as such.
    let trunk = {
        let mut f = vec![0u8, 0, 1, 1, 0, 0, 0, 1];
        f.extend_from_slice(&[0, 5, 0, 4, 0, 10, 1, 2, 3, 4]);
        f
    };
    assert!(feed(&mut pair.b, pair.now, "127.0.0.7:5001", &trunk).is_empty());
    let c = pair.b.counters().snapshot();
    assert_eq!(c.stranger_trunk_frames, 1);
    assert_eq!(
        pair.b.relay().last_stranger_trunk_source(),
        Some(addr("127.0.0.7:5001"))
    );
    assert_eq!(c.drops(DropReason::Stranger), 4, "each of the four");
}

#[test]
fn a_call_with_voice_one_way_only_is_reported_once_on_both_gateways() {
    let mut pair = Pair::new(TrunkSettings::default());
    set_up(&mut pair);
    // PBX A talks; nothing ever comes back from PBX B.
    let mut ts = 0u16;
    for _ in 0..(8_000 / 20) {
        ts = ts.wrapping_add(20);
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 0xa1, 160));
        pair.advance(20);
    }
    for (w, silent, flowing) in [(&pair.a, "gw", "pbx"), (&pair.b, "pbx", "gw")] {
        assert_eq!(w.counters().snapshot().calls_one_way, 1);
        let found = w.relay().take_one_way();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (
                found[0].silent_peer.as_str(),
                found[0].flowing_peer.as_str()
            ),
            (silent, flowing)
        );
        assert!(w.relay().take_one_way().is_empty(), "taken once");
    }
    // Both ways: nothing more is reported.
    let mut pair = Pair::new(TrunkSettings::default());
    set_up(&mut pair);
    for _ in 0..(8_000 / 20) {
        ts = ts.wrapping_add(20);
        pair.deliver(PBX_A, GW_A, &mini(100, ts, 0xa1, 160));
        pair.deliver(PBX_B, GW_B, &mini(200, ts, 0xb2, 160));
        pair.advance(20);
    }
    assert_eq!(pair.a.counters().snapshot().calls_one_way, 0);
    assert_eq!(pair.b.counters().snapshot().calls_one_way, 0);
}

#[test]
fn a_gateway_registers_with_an_rsa_signature_and_a_wrong_key_is_refused() {
    use trunk_core::relay::{RegistrationState, RejectCause};
    let mut pair = Pair::behind_nat_rsa("gw-a.pub");
    pair.advance(2_000);
    let reg = pair.a.relay().link_views(pair.now)[0]
        .registration
        .clone()
        .unwrap();
    assert_eq!(reg.state, RegistrationState::Registered, "{reg:?}");
    assert_eq!(reg.apparent, Some(addr(NAT_1)));
    assert_eq!(
        pair.b.relay().link_views(pair.now)[0].addr,
        Some(addr(NAT_1))
    );

    // B holds another gateway's public key: the signature does not match.
    let mut pair = Pair::behind_nat_rsa("gw-other.pub");
    pair.advance(30_000);
    let reg = pair.a.relay().link_views(pair.now)[0]
        .registration
        .clone()
        .unwrap();
    assert_eq!(reg.state, RegistrationState::Rejected);
    assert_eq!(reg.accepted, 0);
    let r = pair.b.relay().link_views(pair.now)[0]
        .registrar
        .clone()
        .unwrap();
    assert_eq!(r.last_reject, Some(RejectCause::BadSecret));
    assert_eq!(pair.b.relay().link_views(pair.now)[0].addr, None);
}
