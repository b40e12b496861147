//! A gateway pair across a NAT, in network namespaces (`iax2_interop::netns`):
//!
//! ```text
//! PBX A, gateway A 10.10.0.2 -- NAT 10.10.0.1 / 100.64.0.1 -- 100.64.0.2 gateway B, PBX B
//! ```
//!
//! Gateway A is behind a masquerading router whose UDP connection tracking
//! forgets a flow after 4 s of silence; gateway B knows A as `host:
//! dynamic` and learns A's public address from A's registration (MD5),
//! or, in the control, from A's first call. What the tests show:
//! - A registers through the NAT, and B's status shows the router's
//!   public address and port for A;
//! - with keepalives every second, the router's mapping for A's flow to B
//!   stays, on the same public port, through several UDP timeouts (and
//!   well inside the 20 s registration refresh) with no call up; the link
//!   stays OK on A and registered; calls then carry voice both ways
//!   without loss, and after another quiet spell a call from site B still
//!   reaches site A through the mapping;
//! - without keepalives (the control) the mapping expires once the calls
//!   are over, and a call from site B no longer reaches site A;
//! - when the router reboots (forgets its mappings, and maps anew to
//!   other public ports, or another address) A's next probe opens a new
//!   mapping, the link is OK again and B knows A's new mapping;
//! - a conntrack entry poisoned during a WAN outage (no translation, 10
//!   minutes left) is escaped: A's link goes unreachable, moves to a fresh
//!   source port and registers again, and the calls carry on;
//! - a NAT that comes back with another public address: B answers A's
//!   probe from the unknown address with INVAL, A registers again at
//!   once, and the calls follow.
//!
//! They need root and the `ip`, `nft` and `conntrack` tools; without them
//! they say so and pass.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use iax2_gateway::admin::{client, AdminServer};
use iax2_gateway::runtime::GatewayHandle;
use iax2_interop::lab::{emulated_pbx, mute_all, start_gateway, wait_for};
use iax2_interop::netns::{self, Masquerade, NatLab, Tuple, A_ADDR, B_ADDR, NAT_PUBLIC};
use iax2_loadtest::driver::DriverHandle;
use trunk_core::relay::{LinkState, RegistrationState};

/// Each gateway's IAX2 port (each site has a namespace of its own).
const GW_PORT: u16 = 4569;
/// Each PBX's IAX2 port, on its gateway's address.
const PBX_PORT: u16 = 4570;
/// The router's UDP connection tracking timeouts, in seconds.
const UDP_TIMEOUT: u32 = 4;
/// The UDP timeout as a duration.
const TIMEOUT: Duration = Duration::from_secs(UDP_TIMEOUT as u64);
/// Calls from site A once the quiet spell is over.
const CALLS: usize = 20;

/// Whether the lab cannot run here; says why.
fn skipped() -> bool {
    match netns::unavailable() {
        Some(why) => {
            eprintln!("skipped: the NAT lab cannot run here: {why}");
            true
        }
        None => false,
    }
}

/// How gateway B knows where gateway A is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peering {
    /// A registers with B (MD5, `register: true`); B's peer for A is
    /// `host: dynamic` with the shared secret.
    Registered,
    /// B takes A's public address from the first valid signalling from
    /// the router's address (`permit`), as for a dynamic PBX.
    Permitted,
}

/// The secret the gateways share.
const LINK_SECRET: &str = "nat-link-secret";

/// The two gateways' YAML. `keepalive_a` and `keepalive_b` are the seconds
/// between each gateway's own link probes (0: none); B can only probe A
/// once it knows where A is. A registered link asks for a 20 s lifetime
/// (5 router timeouts), is unreachable after 2 missed probes, and retries
/// between 1 and 4 s.
fn site_yaml(peering: Peering, keepalive_a: u32, keepalive_b: u32) -> (String, String) {
    let common = "workers: 1\ntimeouts:\n  hangup_linger: 1\nadmin:\n  listen: none\n";
    let (register, b_knows_a) = match peering {
        Peering::Registered => (
            format!(
                "    register: true\n    username: gw-a\n    secret: {LINK_SECRET}\n    refresh: 20\n\
                 \x20   unreachable_after: 2\n    retry_min: 1\n    retry_max: 4\n"
            ),
            format!("    secret: {LINK_SECRET}\n"),
        ),
        Peering::Permitted => (
            String::new(),
            format!("    permit: [{NAT_PUBLIC}]\n    deny: [0.0.0.0/0]\n"),
        ),
    };
    let a = format!(
        "listen: {A_ADDR}:{GW_PORT}\n{common}\
         peers:\n\
         \x20 pbx-a:\n    host: {A_ADDR}:{PBX_PORT}\n    kind: pbx\n\
         \x20 gw-b:\n    host: {B_ADDR}:{GW_PORT}\n    kind: gateway\n    trunk: true\n\
         \x20   keepalive: {keepalive_a}\n{register}\
         routes:\n\
         \x20 - from: pbx-a\n    to: gw-b\n\
         \x20 - from: gw-b\n    to: pbx-a\n"
    );
    let b = format!(
        "listen: {B_ADDR}:{GW_PORT}\n{common}\
         peers:\n\
         \x20 pbx-b:\n    host: {B_ADDR}:{PBX_PORT}\n    kind: pbx\n\
         \x20 gw-a:\n    host: dynamic\n    kind: gateway\n    trunk: true\n\
         {b_knows_a}    keepalive: {keepalive_b}\n\
         routes:\n\
         \x20 - from: pbx-b\n    to: gw-a\n\
         \x20 - from: gw-a\n    to: pbx-b\n"
    );
    (a, b)
}

/// Both sites running in the lab. Fields drop in order: the PBXs and
/// gateways stop before their namespaces are deleted.
struct Sites {
    pbx_a: DriverHandle,
    pbx_b: DriverHandle,
    admin: AdminServer,
    gw_a: GatewayHandle,
    gw_b: GatewayHandle,
    lab: NatLab,
}

/// A PBX on `addr`, started inside the namespace the caller runs in;
/// MD5 and call tokens end to end.
fn pbx(addr: SocketAddrV4, seed: u64) -> DriverHandle {
    let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("PBX on {addr}: {e}"));
    emulated_pbx(socket, seed, true, |c| {
        c.secret = Some("nat-secret".into());
    })
}

impl Sites {
    /// Builds the lab with the router's UDP timeouts at [`UDP_TIMEOUT`]
    /// and starts each site's gateway and PBX in its namespace (B first,
    /// so that A's first probe is answered).
    fn start(peering: Peering, keepalive_a: u32, keepalive_b: u32) -> Self {
        let lab = NatLab::new().unwrap();
        lab.set_udp_timeouts(UDP_TIMEOUT).unwrap();
        assert_eq!(lab.udp_timeouts().unwrap(), (UDP_TIMEOUT, UDP_TIMEOUT));
        // The timeouts are the router's alone: another namespace keeps
        // its own (the kernel's default, 30 s).
        let elsewhere = lab
            .a
            .sysctl("net.netfilter.nf_conntrack_udp_timeout")
            .unwrap();
        assert_ne!(
            elsewhere,
            UDP_TIMEOUT.to_string(),
            "conntrack timeouts are not per network namespace here"
        );
        let (yaml_a, yaml_b) = site_yaml(peering, keepalive_a, keepalive_b);
        let gw_b = lab.b.enter(|| start_gateway(&yaml_b, "site-b.yaml"));
        let pbx_b = lab.b.enter(|| pbx(SocketAddrV4::new(B_ADDR, PBX_PORT), 72));
        let gw_a = lab.a.enter(|| start_gateway(&yaml_a, "site-a.yaml"));
        let pbx_a = lab.a.enter(|| pbx(SocketAddrV4::new(A_ADDR, PBX_PORT), 71));
        // The admin listener works inside the namespace too.
        let state = gw_a.admin_state();
        let admin = lab
            .a
            .enter(|| AdminServer::start("127.0.0.1:0".parse().unwrap(), state).unwrap());
        let sites = Self {
            pbx_a,
            pbx_b,
            admin,
            gw_a,
            gw_b,
            lab,
        };
        assert_eq!(sites.admin_a("/healthz"), "ok\n");
        sites
    }

    /// GETs `path` from gateway A's admin listener, from inside site A.
    fn admin_a(&self, path: &str) -> String {
        let addr = self.admin.local_addr();
        self.lab.a.enter(|| client::get(addr, path).unwrap())
    }

    /// Gateway A's address, where PBX A sends its calls.
    fn gw_a_addr(&self) -> SocketAddr {
        self.gw_a.local_addr()
    }

    /// Gateway B's address, where PBX B sends its calls.
    fn gw_b_addr(&self) -> SocketAddr {
        self.gw_b.local_addr()
    }

    /// Gateway A's link to B, as A's own probes see it.
    fn link_a(&self) -> (LinkState, u32) {
        let links = self.gw_a.relay().link_views(iax2_gateway::clock::now());
        let link = links
            .iter()
            .find(|l| l.peer == "gw-b")
            .expect("gateway A's link to gw-b");
        (link.state, link.misses)
    }

    /// Gateway A's registration with B.
    fn registration_a(&self) -> Option<trunk_core::relay::RegistrationView> {
        self.gw_a
            .relay()
            .link_views(iax2_gateway::clock::now())
            .into_iter()
            .find(|l| l.peer == "gw-b")
            .and_then(|l| l.registration)
    }

    /// Whether gateway A's registration with B is in force.
    fn registered_a(&self) -> bool {
        self.registration_a()
            .is_some_and(|r| r.state == RegistrationState::Registered)
    }

    /// Where gateway B sends to gateway A (learned; `None` before).
    fn b_knows_a_at(&self) -> Option<SocketAddr> {
        self.gw_b
            .relay()
            .peer_views()
            .into_iter()
            .find(|p| p.name == "gw-a")
            .and_then(|p| p.addr)
    }

    /// The router's entry for gateway A's flow to gateway B.
    fn mapping(&self) -> Option<netns::Conntrack> {
        self.lab.conntrack_flow(a_to_b()).unwrap()
    }

    /// Both gateways' call tables, once empty.
    fn wait_idle(&self) {
        wait_for("both call tables empty", Duration::from_secs(10), || {
            self.gw_a.relay().active_calls() == 0 && self.gw_b.relay().active_calls() == 0
        });
    }

    /// One call from PBX B to PBX A; whether it was answered at A within
    /// `limit` (hung up either way).
    fn call_from_b(&self, limit: Duration) -> bool {
        let (before_b, before_a) = (
            self.pbx_b.stats().calls_answered,
            self.pbx_a.stats().calls_answered,
        );
        assert_eq!(self.pbx_b.originate(self.gw_b_addr(), "100", 1).len(), 1);
        let end = Instant::now() + limit;
        let answered = loop {
            let done = self.pbx_b.stats().calls_answered > before_b
                && self.pbx_a.stats().calls_answered > before_a;
            if done || Instant::now() >= end {
                break done;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.pbx_b.hangup_all(16);
        answered
    }
}

/// Gateway A's flow to gateway B as it leaves site A.
fn a_to_b() -> Tuple {
    Tuple {
        src: SocketAddrV4::new(A_ADDR, GW_PORT),
        dst: SocketAddrV4::new(B_ADDR, GW_PORT),
    }
}

/// Lost voice frames as a fraction of those that should have arrived.
#[allow(clippy::cast_precision_loss)]
fn loss(received: u64, lost: u64) -> f64 {
    lost as f64 / (received + lost).max(1) as f64
}

#[test]
fn keepalives_hold_the_nat_mapping_open_across_several_udp_timeouts() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    // B probes nothing: A's keepalives alone hold the mapping.
    let s = Sites::start(Peering::Registered, 1, 0);
    wait_for("gateway A's link to B up", Duration::from_secs(5), || {
        s.link_a().0 == LinkState::Ok
    });
    wait_for(
        "gateway A registered with B",
        Duration::from_secs(5),
        || s.registered_a(),
    );
    assert!(
        s.admin_a("/metrics")
            .contains("iax2_gateway_link_up{peer=\"gw-b\"} 1"),
        "link_up for gw-b on gateway A"
    );
    let first = s.mapping().expect("the router maps A's flow to B");
    let public = first.public();
    assert_eq!(*public.ip(), NAT_PUBLIC, "{first:?}");
    // Registered through the NAT with MD5: the registrar knows A at the
    // router's public address and port, says so in its status, and told
    // A (APPARENT ADDR).
    assert_eq!(s.b_knows_a_at(), Some(SocketAddr::V4(public)));
    let status = iax2_gateway::admin::status::collect(&s.gw_b.admin_state());
    let reg = status
        .registrations
        .iter()
        .find(|r| r.peer == "gw-a")
        .expect("B's registrations list gw-a");
    assert_eq!(
        (reg.role.as_str(), reg.state.as_str(), reg.addr.clone()),
        ("registrar", "registered", public.to_string())
    );
    let text = iax2_gateway::admin::status::render(&status);
    assert!(
        text.contains("Registrations") && text.contains(&public.to_string()),
        "{text}"
    );
    let apparent = s.registration_a().and_then(|r| r.apparent);
    assert_eq!(apparent, Some(SocketAddr::V4(public)));

    // No call for 3.5 timeouts: the probes keep the mapping, on the same
    // public port, and the link stays OK.
    let quiet_until = Instant::now() + TIMEOUT * 7 / 2;
    while Instant::now() < quiet_until {
        let (state, misses) = s.link_a();
        assert_eq!(
            state,
            LinkState::Ok,
            "the link while quiet ({misses} missed)"
        );
        let now = s.mapping().expect("the mapping while quiet");
        assert_eq!(now.public(), public, "the mapping moved: {now:?}");
        assert_eq!(s.gw_a.relay().active_calls(), 0, "no call while quiet");
        assert!(s.registered_a(), "the registration while quiet");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Calls from A with voice both ways, up for two more timeouts.
    assert_eq!(s.pbx_a.originate(s.gw_a_addr(), "700", CALLS).len(), CALLS);
    wait_for("every call answered", Duration::from_secs(15), || {
        s.pbx_a.stats().calls_answered == CALLS as u64
            && s.pbx_b.stats().calls_answered == CALLS as u64
    });
    // B learned where A is from A's signalling: the router's public side.
    assert_eq!(s.b_knows_a_at(), Some(SocketAddr::V4(public)));
    let talk_until = Instant::now() + TIMEOUT * 2 + Duration::from_secs(1);
    while Instant::now() < talk_until {
        assert_eq!(s.link_a().0, LinkState::Ok, "the link during the calls");
        let now = s.mapping().expect("the mapping during the calls");
        assert_eq!(now.public(), public, "the mapping moved: {now:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        (mute_all(&s.pbx_a), mute_all(&s.pbx_b)),
        (Some(CALLS), Some(CALLS))
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.pbx_a.hangup_all(16), CALLS);
    s.wait_idle();
    let (a, b) = (s.pbx_a.stats(), s.pbx_b.stats());
    // 50 frames a second per call for at least 9 s; half is a floor.
    let floor = CALLS as u64 * 50 * 9 / 2;
    for (site, st) in [("A", &a), ("B", &b)] {
        assert!(
            st.voice_received > floor,
            "PBX {site} received {} voice frames",
            st.voice_received
        );
        let lost = loss(st.voice_received, st.voice_lost);
        assert!(
            lost < 0.01,
            "PBX {site} lost {:.2}% of its voice",
            lost * 100.0
        );
    }

    // Quiet again for two timeouts, then a call from site B, which gets
    // to A only through the mapping A's probes kept.
    std::thread::sleep(TIMEOUT * 2);
    let held = s.mapping().expect("the mapping after the calls");
    assert_eq!(held.public(), public);
    assert!(
        s.call_from_b(Duration::from_secs(5)),
        "a call from site B after a quiet spell"
    );
    s.wait_idle();
    eprintln!("keepalive test took {:.1?}", started.elapsed());
}

#[test]
fn without_keepalives_the_nat_mapping_expires() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    let s = Sites::start(Peering::Permitted, 0, 0);
    assert_eq!(s.link_a().0, LinkState::Unknown, "no probes, no link state");
    assert!(s.mapping().is_none(), "no traffic yet, no mapping");

    // One call from A: it opens the mapping and teaches B where A is.
    assert_eq!(s.pbx_a.originate(s.gw_a_addr(), "700", 1).len(), 1);
    wait_for("the call answered", Duration::from_secs(10), || {
        s.pbx_a.stats().calls_answered == 1 && s.pbx_b.stats().calls_answered == 1
    });
    std::thread::sleep(Duration::from_secs(1));
    let public = s.mapping().expect("the call's mapping").public();
    assert_eq!(s.b_knows_a_at(), Some(SocketAddr::V4(public)));
    assert_eq!((mute_all(&s.pbx_a), mute_all(&s.pbx_b)), (Some(1), Some(1)));
    assert_eq!(s.pbx_a.hangup_all(16), 1);
    s.wait_idle();
    assert!(s.pbx_b.stats().voice_received > 0 && s.pbx_a.stats().voice_received > 0);

    // Silence: the router forgets the flow within a timeout or so.
    let quiet = Instant::now();
    wait_for(
        "the mapping to expire",
        TIMEOUT + Duration::from_secs(4),
        || s.mapping().is_none(),
    );
    eprintln!(
        "mapping gone {:.1?} after the tables emptied",
        quiet.elapsed()
    );
    // B still sends to the old public address, where nothing is mapped.
    assert_eq!(s.b_knows_a_at(), Some(SocketAddr::V4(public)));
    assert!(
        !s.call_from_b(Duration::from_secs(3)),
        "a call from site B reached A with no mapping"
    );
    assert_eq!(s.pbx_a.stats().calls_incoming, 0, "PBX A saw a call from B");
    eprintln!("control test took {:.1?}", started.elapsed());
}

#[test]
fn after_a_nat_reboot_the_next_probe_opens_a_new_mapping() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    let s = Sites::start(Peering::Registered, 1, 0);
    let link_ok = |what: &str| {
        wait_for(what, Duration::from_secs(5), || {
            s.link_a() == (LinkState::Ok, 0)
        });
    };
    link_ok("gateway A's link to B up");
    let first = s.mapping().expect("the router maps A's flow to B").public();
    assert_eq!(*first.ip(), NAT_PUBLIC);

    // Rebooted with another port range: the next probe leaves from a
    // public port in it.
    s.lab.reboot_nat(&Masquerade::Ports(20000, 20999)).unwrap();
    let mut moved = None;
    wait_for(
        "a mapping from the new range",
        Duration::from_secs(5),
        || {
            moved = s.mapping().map(|c| c.public());
            moved.is_some_and(|p| (20000..=20999).contains(&p.port()))
        },
    );
    let moved = moved.unwrap();
    assert_eq!(*moved.ip(), NAT_PUBLIC);
    link_ok("the link after the reboot");
    // B answered A's first probe from the unknown new address with an
    // INVAL, and A registered again at once: B knows the new mapping.
    wait_for("B knows A's new mapping", Duration::from_secs(5), || {
        s.b_knows_a_at() == Some(SocketAddr::V4(moved))
    });

    // A deleted entry comes back with the next probe, in the same range.
    assert_eq!(s.lab.conntrack_delete(a_to_b().src).unwrap(), 1);
    wait_for("the mapping back", Duration::from_secs(5), || {
        s.mapping()
            .is_some_and(|c| (20000..=20999).contains(&c.public().port()))
    });

    // Rebooted with another public address.
    let other = Ipv4Addr::new(100, 64, 0, 3);
    s.lab.reboot_nat(&Masquerade::Address(other)).unwrap();
    wait_for(
        "a mapping from the new address",
        Duration::from_secs(5),
        || s.mapping().is_some_and(|c| *c.public().ip() == other),
    );
    link_ok("the link after the second reboot");
    wait_for("B knows A's new address", Duration::from_secs(5), || {
        s.b_knows_a_at()
            .is_some_and(|a| a.ip() == std::net::IpAddr::V4(other))
    });
    eprintln!("reboot test took {:.1?}", started.elapsed());
}

/// Voice frames received by each PBX.
fn voice(s: &Sites) -> (u64, u64) {
    (
        s.pbx_a.stats().voice_received,
        s.pbx_b.stats().voice_received,
    )
}

/// Waits until both PBXs receive voice again after a fault at `fault`
/// (`stalled`: their counts once the fault had bitten); how long it took.
fn resumed(s: &Sites, fault: Instant, stalled: (u64, u64)) -> Duration {
    // 100 frames each: two seconds of one call, or 5 frames of each.
    wait_for("voice both ways again", Duration::from_secs(30), || {
        let now = voice(s);
        now.0 > stalled.0 + 100 && now.1 > stalled.1 + 100
    });
    fault.elapsed()
}

/// Starts `n` calls from PBX A and waits until they are all answered and
/// carry voice.
fn calls_up(s: &Sites, n: usize) {
    assert_eq!(s.pbx_a.originate(s.gw_a_addr(), "700", n).len(), n);
    wait_for("every call answered", Duration::from_secs(15), || {
        s.pbx_a.stats().calls_answered == n as u64 && s.pbx_b.stats().calls_answered == n as u64
    });
    std::thread::sleep(Duration::from_secs(1));
}

/// Every call still up at both PBXs and in both tables, then hung up.
fn calls_carried_on(s: &Sites, n: usize) {
    let (a, b) = (s.pbx_a.stats(), s.pbx_b.stats());
    assert_eq!((a.active_calls, b.active_calls), (n, n), "calls lost");
    assert_eq!(a.calls_ended + b.calls_ended, 0, "a call ended");
    assert_eq!(
        (s.gw_a.relay().active_calls(), s.gw_b.relay().active_calls()),
        (n, n)
    );
    assert_eq!((mute_all(&s.pbx_a), mute_all(&s.pbx_b)), (Some(n), Some(n)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.pbx_a.hangup_all(16), n);
    s.wait_idle();
}

#[test]
fn a_poisoned_conntrack_entry_is_escaped_on_a_fresh_port_and_the_calls_carry_on() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    // B probes A too (once registered), as a deployed registrar would.
    let s = Sites::start(Peering::Registered, 1, 1);
    wait_for(
        "gateway A registered with B",
        Duration::from_secs(5),
        || s.registered_a(),
    );
    let public = s.mapping().expect("the router maps A's flow to B").public();
    calls_up(&s, 10);

    // The WAN drops, the router's table is flushed, and the entry for A's
    // flow comes back without translation (as one made while the WAN had
    // no address), good for 10 minutes: A's datagrams from its listen
    // port now leave with a private source B can never answer.
    let fault = Instant::now();
    s.lab.poison_flow(a_to_b(), 600).unwrap();
    let poisoned = s.mapping().expect("the poisoned entry");
    assert_eq!(
        poisoned.reply.dst,
        a_to_b().src,
        "not translated: {poisoned:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let stalled = voice(&s);
    std::thread::sleep(Duration::from_millis(500));
    let during = voice(&s);
    assert!(
        during.0 - stalled.0 < 50 && during.1 - stalled.1 < 50,
        "voice still flowing through a poisoned entry: {stalled:?} -> {during:?}"
    );

    // A's probes go unanswered: after 2 misses the link moves to a fresh
    // port, registers at once, and B moves the calls to the new mapping.
    let took = resumed(&s, fault, stalled);
    let reg = s.registration_a().unwrap();
    assert_eq!(reg.state, RegistrationState::Registered);
    assert!(reg.moves >= 1, "{reg:?}");
    let port = reg.local_port.unwrap();
    assert_ne!(port, GW_PORT);
    let fresh = s
        .lab
        .conntrack_flow(Tuple {
            src: SocketAddrV4::new(A_ADDR, port),
            dst: SocketAddrV4::new(B_ADDR, GW_PORT),
        })
        .unwrap()
        .expect("a mapping for the fresh port");
    assert_eq!(*fresh.public().ip(), NAT_PUBLIC);
    assert_ne!(fresh.public(), public);
    assert_eq!(s.b_knows_a_at(), Some(SocketAddr::V4(fresh.public())));
    assert_eq!(reg.apparent, Some(SocketAddr::V4(fresh.public())));
    // The poisoned entry is still there: the gateway went around it.
    assert_eq!(
        s.mapping().map(|c| c.reply.dst),
        Some(a_to_b().src),
        "the poisoned entry"
    );
    calls_carried_on(&s, 10);
    eprintln!(
        "poisoned entry: voice back both ways {:.1} s after the fault (keepalive 1 s, unreachable after 2), on source port {port}; all 10 calls kept; test took {:.1?}",
        took.as_secs_f64(),
        started.elapsed()
    );
    // Keepalive 1 s x 2 missed probes, the move, one registration.
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn after_the_nat_changes_its_public_address_the_calls_follow_the_new_one() {
    if skipped() {
        return;
    }
    let s = Sites::start(Peering::Registered, 1, 1);
    wait_for(
        "gateway A registered with B",
        Duration::from_secs(5),
        || s.registered_a(),
    );
    calls_up(&s, 10);
    // The router reboots with another public address: A's flows keep their
    // source port but come from an address B does not know.
    let other = Ipv4Addr::new(100, 64, 0, 3);
    let fault = Instant::now();
    s.lab.reboot_nat(&Masquerade::Address(other)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stalled = voice(&s);
    let took = resumed(&s, fault, stalled);
    let b_sees = s.b_knows_a_at().unwrap();
    assert_eq!(b_sees.ip(), std::net::IpAddr::V4(other));
    let reg = s.registration_a().unwrap();
    assert_eq!(reg.moves, 0, "no port move needed: {reg:?}");
    assert_eq!(reg.apparent, Some(b_sees));
    let r = s
        .gw_b
        .relay()
        .link_views(iax2_gateway::clock::now())
        .into_iter()
        .find(|l| l.peer == "gw-a")
        .and_then(|l| l.registrar)
        .unwrap();
    assert_eq!((r.address_changes, r.calls_moved), (1, 10));
    calls_carried_on(&s, 10);
    eprintln!(
        "new NAT address: voice back both ways {:.1} s after the reboot; all 10 calls kept",
        took.as_secs_f64()
    );
    // One probe from the new address, B's INVAL, one registration.
    assert!(took < Duration::from_secs(5), "{took:?}");
}
