//! Drives calls through whatever sits at a target address: originate at a
//! rate, hold, stop the voice, let it drain, hang up, and account.
//!
//! Shared by `demo` (both PBXs are ours), `run` (only the caller is ours)
//! and each step of `bench`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant as WallInstant};

use crate::driver::DriverGroup;
use crate::endpoint::measure::quantile_ms;
use crate::endpoint::{Codec, EndpointStats, Measurements};
use crate::load::report::{CallCounts, Dtmf, Media, Quantiles, RunReport, Setup};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the NEWs go.
    pub target: SocketAddr,
    /// The called number.
    pub called: String,
    /// Calls to originate.
    pub calls: usize,
    /// Calls originated per second.
    pub rate: f64,
    /// From the first NEW to the hangup.
    pub duration: Duration,
    /// Print a live progress line to stderr every second.
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The caller's counters at the end.
    pub caller: EndpointStats,
    /// The callee's counters at the end, when the callee is ours.
    pub callee: Option<EndpointStats>,
    /// Both sides' distributions over the whole run.
    pub measure: Measurements,
    /// First NEW to hangup.
    pub elapsed: Duration,
    /// Calls answered at the caller when the voice stopped.
    pub answered: u64,
}

impl Outcome {
    /// Voice frames sent by our PBXs.
    pub fn voice_sent(&self) -> u64 {
        self.caller.voice_sent + self.callee.as_ref().map_or(0, |c| c.voice_sent)
    }

    /// Voice frames received intact (duplicates included).
    pub fn voice_received(&self) -> u64 {
        self.caller.voice_received + self.callee.as_ref().map_or(0, |c| c.voice_received)
    }

    /// Distinct voice frames received.
    pub fn voice_unique(&self) -> u64 {
        let dup =
            self.caller.voice_duplicates + self.callee.as_ref().map_or(0, |c| c.voice_duplicates);
        self.voice_received() - dup
    }

    /// Voice frames lost. With both PBXs ours, every frame sent that did not
    /// arrive (the voice stopped and drained before the hangup, so this is
    /// exact); with a foreign far end, the gaps in what came back.
    pub fn voice_lost(&self) -> u64 {
        match &self.callee {
            Some(_) => self.voice_sent().saturating_sub(self.voice_unique()),
            None => self.caller.voice_lost,
        }
    }

    /// The report's calls, media, DTMF and setup sections (the rest is
    /// for the caller to fill in).
    pub fn report(&self, mode: &str, codec: Codec, ptime_ms: u32) -> RunReport {
        let callee = self.callee.clone().unwrap_or_default();
        let a = &self.caller;
        let setup = Quantiles::of(&self.measure.setup_us);
        RunReport {
            mode: mode.to_owned(),
            codec: codec.name().to_owned(),
            ptime_ms,
            duration_s: self.elapsed.as_secs_f64(),
            calls: CallCounts {
                attempted: a.calls_originated,
                answered: a.calls_answered,
                failed: a.calls_originated.saturating_sub(a.calls_answered),
            },
            media: Media {
                sent: self.voice_sent(),
                received: self.voice_received(),
                lost: self.voice_lost(),
                loss_ratio: self.loss_ratio(),
                duplicates: a.voice_duplicates + callee.voice_duplicates,
                reordered: a.voice_reordered + callee.voice_reordered,
                corrupt: a.voice_corrupt + callee.voice_corrupt,
                latency_ms: Quantiles::of(&self.measure.latency_us),
                jitter_ms: Quantiles::of(&self.measure.jitter_us),
            },
            dtmf: Dtmf {
                sent: a.dtmf_sent + callee.dtmf_sent,
                received: a.dtmf_received + callee.dtmf_received,
            },
            setup_ms: Setup {
                p50: setup.p50,
                p99: setup.p99,
            },
            ..RunReport::default()
        }
    }

    /// Lost over sent (over expected, with a foreign far end).
    pub fn loss_ratio(&self) -> f64 {
        let base = match &self.callee {
            Some(_) => self.voice_sent(),
            None => self.caller.voice_lost + self.voice_unique(),
        };
        if base == 0 {
            0.0
        } else {
            self.voice_lost() as f64 / base as f64
        }
    }
}

/// Both sides' stats and a window of measurements.
fn sample(
    caller: &DriverGroup,
    callee: Option<&DriverGroup>,
    total: &mut Measurements,
) -> (EndpointStats, Option<EndpointStats>, Measurements) {
    let mut window = caller.measurements(true);
    if let Some(c) = callee {
        window.add(&c.measurements(true));
    }
    total.add(&window);
    (caller.stats(), callee.map(DriverGroup::stats), window)
}

/// Stops every call's voice on `group`; returns how many calls.
pub fn mute(group: &DriverGroup) -> usize {
    group
        .each(|ep, now, _| {
            let ids = ep.call_ids();
            ids.into_iter().filter(|&id| ep.stop_media(now, id)).count()
        })
        .into_iter()
        .sum()
}

/// Waits until `read` gives the same value twice 200 ms apart, at most
/// `limit`.
pub fn settle<T: PartialEq>(limit: Duration, mut read: impl FnMut() -> T) {
    let end = WallInstant::now() + limit;
    let mut last = read();
    while WallInstant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        let now = read();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; whether it
/// held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = WallInstant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if WallInstant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Originates up to `want` calls in total at `rate` per second since
/// `start`; returns how many are originated now.
pub fn pace(caller: &mut DriverGroup, plan: &Plan, start: WallInstant, originated: usize) -> usize {
    let due = (start.elapsed().as_secs_f64() * plan.rate).ceil() as usize;
    let due = due.min(plan.calls);
    if due > originated {
        caller.originate(plan.target, &plan.called, due - originated);
    }
    due.max(originated)
}

/// One progress line.
pub fn progress_line(
    t: Duration,
    plan: &Plan,
    caller: &EndpointStats,
    callee: Option<&EndpointStats>,
    window: &Measurements,
    voice_per_s: f64,
) -> String {
    let up = caller.calls_answered.min(caller.active_calls as u64);
    let lost = caller.voice_lost + callee.map_or(0, |c| c.voice_lost);
    let got = caller.voice_received + callee.map_or(0, |c| c.voice_received);
    let loss = if lost + got == 0 {
        0.0
    } else {
        lost as f64 / (lost + got) as f64
    };
    format!(
        "{:>5.0}s  calls up {:>6}/{:<6} failed {:>4}  voice {:>8.0}/s  loss {:>7.4}%  p99 {:>7.2} ms",
        t.as_secs_f64(),
        up,
        plan.calls,
        caller.calls_failed + caller.calls_rejected_by_peer,
        voice_per_s,
        loss * 100.0,
        quantile_ms(&window.latency_us, 0.99),
    )
}

/// Runs `plan` with `caller` (and `callee` when it is ours): see the
/// module documentation. Returns when every call is released (or 10 s
/// after the hangup at the latest).
pub fn run(caller: &mut DriverGroup, callee: Option<&DriverGroup>, plan: &Plan) -> Outcome {
    let start = WallInstant::now();
    let mut total = Measurements::new();
    let mut originated = 0;
    let mut next_report = start + Duration::from_secs(1);
    let mut last_received = 0u64;
    let mut last_t = start;
    let tty = plan.progress && is_terminal();
    while start.elapsed() < plan.duration {
        originated = pace(caller, plan, start, originated);
        if WallInstant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let (a, b, window) = sample(caller, callee, &mut total);
            let received = a.voice_received + b.as_ref().map_or(0, |s| s.voice_received);
            let secs = last_t.elapsed().as_secs_f64().max(1e-3);
            let rate = (received - last_received.min(received)) as f64 / secs;
            last_received = received;
            last_t = WallInstant::now();
            if plan.progress {
                let line = progress_line(start.elapsed(), plan, &a, b.as_ref(), &window, rate);
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r{line}")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if tty {
        eprintln!();
    }
    // Stop talking and let the voice in flight arrive before the hangup,
    // so that loss is exact (a frame reaching a PBX after it ended the
    // call would be discarded there).
    let answered = caller.stats().calls_answered;
    mute(caller);
    if let Some(c) = callee {
        mute(c);
    }
    settle(Duration::from_secs(3), || {
        let a = caller.stats();
        let b = callee.map(DriverGroup::stats);
        (a.voice_received, b.map(|s| s.voice_received))
    });
    let _ = sample(caller, callee, &mut total);
    let elapsed = start.elapsed();
    caller.hangup_all(16);
    wait_until(Duration::from_secs(10), || {
        caller.active_calls() == 0 && callee.is_none_or(|c| c.active_calls() == 0)
    });
    // Setup times live in the caller's histograms, already taken.
    Outcome {
        caller: caller.stats(),
        callee: callee.map(DriverGroup::stats),
        measure: total,
        elapsed,
        answered,
    }
}

/// Whether stderr is a terminal (for `\r` progress lines).
pub fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// `loadtest run`: originate against any IAX2 peer.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The peer.
    pub target: SocketAddr,
    /// Concurrent calls.
    pub calls: usize,
    /// Calls per second.
    pub rate: f64,
    /// From the first NEW to the hangup.
    pub duration: Duration,
    /// USERNAME in NEW.
    pub username: String,
    /// MD5 secret.
    pub secret: Option<String>,
    /// The called number.
    pub number: String,
    /// The codec.
    pub codec: crate::endpoint::Codec,
    /// Voice frame interval, ms.
    pub ptime_ms: u32,
    /// Local address.
    pub bind: SocketAddr,
    /// Threads.
    pub threads: usize,
    /// Progress line.
    pub progress: bool,
    /// Each call sends a DTMF digit this often (`None`: none).
    pub dtmf_interval: Option<Duration>,
}

/// Runs `loadtest run`. Voice is measured when the far end sends back
/// frames of ours (an echo: `loadtest answer --echo`, or Asterisk's
/// `Echo()`); latency is then the round trip. Audio of the far end's own
/// is counted as received, and as corrupt since it is not ours.
pub fn run_against(opts: &RunOptions) -> std::io::Result<crate::load::report::RunReport> {
    use crate::driver::{spawn_group, DriverConfig};
    use crate::endpoint::{Endpoint, EndpointConfig};
    let origin = WallInstant::now();
    // Nobody reads the per-call events of a load run: keep none.
    let dc = DriverConfig {
        origin,
        max_events: 0,
        ..DriverConfig::default()
    };
    let mut caller = spawn_group(opts.bind, opts.threads, dc, |shard| {
        let mut cfg = EndpointConfig::new(opts.bind, 0x5eed ^ (u64::from(shard.index) << 32));
        cfg.username.clone_from(&opts.username);
        cfg.secret.clone_from(&opts.secret);
        cfg.codec = opts.codec;
        cfg.ptime_ms = opts.ptime_ms;
        cfg.keep_ended_calls = false;
        cfg.dtmf_interval = opts.dtmf_interval;
        cfg.shard = Some(shard);
        Endpoint::new(cfg)
    })?;
    eprintln!(
        "{} -> {}: {} calls to {} at {:.0}/s for {:.0} s",
        caller.local_addr(),
        opts.target,
        opts.calls,
        opts.number,
        opts.rate,
        opts.duration.as_secs_f64()
    );
    let cpu0 = crate::cpu::CpuSnapshot::take();
    let plan = Plan {
        target: opts.target,
        called: opts.number.clone(),
        calls: opts.calls,
        rate: opts.rate,
        duration: opts.duration,
        progress: opts.progress,
    };
    let outcome = run(&mut caller, None, &plan);
    let cpu1 = crate::cpu::CpuSnapshot::take();
    let mut report = outcome.report("run", opts.codec, opts.ptime_ms);
    report.cpu.generator_s = cpu1.prefix_seconds_since(&cpu0, crate::cpu::ENDPOINT_PREFIX);
    report.cpu.process_s = cpu1.process_seconds_since(&cpu0).unwrap_or(0.0);
    report.cpu.machine_busy = cpu1.machine_busy_since(&cpu0).unwrap_or(0.0);
    report.cpu.wall_s = cpu1.wall_seconds_since(&cpu0);
    let (_, _, handoff) = caller.handoffs();
    let (_, ds) = caller.stop();
    report.drops.generator_send = ds.send_errors;
    report.drops.generator_handoff = handoff;
    Ok(report)
}
