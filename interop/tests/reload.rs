//! Reloading a gateway's configuration under load: 200 calls up through
//! the pair, gateway A's peers, routes and trunk settings change, and no
//! call is dropped or loses voice; a configuration that does not validate
//! is refused before anything changes.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::time::Duration;

use iax2_interop::lab::{emulated_pbx, free_loopback_addr, mute_all, two_sites, wait_for, Local};
use iax2_loadtest::driver::DriverHandle;

const CALLS: usize = 200;

fn pbx(socket: UdpSocket, seed: u64, callee: bool) -> DriverHandle {
    emulated_pbx(socket, seed, callee, |_| {})
}

#[test]
fn two_hundred_calls_survive_reloads_and_a_broken_file_changes_nothing() {
    let (pair, site_a, site_b, sock_a, sock_b) = two_sites(2);
    let a = pbx(sock_a, 31, false);
    let b = pbx(sock_b, 32, true);

    assert_eq!(a.originate(pair.a.local_addr(), "800", CALLS).len(), CALLS);
    wait_for("every call answered", Duration::from_secs(30), || {
        a.stats().calls_answered == CALLS as u64 && b.stats().calls_answered == CALLS as u64
    });
    std::thread::sleep(Duration::from_secs(1));

    // Reload 1: a new PBX peer with its route, and a smaller trunk MTU
    // toward the far gateway (applies at once).
    let mut next = site_a.clone();
    next.locals
        .push(Local::new("pbx-c", free_loopback_addr(), Some("9")));
    next.far_peer_keys.push("trunkmtu: 600".to_owned());
    let yaml = next.yaml(site_b.listen);
    let config = iax2_config::from_yaml_str(&yaml, "site-a.yaml").unwrap();
    let before = b.stats().voice_received;
    let report = pair.a.relay().reload(&config).unwrap();
    assert_eq!(report.added, vec!["pbx-c".to_owned()], "{report}");
    assert!(
        report
            .changed
            .iter()
            .any(|c| c.starts_with("far (trunk settings")),
        "{report}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = b.stats().voice_received;
    // 200 calls at 50 frames/s for 2 s: voice kept flowing through A.
    assert!(
        after - before > 15_000,
        "voice went on: {before} -> {after}"
    );

    // A broken file is refused by the validator, as check-config would
    // refuse it; nothing reaches the relay.
    let broken = yaml.replace("trunkmtu: 600", "trunkmtu: 60");
    let err = iax2_config::from_yaml_str(&broken, "site-a.yaml").unwrap_err();
    assert!(err.to_string().contains("site-a.yaml:"), "{err}");

    // Reload 2: back to the first configuration (pbx-c retired, MTU back).
    let first = iax2_config::from_yaml_str(&site_a.yaml(site_b.listen), "site-a.yaml").unwrap();
    let report = pair.a.relay().reload(&first).unwrap();
    assert_eq!(
        (report.generation, report.removed.clone()),
        (2, vec!["pbx-c".to_owned()])
    );
    std::thread::sleep(Duration::from_secs(1));

    // Not one call dropped; every voice frame arrived.
    assert_eq!(
        (mute_all(&a), mute_all(&b)),
        (Some(CALLS), Some(CALLS)),
        "all calls still up"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (sa, sb) = (a.stats(), b.stats());
    for (name, s) in [("PBX A", &sa), ("PBX B", &sb)] {
        assert_eq!((s.calls_failed, s.calls_ended), (0, 0), "{name}: {s:?}");
        assert_eq!((s.voice_lost, s.voice_corrupt), (0, 0), "{name}: {s:?}");
    }
    assert_eq!(sa.voice_sent, sb.voice_received);
    assert_eq!(sb.voice_sent, sa.voice_received);
    assert_eq!(a.hangup_all(16), CALLS);
    wait_for("both tables empty", Duration::from_secs(15), || {
        pair.active_calls() == (0, 0)
    });
    pair.a.relay().check_invariants().unwrap();
    drop((a.stop(), b.stop()));
}
