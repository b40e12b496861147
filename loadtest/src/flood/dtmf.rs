//! The DTMF flood: one real call, then a flood of DTMF inside it.
//!
//! The emulated PBX ([`crate::Endpoint`] on its own thread,
//! [`crate::driver`]) places the call from `--bind` (an address the
//! gateway knows as a PBX peer): NEW, the call token and MD5 round trips
//! if the far side asks, ACCEPT, ANSWER, voice both ways. Then it sends
//! one DTMF digit as usual (DTMF_BEGIN and DTMF, reliable full frames) and
//! the flood repeats that DTMF frame, byte for byte, at the asked rate:
//! one sequence number used over and over, as a PBX that retransmits
//! without end would send it, so the far end takes the first copy that
//! reaches it and acknowledges the others as duplicates, and the call's
//! sequence stays whole. (Fresh sequence numbers would have the far end
//! ask for every frame a gateway dropped, again and again.) After the
//! flood the call is hung up; the HANGUP must be acknowledged.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;
use trunk_core::transmit::Transmit;

use super::pace::{Pace, Pacer};
use super::{FloodOptions, FloodReport};
use crate::driver::{spawn_udp, DriverConfig, DriverHandle};
use crate::endpoint::{CallId, CallState, EndReason, Endpoint, EndpointConfig};

/// How long the call may take to be answered, and the hangup to be
/// acknowledged.
const WAIT: Duration = Duration::from_secs(10);

/// Flood datagrams per job on the PBX's thread, at most.
const PER_JOB: usize = 256;

/// What became of the flooding call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallOutcome {
    /// The call was answered before the flood.
    pub answered: bool,
    /// Its HANGUP was acknowledged and the call is gone.
    pub hung_up: bool,
    /// How it ended, as the PBX saw it.
    pub end: String,
    /// Full frames of the call retransmitted (the flood's copies are not
    /// retransmissions).
    pub retransmissions: u64,
    /// Voice frames it sent.
    pub voice_sent: u64,
    /// Voice frames it received.
    pub voice_received: u64,
    /// Voice frames lost.
    pub voice_lost: u64,
    /// ACKs and other full frames that came back on the call.
    pub full_frames_received: u64,
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "answered {}, hung up {} ({}), {} retransmissions, voice sent {} received {} lost {}, {} full frames back",
            self.answered,
            self.hung_up,
            self.end,
            self.retransmissions,
            self.voice_sent,
            self.voice_received,
            self.voice_lost,
            self.full_frames_received
        )
    }
}

/// A [`Transmit`] that keeps a copy of what passes through it.
struct Capture<'a> {
    inner: &'a mut dyn Transmit,
    frames: Vec<Vec<u8>>,
}

impl Transmit for Capture<'_> {
    fn buffer(&mut self) -> &mut [u8] {
        self.inner.buffer()
    }

    fn commit(&mut self, to: SocketAddr, len: usize) {
        if let Some(d) = self.inner.buffer().get(..len) {
            self.frames.push(d.to_vec());
        }
        self.inner.commit(to, len);
    }
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !ready() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn state(pbx: &DriverHandle, id: CallId) -> Option<CallState> {
    pbx.with(move |ep, _, _| ep.call_state(id)).flatten()
}

/// Runs the DTMF flood of `opts` (`opts.bind` is required).
pub fn dtmf_flood(opts: &FloodOptions) -> io::Result<FloodReport> {
    let bind = opts.bind.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the DTMF flood needs --bind: the address of a PBX peer of the gateway",
        )
    })?;
    let socket = UdpSocket::bind(bind)?;
    let local = socket.local_addr()?;
    let mut cfg = EndpointConfig::new(local, opts.seed);
    cfg.secret.clone_from(&opts.secret);
    cfg.ping_interval = None;
    cfg.lagrq_interval = None;
    let pbx = spawn_udp(Endpoint::new(cfg), socket, DriverConfig::default())?;
    let target = opts.target;
    let mut outcome = CallOutcome::default();
    let mut report = FloodReport {
        sources: 1,
        ..FloodReport::default()
    };
    let Some(&id) = pbx.originate(target, &opts.called, 1).first() else {
        return Err(io::Error::other("no call number free"));
    };
    outcome.answered = wait_until(WAIT, || state(&pbx, id) == Some(CallState::Up));
    if outcome.answered {
        // The digit, sent as the PBX sends it; its DTMF frame is the flood.
        let frames = pbx
            .with(move |ep, now, out| {
                let mut cap = Capture {
                    inner: out,
                    frames: Vec::new(),
                };
                ep.send_dtmf(now, id, '5', &mut cap);
                cap.frames
            })
            .unwrap_or_default();
        let Some(frame) = frames.last().cloned() else {
            return Err(io::Error::other("the PBX sent no DTMF frame"));
        };
        let (sent, seconds) = flood_frame(&pbx, target, frame, opts.rate, opts.duration);
        report.sent = sent;
        report.seconds = seconds;
        report.categories.insert("dtmf".to_owned(), sent);
    }
    let _ = pbx.with(move |ep, now, out| ep.hangup(now, id, 16, &mut crate::sim::DynTransmit(out)));
    outcome.hung_up = wait_until(WAIT, || state(&pbx, id).is_none());
    let stats = pbx
        .with(move |ep, _, _| ep.call_stats(id).cloned())
        .flatten();
    if let Some(s) = stats {
        outcome.end = match s.end {
            Some(EndReason::HungUpLocally(c)) => format!("hung up here, cause {c}"),
            Some(other) => format!("{other:?}"),
            None => "not ended".to_owned(),
        };
        outcome.retransmissions = s.retransmissions;
        outcome.voice_sent = s.voice_sent;
        outcome.voice_received = s.rx.received;
        outcome.voice_lost = s.rx.lost();
        outcome.full_frames_received = s.full_frames_received;
        // A HANGUP never acknowledged is given up after its last
        // retransmission: the call is gone then too, but not cleanly.
        outcome.hung_up &= !matches!(s.end, Some(EndReason::Failed(_)));
    }
    let driver = pbx.stop().map(|(_, d)| d).unwrap_or_default();
    report.send_errors = driver.send_errors;
    #[allow(clippy::cast_precision_loss)]
    {
        report.rate_achieved = report.sent as f64 / report.seconds.max(1e-9);
    }
    report.call = Some(outcome);
    Ok(report)
}

/// Sends `frame` to `target` from the PBX's thread at `rate` per second
/// for `duration`; returns the copies handed to its socket and the
/// seconds taken.
fn flood_frame(
    pbx: &DriverHandle,
    target: SocketAddr,
    frame: Vec<u8>,
    rate: u64,
    duration: Duration,
) -> (u64, f64) {
    let frame = std::sync::Arc::new(frame);
    let mut pacer = Pacer::new(rate, duration);
    loop {
        let n = match pacer.next(PER_JOB) {
            Pace::Done => break,
            Pace::Wait => {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            Pace::Send(n) => n,
        };
        let f = frame.clone();
        let done = pbx
            .with(move |_, _, out| {
                for _ in 0..n {
                    out.send(target, &f);
                }
                n
            })
            .unwrap_or(0);
        if done == 0 {
            break;
        }
        pacer.sent(done);
    }
    (pacer.written(), pacer.seconds())
}
