//! The impairment model on a virtual clock (rates within statistical
//! bounds for fixed seeds, bursts, reordering, duplication, delay and
//! jitter bounds, the rate limit, determinism), the link's bounded queue,
//! and the proxy shell carrying a UDP echo on loopback.

// Test code: a panic is a failure.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use iax2_loadtest::impair::{
    Burst, DropCause, Fate, JitterShape, Link, Model, Proxy, ProxyConfig, Rate, Settings,
};
use trunk_core::time::Instant;

const N: u64 = 100_000;

/// Arrivals every 20 ms (a voice stream), 200 bytes each.
fn fates(settings: &Settings, seed: u64) -> Vec<(Instant, Fate)> {
    let mut m = Model::new(settings, seed);
    (0..N)
        .map(|i| {
            let now = Instant::from_millis(i * 20);
            (now, m.decide(now, 200))
        })
        .collect()
}

fn count(f: &[(Instant, Fate)], cause: DropCause) -> u64 {
    f.iter().filter(|(_, x)| *x == Fate::Drop(cause)).count() as u64
}

/// Whether `k` of `N` trials is within 5 standard deviations of `p`
/// (a fixed seed makes the test exact; the bound says the model is right).
fn near(k: u64, p: f64) -> bool {
    let n = N as f64;
    let sd = (n * p * (1.0 - p)).sqrt();
    (k as f64 - n * p).abs() <= 5.0 * sd
}

#[test]
fn independent_loss_is_near_the_configured_rate() {
    for (p, seed) in [(0.01, 1), (0.05, 2), (0.3, 3)] {
        let s = Settings {
            loss: p,
            ..Settings::default()
        };
        let lost = count(&fates(&s, seed), DropCause::Loss);
        assert!(near(lost, p), "{lost} of {N} at {p}");
    }
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let s = Settings {
        loss: 0.05,
        burst: Some(Burst {
            p_good_bad: 0.01,
            p_bad_good: 0.3,
            loss_bad: 0.8,
        }),
        reorder: 0.02,
        duplicate: 0.01,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
        rate: Some(Rate::Packets(45)),
        ..Settings::default()
    };
    assert_eq!(fates(&s, 42), fates(&s, 42));
    assert_ne!(fates(&s, 42), fates(&s, 43));
}

#[test]
fn burst_loss_comes_in_runs() {
    let b = Burst {
        p_good_bad: 0.01,
        p_bad_good: 0.25,
        loss_bad: 1.0,
    };
    let s = Settings {
        burst: Some(b),
        ..Settings::default()
    };
    let f = fates(&s, 9);
    let lost: Vec<bool> = f.iter().map(|(_, x)| matches!(x, Fate::Drop(_))).collect();
    let k = lost.iter().filter(|&&l| l).count() as f64;
    // Stationary share of the bad state: p_gb / (p_gb + p_bg) = 3.85%.
    let expected = b.p_good_bad / (b.p_good_bad + b.p_bad_good) * N as f64;
    assert!((k - expected).abs() < 0.15 * expected, "{k} vs {expected}");
    let runs = lost.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
    let mean_run = k / runs;
    // Runs last 1 / p_bg = 4 datagrams on average; independent loss at
    // the same rate would give runs of about 1.04.
    assert!((3.4..4.6).contains(&mean_run), "mean run {mean_run}");
    assert_eq!(count(&f, DropCause::Loss), 0);
}

#[test]
fn reordering_holds_datagrams_back_past_later_ones() {
    let s = Settings {
        reorder: 0.02,
        reorder_delay: Duration::from_millis(50),
        delay: Duration::from_millis(10),
        ..Settings::default()
    };
    let f = fates(&s, 5);
    let held = f
        .iter()
        .filter(|(_, x)| {
            matches!(
                x,
                Fate::Deliver {
                    held_back: true,
                    ..
                }
            )
        })
        .count() as u64;
    assert!(near(held, 0.02), "{held}");
    let mut releases: Vec<(Instant, u64)> = f
        .iter()
        .enumerate()
        .filter_map(|(i, (_, x))| match x {
            Fate::Deliver { at, .. } => Some((*at, i as u64)),
            Fate::Drop(_) => None,
        })
        .collect();
    releases.sort();
    let out_of_order = releases.windows(2).filter(|w| w[1].1 < w[0].1).count() as u64;
    // Each held-back datagram (50 ms, 20 ms spacing) lets later ones pass.
    assert!(out_of_order >= held * 9 / 10, "{out_of_order} vs {held}");
}

#[test]
fn duplication_is_near_the_configured_rate() {
    let s = Settings {
        duplicate: 0.01,
        ..Settings::default()
    };
    let dups = fates(&s, 6)
        .iter()
        .filter(|(_, x)| matches!(x, Fate::Deliver { copy: Some(_), .. }))
        .count() as u64;
    assert!(near(dups, 0.01), "{dups}");
}

#[test]
fn delay_and_jitter_stay_within_their_bounds() {
    for shape in [JitterShape::Uniform, JitterShape::Normal] {
        let s = Settings {
            delay: Duration::from_millis(40),
            jitter: Duration::from_millis(30),
            jitter_shape: shape,
            duplicate: 0.05,
            ..Settings::default()
        };
        let mut sum = 0u64;
        let mut spread = [0u64; 3];
        for (now, f) in fates(&s, 7) {
            let Fate::Deliver { at, copy, .. } = f else {
                panic!("nothing is lost")
            };
            for t in std::iter::once(at).chain(copy) {
                let d = (t - now).as_micros() as u64;
                assert!((40_000..=70_000).contains(&d), "{d} us");
                if t == at {
                    sum += d;
                    spread[((d - 40_000) / 10_001) as usize] += 1;
                }
            }
        }
        let mean = sum / N;
        assert!(
            (53_500..=56_500).contains(&mean),
            "{shape:?}: mean {mean} us"
        );
        // Uniform: thirds about equal; bell-shaped: the middle third most.
        match shape {
            JitterShape::Uniform => assert!(spread.iter().all(|&n| near(n, 1.0 / 3.0))),
            JitterShape::Normal => assert!(spread[1] > spread[0] * 2 && spread[1] > spread[2] * 2),
        }
    }
}

#[test]
fn the_rate_limit_holds_the_rate_and_drops_past_its_queue() {
    // 50 datagrams/s offered to a 40/s limit with room for 100 waiting.
    let s = Settings {
        rate: Some(Rate::Packets(40)),
        rate_queue: 100,
        ..Settings::default()
    };
    let f = fates(&s, 8);
    let out: Vec<Instant> = f
        .iter()
        .filter_map(|(_, x)| match x {
            Fate::Deliver { at, .. } => Some(*at),
            Fate::Drop(_) => None,
        })
        .collect();
    let span = (*out.last().unwrap() - out[0]).as_secs_f64();
    let rate = (out.len() - 1) as f64 / span;
    assert!((39.9..=40.1).contains(&rate), "{rate}/s");
    for w in out.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_micros(24_999), "{w:?}");
    }
    // A fifth of what is offered cannot pass; the queue stays bounded.
    let dropped = count(&f, DropCause::Rate);
    assert!(
        (N / 5 - 200..=N / 5).contains(&dropped),
        "{dropped} dropped"
    );
    let worst = f
        .iter()
        .filter_map(|(now, x)| match x {
            Fate::Deliver { at, .. } => Some(*at - *now),
            Fate::Drop(_) => None,
        })
        .max()
        .unwrap();
    assert!(worst <= Duration::from_millis(2_525), "{worst:?}");

    // In bytes: 200-byte datagrams every 20 ms through 8000 B/s is 40/s.
    let s = Settings {
        rate: Some(Rate::Bytes(8_000)),
        rate_queue: 100,
        ..Settings::default()
    };
    let delivered = fates(&s, 8)
        .iter()
        .filter(|(_, x)| matches!(x, Fate::Deliver { .. }))
        .count() as u64;
    assert!((N * 4 / 5..=N * 4 / 5 + 200).contains(&delivered));
}

#[test]
fn the_link_releases_what_is_due_counts_everything_and_bounds_its_queue() {
    let s = Settings {
        loss: 0.05,
        reorder: 0.02,
        duplicate: 0.01,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(30),
        ..Settings::default()
    };
    let mut link: Link<u32> = Link::new(&s, 11, 64);
    let mut got = Vec::new();
    for i in 0..20_000u32 {
        let now = Instant::from_millis(u64::from(i));
        link.offer(now, i, &i.to_be_bytes());
        link.release_due(now, |tag, bytes| {
            assert_eq!(bytes, tag.to_be_bytes());
            got.push(tag);
        });
        assert!(link.queued() <= 64);
        assert!(link.next_release().is_none_or(|t| t > now));
    }
    link.release_due(Instant::from_millis(100_000), |tag, _| got.push(tag));
    let c = link.counters();
    assert_eq!(c.received + c.duplicated, c.forwarded + c.dropped());
    assert_eq!(c.forwarded, got.len() as u64);
    assert!(c.dropped_loss > 800 && c.reordered > 300 && c.duplicated > 100);
    // 1 ms apart with up to 35 ms (85 with a hold-back) in flight: the
    // 64 slots are enough, barely; a smaller queue overflows and counts it.
    let mut small: Link<u32> = Link::new(&s, 11, 4);
    for i in 0..1000u32 {
        let now = Instant::from_millis(u64::from(i));
        small.offer(now, i, b"x");
        small.release_due(now, |_, _| {});
    }
    assert!(small.counters().dropped_queue > 100);
}

fn echo_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let addr = s.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if &buf[..n] == b"quit" {
                return;
            }
            s.send_to(&buf[..n], from).unwrap();
        }
    });
    (addr, t)
}

#[test]
fn the_proxy_carries_an_echo_with_each_client_mapped_and_impaired() {
    let (echo, server) = echo_server();
    let settings = Settings {
        loss: 0.10,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        ..Settings::default()
    };
    let mut config = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), echo, settings);
    config.seed = 3;
    let proxy = Proxy::start(&config).unwrap();
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            c
        })
        .collect();
    let mut echoed = 0;
    let started = std::time::Instant::now();
    for i in 0..200u32 {
        let c = &clients[i as usize % 2];
        c.send_to(&i.to_be_bytes(), proxy.local_addr()).unwrap();
        let mut buf = [0u8; 16];
        if let Ok((n, from)) = c.recv_from(&mut buf) {
            assert_eq!(from, proxy.local_addr());
            assert_eq!(&buf[..n], i.to_be_bytes());
            echoed += 1;
        }
    }
    // Each echo crosses twice at 10% loss each: 81% expected.
    assert!((140..=184).contains(&echoed), "{echoed} of 200 echoed");
    // Two round trips of at least 10 ms each way for each echo.
    assert!(started.elapsed() >= Duration::from_millis(20) * echoed);
    let maps = proxy.mappings();
    assert_eq!(maps.len(), 2);
    for (c, (client, outside)) in clients.iter().zip(&maps) {
        assert_eq!(*client, c.local_addr().unwrap());
        assert_ne!(*outside, proxy.local_addr());
    }
    let s = proxy.stop();
    assert_eq!(s.clients, 2);
    assert_eq!(s.to_upstream.received, 200);
    assert_eq!(s.to_upstream.forwarded, 200 - s.to_upstream.dropped_loss);
    assert_eq!(s.to_client.received, s.to_upstream.forwarded);
    assert_eq!(u64::from(echoed), s.to_client.forwarded);
    let quit = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    quit.send_to(b"quit", echo).unwrap();
    server.join().unwrap();
}

#[test]
fn the_proxy_stops_by_itself_after_its_duration() {
    let mut config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        Settings::default(),
    );
    config.run_for = Some(Duration::from_millis(200));
    let proxy = Proxy::start(&config).unwrap();
    assert!(proxy.is_running());
    std::thread::sleep(Duration::from_millis(400));
    assert!(!proxy.is_running());
}

#[test]
fn loadtest_impair_relays_for_its_duration_and_writes_its_summary() {
    let (echo, server) = echo_server();
    let listen = {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.local_addr().unwrap()
    };
    let json = std::env::temp_dir().join(format!("loadtest-impair-{}.json", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["impair", "--listen", &listen.to_string()])
        .args(["--upstream", &echo.to_string()])
        .args([
            "--loss", "20", "--delay", "5", "--jitter", "5", "--seed", "9",
        ])
        .args(["--burst", "1,50,50", "--rate", "1000pps", "--duration", "3"])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16];
    // Probes until the proxy is up and one comes back.
    let mut echoed = 0u64;
    for _ in 0..40 {
        let _ = client.send_to(b"probe", listen);
        if client.recv_from(&mut buf).is_ok() {
            echoed += 1;
            break;
        }
    }
    assert_eq!(echoed, 1, "the proxy never answered");
    for i in 0..100u32 {
        client.send_to(&i.to_be_bytes(), listen).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while client.recv_from(&mut buf).is_ok() {
        echoed += 1;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("to upstream") && stdout.contains("to clients"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let up = &report["stats"]["to_upstream"];
    let received = up["received"].as_u64().unwrap();
    assert!((101..=140).contains(&received), "{report}");
    assert!(up["dropped_loss"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["seed"], 9);
    assert_eq!(
        report["stats"]["to_client"]["forwarded"].as_u64().unwrap(),
        echoed
    );
    let quit = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    quit.send_to(b"quit", echo).unwrap();
    server.join().unwrap();
}
