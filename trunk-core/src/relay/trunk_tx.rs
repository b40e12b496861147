//! The timestamp-batched trunk emitter: one per worker and egress trunk
//! peer (DESIGN.md "Runtime").
//!
//! Entries gathered between two ticks leave together at the tick, in as
//! few meta trunk frames as fit the peer's `trunkmtu`, each stamped with
//! the tick's trunk timestamp. A frame that fills up before the tick
//! leaves at once, as Asterisk's does (PROTOCOL.md 13.2): memory stays at
//! one open frame per group, and a worker catching up after a stall sends
//! instead of dropping. Ticks fall on multiples of `trunkfreq` from the
//! relay's epoch, so every worker stamps the same tick alike and the far
//! end sees one trunk clock.
//!
//! # Groups
//!
//! The far gateway spreads trunk frames over its workers by the call
//! number of a frame's first entry (`gateway::steering`). If one frame
//! mixed calls, a call's entries would reach different far workers from
//! one tick to the next and could overtake each other there. So towards a
//! gateway, entries are grouped by call number modulo [`GATEWAY_GROUPS`],
//! one open frame per group: every call then stays on one far worker
//! whenever the far gateway's worker count divides it (1, 2 or 4).
//! Towards a PBX one group is used (Asterisk reads trunk frames on one
//! thread).

use std::net::SocketAddr;
use std::time::Duration;

use iax2_config::{PeerKind, TrunkSettings};

use super::counters::{Counters, Direction, DropReason, Kind, PeerCounters};
use crate::time::Instant;
use crate::transmit::{Transmit, MAX_DATAGRAM};
use crate::wire::{
    CallNumber, MetaTrunkFrame, Timestamp16, TrunkFrameBuilder, TrunkLayout, TrunkPushError,
};

/// Entry groups towards a gateway peer (see the module docs).
pub(crate) const GATEWAY_GROUPS: usize = 4;

const HEADER: usize = MetaTrunkFrame::<&[u8]>::HEADER_LEN;

/// One open meta trunk frame.
#[derive(Debug)]
struct OpenFrame {
    buf: Box<[u8]>,
    len: usize,
    entries: usize,
}

impl OpenFrame {
    fn new(mtu: usize) -> Self {
        Self {
            buf: vec![0; mtu].into_boxed_slice(),
            len: HEADER,
            entries: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct TrunkSender {
    /// The peer's index, for its counters.
    peer: usize,
    layout: TrunkLayout,
    mtu: usize,
    freq: Duration,
    epoch: Instant,
    groups: Vec<OpenFrame>,
    pending: bool,
    next_tick: Instant,
}

impl TrunkSender {
    pub(crate) fn new(
        peer: usize,
        settings: TrunkSettings,
        kind: PeerKind,
        epoch: Instant,
    ) -> Self {
        let layout = if settings.timestamps {
            TrunkLayout::Timestamps
        } else {
            TrunkLayout::NoTimestamps
        };
        let mtu = settings.mtu.get().min(MAX_DATAGRAM);
        let groups = match kind {
            PeerKind::Gateway => GATEWAY_GROUPS,
            PeerKind::Pbx => 1,
        };
        Self {
            peer,
            layout,
            mtu,
            freq: settings.freq.as_duration(),
            epoch,
            groups: (0..groups).map(|_| OpenFrame::new(mtu)).collect(),
            pending: false,
            next_tick: epoch,
        }
    }

    pub(crate) fn layout(&self) -> TrunkLayout {
        self.layout
    }

    /// The next tick, if entries wait for it.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.then_some(self.next_tick)
    }

    /// The first tick strictly after `now`.
    fn tick_after(&self, now: Instant) -> Instant {
        let freq = u64::try_from(self.freq.as_micros())
            .unwrap_or(20_000)
            .max(1);
        let elapsed = now.as_micros().saturating_sub(self.epoch.as_micros());
        Instant::from_micros(self.epoch.as_micros() + (elapsed / freq + 1) * freq)
    }

    /// The trunk timestamp of the tick the open frames belong to.
    fn tick_timestamp(&self) -> u32 {
        let ms = (self.next_tick - self.epoch).as_millis();
        u32::try_from(ms % (1 << 32)).unwrap_or(0)
    }

    /// Queues one entry for the next tick; sends its group's frame at once
    /// if the entry does not fit it any more.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<T: Transmit>(
        &mut self,
        now: Instant,
        call: CallNumber,
        ts: Timestamp16,
        payload: &[u8],
        to: SocketAddr,
        counters: &Counters,
        out: &mut T,
    ) -> Result<(), DropReason> {
        if !self.pending {
            self.pending = true;
            self.next_tick = self.tick_after(now);
        }
        let g = usize::from(call.get()) % self.groups.len();
        for _ in 0..2 {
            let frame = &mut self.groups[g];
            let mut b = TrunkFrameBuilder::resume(
                &mut frame.buf,
                self.mtu,
                self.layout,
                frame.len,
                frame.entries,
            )
            .map_err(|_| DropReason::TooBig)?;
            match b.push(call, ts, payload) {
                Ok(()) => {
                    frame.len = b.len();
                    frame.entries = b.entry_count();
                    return Ok(());
                }
                Err(TrunkPushError::Full { .. }) if frame.entries > 0 => {
                    let ts = self.tick_timestamp();
                    send(
                        &mut self.groups[g],
                        self.layout,
                        ts,
                        Some(to),
                        counters.peer(self.peer),
                        counters,
                        out,
                    );
                }
                Err(_) => return Err(DropReason::TooBig),
            }
        }
        Err(DropReason::TooBig)
    }

    /// Sends what is queued now, ahead of its tick: a full frame of a call
    /// (its HANGUP, a full voice frame) must not overtake the call's
    /// entries waiting here.
    pub(crate) fn flush_now<T: Transmit>(
        &mut self,
        to: Option<SocketAddr>,
        counters: &Counters,
        out: &mut T,
    ) {
        if !self.pending {
            return;
        }
        let ts = self.tick_timestamp();
        for frame in &mut self.groups {
            send(
                frame,
                self.layout,
                ts,
                to,
                counters.peer(self.peer),
                counters,
                out,
            );
        }
        self.pending = false;
    }

    /// Sends what is queued if the tick has come. Returns whether it did.
    pub(crate) fn flush_due<T: Transmit>(
        &mut self,
        now: Instant,
        to: Option<SocketAddr>,
        counters: &Counters,
        out: &mut T,
    ) -> bool {
        if !self.pending || now < self.next_tick {
            return false;
        }
        self.flush_now(to, counters, out);
        true
    }
}

/// Stamps and sends one open frame (if it holds entries) and empties it.
fn send<T: Transmit>(
    frame: &mut OpenFrame,
    layout: TrunkLayout,
    trunk_ts: u32,
    to: Option<SocketAddr>,
    peer: Option<&PeerCounters>,
    counters: &Counters,
    out: &mut T,
) {
    if frame.entries == 0 {
        return;
    }
    let bytes = &mut frame.buf[..frame.len];
    MetaTrunkFrame::new_unchecked(&mut *bytes).set_header(layout, trunk_ts);
    if let Some(to) = to {
        out.send(to, bytes);
        let entries = u64::try_from(frame.entries).unwrap_or(0);
        counters.tx_datagrams.incr();
        counters.tx_trunk_frames.incr();
        counters.tx_trunk_entries.add(entries);
        if let Some(p) = peer {
            p.packet(Direction::Tx, Kind::Trunk, bytes.len());
            p.trunk_entries(Direction::Tx, entries);
            #[allow(clippy::cast_precision_loss)]
            p.trunk_frame_entries.observe(entries as f64);
        }
    }
    frame.len = HEADER;
    frame.entries = 0;
}
