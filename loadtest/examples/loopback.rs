//! Two emulated PBXs on loopback UDP, N calls for T seconds: a quick check
//! that the driver is not the bottleneck.
//!
//! `cargo run --release -p loadtest --example loopback -- 500 10`

use std::net::UdpSocket;
use std::time::Duration;

use iax2_loadtest::driver::{spawn_udp, DriverConfig, DriverHandle};
use iax2_loadtest::{Endpoint, EndpointConfig, EndpointStats};

fn driver(seed: u64, origin: std::time::Instant) -> std::io::Result<DriverHandle> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let cfg = EndpointConfig::new(socket.local_addr()?, seed);
    spawn_udp(
        Endpoint::new(cfg),
        socket,
        DriverConfig {
            origin,
            ..DriverConfig::default()
        },
    )
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn report(name: &str, s: &EndpointStats) {
    println!(
        "{name}: answered {} ended {} voice sent {} received {} lost {} dup {} reordered {} corrupt {} \
         latency mean {:?} us max {} us, jitter max {:.0} us, retransmissions {}",
        s.calls_answered,
        s.calls_ended,
        s.voice_sent,
        s.voice_received,
        s.voice_lost,
        s.voice_duplicates,
        s.voice_reordered,
        s.voice_corrupt,
        s.latency_mean_us(),
        s.latency_max_us,
        s.jitter_max_us,
        s.retransmissions
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let origin = std::time::Instant::now();
    let a = driver(1, origin)?;
    let b = driver(2, origin)?;
    let cpu0 = cpu_seconds();
    let ids = a.originate(b.local_addr(), "2001", calls);
    println!("originated {} calls", ids.len());
    std::thread::sleep(Duration::from_secs(secs));
    let hung = a.hangup_all(16);
    std::thread::sleep(Duration::from_millis(500));
    let cpu1 = cpu_seconds();
    let (sa, sb) = (a.stats(), b.stats());
    report("A", &sa);
    report("B", &sb);
    println!(
        "hung up {hung}; active now {} / {}",
        sa.active_calls, sb.active_calls
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let packets = sa.voice_sent + sb.voice_sent;
        println!(
            "CPU {:.2} s for {} voice packets sent ({:.0} packets/s each way), {:.2} us CPU per packet (send+receive)",
            c1 - c0,
            packets,
            packets as f64 / 2.0 / secs as f64,
            (c1 - c0) * 1e6 / packets.max(1) as f64
        );
    }
    let (_, da) = a.stop().expect("driver A joined");
    let (_, db) = b.stop().expect("driver B joined");
    println!("driver A {da:?}\ndriver B {db:?}");
    Ok(())
}
