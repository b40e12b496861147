//! The timestamp-batched trunk emitter: one per worker and egress trunk
//! peer (DESIGN.md "Runtime").
//!
//! Entries gathered between two ticks leave together at the tick, in as
//! few meta trunk frames as fit the peer's `trunkmtu`, each stamped with
//! the tick's trunk timestamp. Ticks fall on multiples of `trunkfreq` from
//! the relay's epoch, so every worker stamps the same tick alike and the
//! far end sees one trunk clock. Frame buffers are allocated as the load
//! grows and then reused: steady state allocates nothing.

use std::net::SocketAddr;
use std::time::Duration;

use iax2_config::TrunkSettings;

use super::counters::{Counters, DropReason};
use crate::time::Instant;
use crate::transmit::{Transmit, MAX_DATAGRAM};
use crate::wire::{
    CallNumber, MetaTrunkFrame, Timestamp16, TrunkFrameBuilder, TrunkLayout, TrunkPushError,
};

/// Most bytes held per tick and peer, as Asterisk's `trunkmaxsize`
/// (128000): past it entries are dropped, not queued without bound.
const MAX_PENDING_BYTES: usize = 128_000;

#[derive(Debug)]
pub(crate) struct TrunkSender {
    layout: TrunkLayout,
    mtu: usize,
    freq: Duration,
    epoch: Instant,
    frames: Vec<Box<[u8]>>,
    /// (length, entries) of each frame in use.
    fill: Vec<(usize, usize)>,
    active: usize,
    pending: bool,
    next_tick: Instant,
}

const HEADER: usize = MetaTrunkFrame::<&[u8]>::HEADER_LEN;

impl TrunkSender {
    pub(crate) fn new(settings: TrunkSettings, epoch: Instant) -> Self {
        let layout = if settings.timestamps {
            TrunkLayout::Timestamps
        } else {
            TrunkLayout::NoTimestamps
        };
        Self {
            layout,
            mtu: settings.mtu.get().min(MAX_DATAGRAM),
            freq: settings.freq.as_duration(),
            epoch,
            frames: Vec::new(),
            fill: Vec::new(),
            active: 0,
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

    fn ensure_frame(&mut self, i: usize) -> bool {
        if i < self.frames.len() {
            return true;
        }
        if (i + 1) * self.mtu > MAX_PENDING_BYTES.max(self.mtu) {
            return false;
        }
        self.frames.push(vec![0; self.mtu].into_boxed_slice());
        self.fill.push((HEADER, 0));
        true
    }

    /// Queues one entry for the next tick.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        call: CallNumber,
        ts: Timestamp16,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        if !self.pending {
            self.pending = true;
            self.next_tick = self.tick_after(now);
        }
        loop {
            if !self.ensure_frame(self.active) {
                return Err(DropReason::QueueFull);
            }
            let (len, entries) = self.fill[self.active];
            let buf = &mut self.frames[self.active];
            let mut b = TrunkFrameBuilder::resume(buf, self.mtu, self.layout, len, entries)
                .map_err(|_| DropReason::TooBig)?;
            match b.push(call, ts, payload) {
                Ok(()) => {
                    self.fill[self.active] = (b.len(), b.entry_count());
                    return Ok(());
                }
                Err(TrunkPushError::Full { .. }) if entries > 0 => self.active += 1,
                Err(_) => return Err(DropReason::TooBig),
            }
        }
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
        let tick_ms = (self.next_tick - self.epoch).as_millis();
        let trunk_ts = u32::try_from(tick_ms % (1 << 32)).unwrap_or(0);
        for i in 0..=self.active.min(self.frames.len().saturating_sub(1)) {
            let (len, entries) = self.fill[i];
            if entries == 0 {
                continue;
            }
            let frame = &mut self.frames[i][..len];
            let mut view = MetaTrunkFrame::new_unchecked(&mut *frame);
            view.set_header(self.layout, trunk_ts);
            if let Some(to) = to {
                out.send(to, frame);
                counters.tx_datagrams.incr();
                counters.tx_trunk_frames.incr();
                counters
                    .tx_trunk_entries
                    .add(u64::try_from(entries).unwrap_or(0));
            }
            self.fill[i] = (HEADER, 0);
        }
        self.active = 0;
        self.pending = false;
        true
    }
}
