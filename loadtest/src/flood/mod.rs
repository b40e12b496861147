//! `loadtest flood`: datagram floods against a gateway, to check that
//! what it drops is counted and what it carries is not hurt.
//!
//! Four kinds, one file each:
//!
//! - [`new_flood`]: NEW full frames, each from a source call number not
//!   used before on its socket, from many source ports (or from one
//!   address, to play a peer);
//! - [`malformed`]: a seeded mix of datagrams that break the IAX2 rules
//!   in known ways (runts, truncated full frames, bad IE lengths, unknown
//!   meta commands, truncated or overlong trunk frames, ...), each
//!   category counted;
//! - [`stranger_trunk`]: well-formed meta trunk frames from addresses
//!   that are no peer;
//! - [`dtmf`]: one real call through the gateway, then a flood of DTMF
//!   frames inside it, then its hangup.
//!
//! The first three share [`blast`]: sockets bound once, datagrams written
//! straight into `sendmmsg` batches ([`iax2_gateway::batch::SendBatch`],
//! segmentation off: one datagram per message, as a flooding host sends
//! them) and paced to the asked rate by the clock. Replies that come back
//! are read and counted, never answered. Every flood stops by itself after
//! its duration. The report says how many datagrams the kernel took for
//! sending and the rate achieved, which on a busy machine can be below
//! the rate asked for.

pub mod dtmf;
pub mod malformed;
pub mod new_flood;
mod pace;
pub mod stranger_trunk;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iax2_gateway::batch::{Flush, IoCounters, RecvBatch, SendBatch};
use serde::Serialize;
use trunk_core::relay::{Counters, DropReason};

/// Datagrams per `sendmmsg` at most.
pub const BATCH: usize = 64;

/// Which flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// NEW full frames with fresh source call numbers.
    New,
    /// Datagrams that break the IAX2 rules.
    Malformed,
    /// Meta trunk frames from addresses that are no peer.
    StrangerTrunk,
    /// DTMF frames inside one call.
    Dtmf,
}

/// What to flood, where, how fast and for how long.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// The kind.
    pub kind: Kind,
    /// The gateway's address.
    pub target: SocketAddr,
    /// Datagrams per second asked for.
    pub rate: u64,
    /// How long the flood lasts.
    pub duration: Duration,
    /// Sockets on ephemeral ports of `bind_ip` to send from (new,
    /// malformed, stranger-trunk), taken in turn batch by batch.
    pub sources: usize,
    /// The address the ephemeral sockets bind to.
    pub bind_ip: IpAddr,
    /// Send from this one address instead (a peer's, to flood as that
    /// peer); the DTMF flood's call is placed from it.
    pub bind: Option<SocketAddr>,
    /// Seed of the malformed mix and the trunk frames' contents.
    pub seed: u64,
    /// The number called (NEW flood and the DTMF flood's call).
    pub called: String,
    /// MD5 secret for the DTMF flood's call, if the far side asks.
    pub secret: Option<String>,
}

impl FloodOptions {
    /// A flood of `kind` at `target`: `rate` datagrams/s for `duration`,
    /// 128 sources on 127.0.0.1, seed 1, number 2001.
    pub fn new(kind: Kind, target: SocketAddr, rate: u64, duration: Duration) -> Self {
        Self {
            kind,
            target,
            rate,
            duration,
            sources: 128,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bind: None,
            seed: 1,
            called: "2001".to_owned(),
            secret: None,
        }
    }
}

/// What a flood did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodReport {
    /// The kind, as on the command line.
    pub kind: String,
    /// Where it went.
    pub target: String,
    /// Source sockets used.
    pub sources: usize,
    /// Datagrams per second asked for.
    pub rate_asked: u64,
    /// Datagrams of the flood the kernel took for sending.
    pub sent: u64,
    /// Datagrams of the flood that could not be sent (refused by the
    /// kernel, or the socket stayed full).
    pub send_errors: u64,
    /// `sendmmsg` calls.
    pub syscalls: u64,
    /// Datagrams that came back to the source sockets during the flood.
    pub replies: u64,
    /// How long the flood ran, seconds.
    pub seconds: f64,
    /// `sent / seconds`.
    pub rate_achieved: f64,
    /// Datagrams written, by category (malformed: each rule broken; the
    /// others: one category). `sent` + `send_errors` is their sum.
    pub categories: BTreeMap<String, u64>,
    /// The DTMF flood's call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<dtmf::CallOutcome>,
}

impl FloodReport {
    /// A human summary, several lines.
    pub fn table(&self) -> String {
        let mut s = format!(
            "flood {} -> {}: {} datagrams sent in {:.2} s from {} sockets: {:.0}/s (asked {}/s); {} send errors, {} syscalls, {} replies\n",
            self.kind,
            self.target,
            self.sent,
            self.seconds,
            self.sources,
            self.rate_achieved,
            self.rate_asked,
            self.send_errors,
            self.syscalls,
            self.replies
        );
        if self.categories.len() > 1 {
            for (name, n) in &self.categories {
                s.push_str(&format!("  {name:<24} {n:>10}\n"));
            }
        }
        if let Some(c) = &self.call {
            s.push_str(&format!("  call: {c}\n"));
        }
        s
    }
}

/// Runs the flood `opts` asks for and reports on it.
pub fn flood(opts: &FloodOptions) -> io::Result<FloodReport> {
    let mut report = match opts.kind {
        Kind::New => {
            let sockets = sockets(opts)?;
            let mut g = new_flood::NewFlood::new(&opts.called);
            blast(sockets, opts.target, opts.rate, opts.duration, &mut g)
        }
        Kind::Malformed => {
            let sockets = sockets(opts)?;
            let mut g = malformed::Malformed::new(opts.seed);
            blast(sockets, opts.target, opts.rate, opts.duration, &mut g)
        }
        Kind::StrangerTrunk => {
            let sockets = sockets(opts)?;
            let mut g = stranger_trunk::StrangerTrunk::new(opts.seed);
            blast(sockets, opts.target, opts.rate, opts.duration, &mut g)
        }
        Kind::Dtmf => dtmf::dtmf_flood(opts)?,
    };
    report.kind = match opts.kind {
        Kind::New => "new",
        Kind::Malformed => "malformed",
        Kind::StrangerTrunk => "stranger-trunk",
        Kind::Dtmf => "dtmf",
    }
    .to_owned();
    report.target = opts.target.to_string();
    report.rate_asked = opts.rate;
    Ok(report)
}

/// Writes the datagrams of a flood.
pub trait Datagrams {
    /// The category names, indexed by what [`write`](Self::write) returns.
    fn categories(&self) -> &'static [&'static str];
    /// Writes the next datagram into `buf` (at least 1500 bytes); returns
    /// its length and category.
    fn write(&mut self, buf: &mut [u8]) -> (usize, usize);
}

/// The sockets of a flood: `opts.bind` alone, or `opts.sources` on
/// ephemeral ports of `opts.bind_ip`.
fn sockets(opts: &FloodOptions) -> io::Result<Vec<mio::net::UdpSocket>> {
    let addrs: Vec<SocketAddr> = match opts.bind {
        Some(a) => vec![a],
        None => vec![SocketAddr::new(opts.bind_ip, 0); opts.sources.max(1)],
    };
    addrs
        .into_iter()
        .map(|a| {
            let s = std::net::UdpSocket::bind(a)?;
            s.set_nonblocking(true)?;
            Ok(mio::net::UdpSocket::from_std(s))
        })
        .collect()
}

/// Sends `gen`'s datagrams to `target` from `sockets` in turn, `BATCH`
/// per `sendmmsg`, paced to `rate` per second, for `duration`; reads and
/// counts what comes back.
pub fn blast(
    sockets: Vec<mio::net::UdpSocket>,
    target: SocketAddr,
    rate: u64,
    duration: Duration,
    gen: &mut dyn Datagrams,
) -> FloodReport {
    let drops = Arc::new(Counters::default());
    let io = Arc::new(IoCounters::default());
    let mut senders: Vec<(mio::net::UdpSocket, SendBatch)> = sockets
        .into_iter()
        .map(|s| {
            let local = s
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            let mut b = SendBatch::new(BATCH, local, drops.clone(), io.clone());
            b.set_segmentation(false);
            b.set_steering_classes(false);
            (s, b)
        })
        .collect();
    let mut recv = RecvBatch::new(BATCH);
    let names = gen.categories();
    let mut counts = vec![0u64; names.len()];
    let mut replies = 0u64;
    let mut next = 0usize;
    let mut pacer = pace::Pacer::new(rate, duration);
    loop {
        let n = match pacer.next(BATCH) {
            pace::Pace::Done => break,
            pace::Pace::Wait => {
                replies += drain(&mut senders, &mut recv);
                std::thread::sleep(pacer.idle());
                continue;
            }
            pace::Pace::Send(n) => n,
        };
        let count = senders.len().max(1);
        let Some((socket, batch)) = senders.get_mut(next) else {
            break;
        };
        next = (next + 1) % count;
        {
            let mut out = batch.sender(socket);
            for _ in 0..n {
                let buf = trunk_core::transmit::Transmit::buffer(&mut out);
                let (len, category) = gen.write(buf);
                if let Some(c) = counts.get_mut(category) {
                    *c += 1;
                }
                trunk_core::transmit::Transmit::commit(&mut out, target, len);
            }
        }
        let mut r = batch.flush(socket);
        let until = Instant::now() + Duration::from_millis(5);
        while r == Flush::Blocked && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(50));
            r = batch.on_writable(socket);
        }
        pacer.sent(n);
    }
    let seconds = pacer.seconds();
    // What the last turns left queued on a full socket is not sent.
    let mut abandoned = 0u64;
    for (socket, batch) in &mut senders {
        if batch.flush(socket) == Flush::Blocked {
            abandoned += batch.pending() as u64;
        }
    }
    replies += drain(&mut senders, &mut recv);
    let snap = io.snapshot();
    #[allow(clippy::cast_precision_loss)]
    let rate_achieved = snap.sent_datagrams as f64 / seconds.max(1e-9);
    FloodReport {
        sources: senders.len(),
        sent: snap.sent_datagrams,
        send_errors: snap.send_errors + drops.snapshot().drops(DropReason::QueueFull) + abandoned,
        syscalls: snap.send_syscalls,
        replies,
        seconds,
        rate_achieved,
        categories: names
            .iter()
            .zip(counts)
            .map(|(n, c)| ((*n).to_owned(), c))
            .collect(),
        ..FloodReport::default()
    }
}

/// Reads whatever waits on the sockets; how many datagrams.
fn drain(senders: &mut [(mio::net::UdpSocket, SendBatch)], recv: &mut RecvBatch) -> u64 {
    let mut n = 0u64;
    for (socket, _) in senders.iter() {
        // Bounded: a socket that keeps filling does not hold the sender.
        for _ in 0..8 {
            match recv.recv(socket) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
    }
    n
}

/// A source call number in 2..=32766, the `i`th in turn: never 0 (no
/// call), 1 (Asterisk's stateless replies) or 32767 (the gateways' link
/// number).
pub(crate) fn call_number(i: u64) -> u16 {
    u16::try_from(2 + i % 32765).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Counting(u64);

    impl Datagrams for Counting {
        fn categories(&self) -> &'static [&'static str] {
            &["one"]
        }
        fn write(&mut self, buf: &mut [u8]) -> (usize, usize) {
            buf[..8].copy_from_slice(&self.0.to_be_bytes());
            self.0 += 1;
            (8, 0)
        }
    }

    #[test]
    fn call_numbers_skip_the_reserved_ones() {
        let all: std::collections::BTreeSet<u16> = (0..32765).map(call_number).collect();
        assert_eq!(all.len(), 32765);
        assert!(!all.contains(&0) && !all.contains(&1) && !all.contains(&32767));
        assert_eq!(call_number(32765), 2);
    }

    #[test]
    fn a_blast_sends_what_it_counts_and_every_datagram_arrives() {
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let target = sink.local_addr().unwrap();
        // Read while the flood runs: the socket's buffer may be small.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while let Ok(n) = sink.recv(&mut buf) {
                assert_eq!(n, 8);
                got.push(u64::from_be_bytes(buf[..8].try_into().unwrap()));
            }
            got
        });
        let mut opts = FloodOptions::new(Kind::New, target, 2000, Duration::from_millis(300));
        opts.sources = 4;
        let mut g = Counting(0);
        let r = blast(sockets(&opts).unwrap(), target, 2000, opts.duration, &mut g);
        assert_eq!(r.sources, 4);
        assert_eq!(r.send_errors, 0);
        assert_eq!(r.categories["one"], r.sent);
        assert_eq!(r.sent, g.0);
        // Paced: never ahead of the rate asked for.
        assert!(r.sent > 0 && r.sent <= 600, "{r:?}");
        // Each datagram once.
        let mut got = reader.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..r.sent).collect::<Vec<_>>());
    }
}
