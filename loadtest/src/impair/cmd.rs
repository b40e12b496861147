//! `loadtest impair`: runs a [`Proxy`] until its duration passes or a
//! signal arrives, printing each direction's counters every second and
//! the totals at the end (and as JSON on request).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::link::Counters;
use super::model::{Burst, Rate};
use super::proxy::{Proxy, ProxyConfig, ProxyStats};

/// The summary `loadtest impair` prints and writes as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ImpairReport {
    /// Seconds the proxy ran.
    pub seconds: f64,
    /// Seed of the decisions.
    pub seed: u64,
    /// The counters of both directions.
    pub stats: ProxyStats,
}

impl ImpairReport {
    /// The report as lines of text.
    pub fn table(&self) -> String {
        format!(
            "impair: {:.1} s, seed {}, {} clients, {} refused, {} send failures\n{}\n{}\n",
            self.seconds,
            self.seed,
            self.stats.clients,
            self.stats.refused,
            self.stats.send_failures,
            line("to upstream", &self.stats.to_upstream),
            line("to clients ", &self.stats.to_client),
        )
    }
}

/// One direction's counters on one line.
fn line(name: &str, c: &Counters) -> String {
    let pct = |n: u64| {
        if c.received == 0 {
            0.0
        } else {
            n as f64 * 100.0 / c.received as f64
        }
    };
    format!(
        "{name}  received {:>9}  forwarded {:>9}  dropped {:>7} ({:.2}%: loss {} burst {} rate {} queue {})  duplicated {}  reordered {}",
        c.received,
        c.forwarded,
        c.dropped(),
        pct(c.dropped()),
        c.dropped_loss,
        c.dropped_burst,
        c.dropped_rate,
        c.dropped_queue,
        c.duplicated,
        c.reordered,
    )
}

/// Parses `--burst P_GB,P_BG,LOSS` (percentages).
pub fn parse_burst(s: &str) -> Result<Burst, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| parse_pct(p.trim()))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [p_good_bad, p_bad_good, loss_bad] => Ok(Burst {
            p_good_bad,
            p_bad_good,
            loss_bad,
        }),
        _ => Err("expected P_GB,P_BG,LOSS (three percentages)".into()),
    }
}

/// Parses a percentage into a fraction.
pub fn parse_pct(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|e| format!("{s}: {e}"))?;
    if (0.0..=100.0).contains(&p) {
        Ok(p / 100.0)
    } else {
        Err(format!("{s}: not a percentage between 0 and 100"))
    }
}

/// Parses `--rate`: a number of datagrams per second (`500`, `500pps`)
/// or bytes per second (`64000B`, `64kB`, `1MB`).
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().map_err(|e| format!("{s}: {e}"))?;
    let rate = match unit.to_ascii_lowercase().as_str() {
        "" | "pps" => Rate::Packets(n),
        "b" => Rate::Bytes(n),
        "kb" => Rate::Bytes(n * 1000),
        "mb" => Rate::Bytes(n * 1_000_000),
        _ => return Err(format!("{s}: a rate is N, Npps, NB, NkB or NMB")),
    };
    if n == 0 {
        return Err(format!("{s}: a rate must be above 0"));
    }
    Ok(rate)
}

/// Runs the proxy of `config` until `config.run_for` passes or SIGINT or
/// SIGTERM; prints counters every second unless `quiet`.
pub fn impair(config: &ProxyConfig, quiet: bool) -> io::Result<ImpairReport> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let proxy = Proxy::start(config)?;
    eprintln!(
        "impairing {} -> {} (seed {})",
        proxy.local_addr(),
        config.upstream,
        config.seed
    );
    let start = Instant::now();
    let mut next = start + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) && proxy.is_running() {
        std::thread::sleep(Duration::from_millis(20));
        if !quiet && Instant::now() >= next {
            next += Duration::from_secs(1);
            let s = proxy.stats();
            eprintln!(
                "{:>5.0}s  clients {}\n  {}\n  {}",
                start.elapsed().as_secs_f64(),
                s.clients,
                line("to upstream", &s.to_upstream),
                line("to clients ", &s.to_client),
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let stats = proxy.stop();
    Ok(ImpairReport {
        seconds,
        seed: config.seed,
        stats,
    })
}
