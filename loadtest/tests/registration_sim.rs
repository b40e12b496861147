//! Registration through a gateway pair, on the in-memory network with a
//! virtual clock (gateway nodes from `common/gateway_node.rs`):
//!
//! ```text
//! PBX A (registrant) <-> gateway A <-(WAN)-> gateway B <-> PBX B (registrar)
//! ```
//!
//! PBX A's REGREQ goes to gateway A, which relays it to gateway B (its
//! route for everything from its PBX), which relays it to PBX B (its route
//! for everything from the far gateway). Each relay keeps a table entry
//! for the exchange (`Purpose::Registration`) that must end with the
//! REGACK or REGREJ, linger, and go.
// Test helpers outside #[test] functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]
#![allow(clippy::wildcard_enum_match_arm)]

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use iax2_config::{Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts, TrunkSettings};
use iax2_loadtest::endpoint::{
    RegistrarConfig, RegistrationFailure, RegistrationId, RegistrationState,
};
use iax2_loadtest::sim::{Datagram, SimNet, Verdict};
use iax2_loadtest::{Endpoint, EndpointConfig, Event};
use trunk_core::time::Instant;
use trunk_core::wire::{CallNumber, FullFrame, IaxSubclass, IeBlock, IeLookup};

const PBX_A: &str = "10.1.0.10:4569";
const GW_A: &str = "10.1.0.1:4569";
const GW_B: &str = "10.2.0.1:4569";
const PBX_B: &str = "10.2.0.10:4569";

const LATENCY: Duration = Duration::from_millis(5);

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

fn route(from: &str, to: &str) -> Route {
    Route {
        from: Some(PeerName::new(from).unwrap()),
        prefix: None,
        to: PeerName::new(to).unwrap(),
    }
}

/// One site: its PBX and the far gateway; everything from the PBX goes to
/// the far gateway and everything from there to the PBX.
fn site(listen: &str, pbx: &str, far_gw: &str) -> Config {
    Config {
        listen: addr(listen),
        workers: NonZeroUsize::new(2).unwrap(),
        udp_gso: true,
        peers: vec![
            peer("pbx", pbx, PeerKind::Pbx, None),
            peer(
                "gw",
                far_gw,
                PeerKind::Gateway,
                Some(TrunkSettings::default()),
            ),
        ],
        routes: vec![route("pbx", "gw"), route("gw", "pbx")],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    }
}

#[path = "common/gateway_node.rs"]
mod gateway_node;

use gateway_node::{Dispatch, Gateway};

/// The two gateways, PBX A (registrant) and PBX B (registrar for
/// `siteA`/`s3cret`, CALLTOKEN required).
struct World {
    net: SimNet,
    gws: [Gateway; 2],
    a: Endpoint,
    b: Endpoint,
    ev_a: Vec<Event>,
}

impl World {
    fn new() -> Self {
        let start = Instant::from_millis(1_000_000);
        let mut net = SimNet::new(start, LATENCY);
        net.start_capture();
        let gws = [
            Gateway::new(
                addr(GW_A),
                &site(GW_A, PBX_A, GW_B),
                start - Duration::from_millis(123_457),
                1,
                2,
                Dispatch::BySource,
            ),
            Gateway::new(
                addr(GW_B),
                &site(GW_B, PBX_B, GW_A),
                start - Duration::from_millis(7_003),
                2,
                2,
                Dispatch::BySource,
            ),
        ];
        let a = EndpointConfig::new(addr(PBX_A), 41);
        let mut b = EndpointConfig::new(addr(PBX_B), 42);
        b.require_calltoken = true;
        b.registrar = Some(RegistrarConfig::new(vec![(
            "siteA".into(),
            "s3cret".into(),
        )]));
        Self {
            net,
            gws,
            a: Endpoint::new(a),
            b: Endpoint::new(b),
            ev_a: Vec::new(),
        }
    }

    fn run_for(&mut self, d: Duration) {
        let [ga, gb] = &mut self.gws;
        self.net.run_for(d, &mut [ga, gb, &mut self.a, &mut self.b]);
        while let Some(e) = self.a.poll_event() {
            self.ev_a.push(e);
        }
    }

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

    /// PBX A registers through gateway A.
    fn register(&mut self, secret: &str) -> RegistrationId {
        let now = self.net.now();
        let mut tx = self.net.sender(addr(PBX_A));
        self.a
            .register(now, addr(GW_A), "siteA", secret, 60, &mut tx)
            .unwrap()
    }

    fn outcome(&self, reg: RegistrationId) -> Option<&Event> {
        self.ev_a.iter().rev().find(|e| {
            matches!(e, Event::Registered { reg: r, .. } | Event::RegistrationFailed { reg: r, .. } if *r == reg)
        })
    }

    fn active_calls(&self) -> [usize; 2] {
        [
            self.gws[0].relay().active_calls(),
            self.gws[1].relay().active_calls(),
        ]
    }

    /// Lets the entries linger out, then asserts both tables are empty
    /// and consistent.
    fn assert_tables_empty_after_linger(&mut self) {
        let t = Timeouts::default();
        self.run_for(t.hangup_linger + Duration::from_secs(1));
        for g in &self.gws {
            assert_eq!(g.relay().active_calls(), 0, "gateway {} table", g.addr);
            if let Err(e) = g.relay().check_invariants() {
                panic!("gateway {}: {e}", g.addr);
            }
        }
        // After the call-number quarantine nothing at all is held.
        self.run_for(t.callno_quarantine);
        for g in &self.gws {
            assert_eq!(g.relay().call_numbers_in_use(), 0, "gateway {}", g.addr);
            g.relay().check_invariants().unwrap();
        }
    }
}

fn full(d: &Datagram) -> Option<FullFrame<&[u8]>> {
    FullFrame::new_checked(&d.bytes[..]).ok()
}

fn iax_sub(d: &Datagram) -> Option<IaxSubclass> {
    full(d).and_then(|f| f.iax_subclass())
}

/// The IAX subclasses of what went from `from` to `to`.
fn subs(cap: &[(Datagram, Verdict)], from: &str, to: &str) -> Vec<Option<IaxSubclass>> {
    cap.iter()
        .filter(|(d, _)| d.from == addr(from) && d.to == addr(to))
        .map(|(d, _)| iax_sub(d))
        .collect()
}

#[test]
fn registration_through_the_pair_with_calltoken_and_md5() {
    use IaxSubclass::*;
    let mut w = World::new();
    let reg = w.register("s3cret");
    assert!(w.run_until(Duration::from_secs(2), |w| w.outcome(reg).is_some()));
    // What a registrar behind a relay sees: every REGREQ reaches PBX B from
    // gateway B's address (the relay rewrites call numbers, not addresses),
    // so the APPARENT ADDR in its REGACK, and its registry entry, name
    // gateway B, not PBX A. That is also where PBX B must send calls for
    // siteA: the pair carries them back.
    assert_eq!(
        w.outcome(reg),
        Some(&Event::Registered {
            reg,
            refresh: 60,
            apparent_addr: Some(addr(GW_B)),
        })
    );
    let e = w.b.registered("siteA").unwrap();
    assert_eq!((e.addr, e.refresh), (addr(GW_B), 60));
    let st = w.a.registration(reg).unwrap();
    assert_eq!(st.state, RegistrationState::Registered);
    assert_eq!(st.apparent_addr, Some(addr(GW_B)));

    w.run_for(Duration::from_millis(100));
    let cap = w.net.take_capture();
    // End to end: the token exchange, REGAUTH and REGACK, and the final ACK.
    assert_eq!(
        subs(&cap, PBX_A, GW_A),
        vec![Some(RegReq), Some(RegReq), Some(RegReq), Some(Ack)]
    );
    assert_eq!(
        subs(&cap, PBX_B, GW_B),
        vec![Some(CallToken), Some(RegAuth), Some(RegAck)]
    );
    assert_eq!(
        subs(&cap, GW_B, PBX_B),
        vec![Some(RegReq), Some(RegReq), Some(RegReq), Some(Ack)]
    );
    assert_eq!(
        subs(&cap, GW_A, PBX_A),
        vec![Some(CallToken), Some(RegAuth), Some(RegAck)]
    );
    // The CALLTOKEN challenge still comes from call 1 at PBX A, and the
    // re-sent REGREQ carries the token PBX B minted for gateway B.
    let at_a: Vec<&Datagram> = cap
        .iter()
        .map(|(d, _)| d)
        .filter(|d| d.to == addr(PBX_A))
        .collect();
    assert_eq!(
        full(at_a[0]).unwrap().source_call_number(),
        CallNumber::STATELESS
    );
    let token = IeBlock::new_checked(full(at_a[0]).unwrap().payload())
        .unwrap()
        .calltoken()
        .unwrap()
        .to_vec();
    let second: Vec<&Datagram> = cap
        .iter()
        .map(|(d, _)| d)
        .filter(|d| d.to == addr(PBX_B) && iax_sub(d) == Some(RegReq))
        .collect();
    assert_eq!(
        IeBlock::new_checked(full(second[1]).unwrap().payload())
            .unwrap()
            .calltoken(),
        Some(&token[..])
    );
    // Nothing was lost or resent; both PBXs dropped their transaction.
    assert_eq!(w.a.stats().retransmissions + w.b.stats().retransmissions, 0);
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
    for g in &w.gws {
        let c = g.counters();
        assert_eq!(c.total_drops(), 0, "gateway {}: {:?}", g.addr, c.drops);
        assert_eq!(c.calls_created, 0, "a registration is not a call");
    }
    // The relays' entries for the exchange ended with the REGACK and
    // linger; then they are gone.
    assert_eq!(w.active_calls(), [1, 1], "the registration lingers");
    w.assert_tables_empty_after_linger();
}

#[test]
fn bad_secret_through_the_pair_gets_regrej() {
    let mut w = World::new();
    let reg = w.register("wrong");
    assert!(w.run_until(Duration::from_secs(2), |w| w.outcome(reg).is_some()));
    assert_eq!(
        w.outcome(reg),
        Some(&Event::RegistrationFailed {
            reg,
            failure: RegistrationFailure::Rejected {
                cause_code: 29,
                cause: "Registration Refused".into(),
            },
        })
    );
    w.run_for(Duration::from_millis(100));
    let cap = w.net.take_capture();
    assert_eq!(
        subs(&cap, GW_A, PBX_A).last(),
        Some(&Some(IaxSubclass::RegRej))
    );
    assert_eq!(
        subs(&cap, GW_B, PBX_B).last(),
        Some(&Some(IaxSubclass::Ack))
    );
    assert!(w.b.registrations().is_empty());
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registration_transactions(), 0);
    assert_eq!(w.b.stats().retransmissions, 0);
    w.a.stop_registration(w.net.now(), reg);
    w.assert_tables_empty_after_linger();
}

#[test]
fn refreshes_through_the_pair_keep_the_entry_and_leave_no_state() {
    let mut w = World::new();
    let reg = w.register("s3cret");
    for _ in 0..200 {
        w.run_for(Duration::from_secs(1));
        if w.a.registration(reg).unwrap().successes > 0 {
            assert!(w.b.registered("siteA").is_some(), "entry lapsed");
        }
        // At most the current exchange and the previous lingering one.
        assert!(w.active_calls().iter().all(|&n| n <= 2));
    }
    let st = w.a.registration(reg).unwrap();
    // At 0, 50, 100 and 150 s.
    assert_eq!((st.attempts, st.successes, st.failures), (4, 4, 0));
    let now = w.net.now();
    w.a.stop_registration(now, reg);
    w.assert_tables_empty_after_linger();
}

#[test]
fn lost_ack_of_regack_through_the_pair_is_recovered_and_tables_empty() {
    let mut w = World::new();
    let mut dropped = false;
    // Drop PBX A's ACK of the REGACK on the WAN.
    w.net.set_filter(move |d| {
        if !dropped && d.from == addr(GW_A) && iax_sub(d) == Some(IaxSubclass::Ack) {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let reg = w.register("s3cret");
    assert!(w.run_until(Duration::from_secs(2), |w| w.outcome(reg).is_some()));
    w.run_for(Duration::from_secs(5));
    // PBX B resent its REGACK through the lingering entries; PBX A, done
    // with the transaction, answered INVAL (or an ACK): B let go.
    assert!(w.b.stats().retransmissions >= 1);
    assert_eq!(w.b.registration_transactions(), 0);
    assert_eq!(w.a.registration_transactions(), 0);
    assert_eq!(w.b.registered("siteA").unwrap().addr, addr(GW_B));
    let now = w.net.now();
    w.a.stop_registration(now, reg);
    w.assert_tables_empty_after_linger();
}
