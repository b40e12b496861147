//! `loadtest answer`: the terminating side alone, until interrupted.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{spawn_group, DriverConfig, DriverGroup};
use crate::endpoint::{Codec, Endpoint, EndpointConfig, RegistryEntry};

/// How the answerer runs.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Echo voice instead of generating it.
    pub echo: bool,
    /// Demand MD5 authentication with this secret.
    pub secret: Option<String>,
    /// Demand a call token.
    pub calltoken: bool,
    /// The codec.
    pub codec: Codec,
    /// Voice frame interval, ms.
    pub ptime_ms: u32,
    /// Stop after this long; `None`: at SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    /// Threads.
    pub threads: usize,
    /// Act as a registrar for these (username, MD5 secret) pairs: REGREQ,
    /// REGAUTH, REGACK with APPARENT ADDR, as Asterisk answers them.
    pub users: Vec<(String, String)>,
}

/// Parses `NAME:SECRET` (the secret may contain further colons).
pub fn parse_user(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, secret)) if !name.is_empty() && !secret.is_empty() => {
            Ok((name.to_owned(), secret.to_owned()))
        }
        _ => Err(format!("`{text}`: expected NAME:SECRET")),
    }
}

/// The registry of every shard: the most recent entry of each user, by
/// username.
pub fn registry(group: &DriverGroup) -> Vec<RegistryEntry> {
    let mut entries: Vec<RegistryEntry> = group
        .each(|ep, _, _| ep.registrations().to_vec())
        .into_iter()
        .flatten()
        .collect();
    entries.sort_by(|a, b| {
        a.username
            .cmp(&b.username)
            .then(b.registered_at.cmp(&a.registered_at))
    });
    entries.dedup_by(|a, b| a.username == b.username);
    entries
}

/// The registry on one line.
fn registry_line(group: &DriverGroup) -> String {
    registry(group)
        .iter()
        .map(|e| format!("{} at {} (refresh {} s)", e.username, e.addr, e.refresh))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts the answerer's threads on `opts.listen` (what `answer` runs, and
/// what tests use as a far PBX and registrar).
pub fn start_answerer(opts: &AnswerOptions) -> io::Result<DriverGroup> {
    // Nobody reads the per-call events: keep none.
    let dc = DriverConfig {
        max_events: 0,
        ..DriverConfig::default()
    };
    spawn_group(opts.listen, opts.threads, dc, |shard| {
        let mut cfg = EndpointConfig::new(opts.listen, 0xa115 ^ (u64::from(shard.index) << 32));
        cfg.secret.clone_from(&opts.secret);
        cfg.require_calltoken = opts.calltoken;
        cfg.codec = opts.codec;
        cfg.ptime_ms = opts.ptime_ms;
        cfg.echo = opts.echo;
        cfg.keep_ended_calls = false;
        if !opts.users.is_empty() {
            cfg.registrar = Some(crate::endpoint::RegistrarConfig::new(opts.users.clone()));
        }
        cfg.shard = Some(shard);
        Endpoint::new(cfg)
    })
}

/// Runs the answerer; prints a status line every 5 s and totals at the end.
pub fn answer(opts: &AnswerOptions) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let group = start_answerer(opts)?;
    eprintln!(
        "answering on {} ({} threads{}{}{}{})",
        group.local_addr(),
        opts.threads,
        if opts.echo { ", echo" } else { "" },
        if opts.secret.is_some() { ", MD5" } else { "" },
        if opts.calltoken { ", call token" } else { "" },
        if opts.users.is_empty() {
            String::new()
        } else {
            format!(", registrar for {} users", opts.users.len())
        },
    );
    let start = Instant::now();
    let mut next = start + Duration::from_secs(5);
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| start.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next {
            next += Duration::from_secs(5);
            let s = group.stats();
            eprintln!(
                "{:>6.0}s  calls active {:>6}  answered {:>8}  ended {:>8}  voice in {:>10} out {:>10}  lost {}",
                start.elapsed().as_secs_f64(),
                s.active_calls,
                s.calls_answered,
                s.calls_ended,
                s.voice_received,
                s.voice_sent,
                s.voice_lost
            );
            if !opts.users.is_empty() {
                eprintln!("        registered: {}", registry_line(&group));
            }
        }
    }
    if !opts.users.is_empty() {
        println!("registered: {}", registry_line(&group));
    }
    let s = group.stats();
    group.hangup_all(16);
    let _ = group.stop();
    println!(
        "answered {} calls ({} rejected, {} failed); voice received {}, sent {}, lost {}, corrupt {}",
        s.calls_answered,
        s.calls_rejected_locally,
        s.calls_failed,
        s.voice_received,
        s.voice_sent,
        s.voice_lost,
        s.voice_corrupt
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_arguments() {
        assert_eq!(parse_user("alice:pw"), Ok(("alice".into(), "pw".into())));
        assert_eq!(parse_user("bob:a:b"), Ok(("bob".into(), "a:b".into())));
        for bad in ["alice", ":pw", "alice:", ""] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }
}
