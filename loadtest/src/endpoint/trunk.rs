//! Sending voice in meta trunk frames, as an Asterisk peer with
//! `trunk=yes` does (PROTOCOL.md 13.2): every mini frame a call would send
//! becomes an entry in the peer's buffer, flushed every trunk interval or
//! when the next entry would pass the MTU.

use std::net::SocketAddr;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::transmit::{Transmit, MAX_DATAGRAM};
use trunk_core::wire::{
    CallNumber, MetaTrunkFrame, Timestamp16, TrunkFrameBuilder, TrunkLayout, TrunkPushError,
};

/// How an endpoint trunks its voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Entry layout (Asterisk's `trunktimestamps`).
    pub layout: TrunkLayout,
    /// Flush interval (Asterisk's `trunkfreq`, 20 ms).
    pub interval: Duration,
    /// Largest trunk frame (Asterisk's `trunkmtu`, 1240).
    pub mtu: usize,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        Self {
            layout: TrunkLayout::Timestamps,
            interval: Duration::from_millis(20),
            mtu: 1240,
        }
    }
}

/// Asterisk restarts a trunk clock after this much silence.
const IDLE_RESTART: Duration = Duration::from_secs(5);

/// The open trunk frame towards one peer.
#[derive(Debug)]
pub(crate) struct TrunkOut {
    pub(crate) peer: SocketAddr,
    buf: Box<[u8; MAX_DATAGRAM]>,
    len: usize,
    entries: usize,
    clock_start: Option<Instant>,
    last_sent: Option<Instant>,
    last_ts: Option<u32>,
}

impl TrunkOut {
    pub(crate) fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            buf: Box::new([0; MAX_DATAGRAM]),
            len: 0,
            entries: 0,
            clock_start: None,
            last_sent: None,
            last_ts: None,
        }
    }

    /// Appends an entry; sends the open frame first when it is full.
    /// Returns the number of frames sent.
    pub(crate) fn push(
        &mut self,
        cfg: &TrunkConfig,
        now: Instant,
        out: &mut dyn Transmit,
        call: CallNumber,
        ts: u32,
        payload: &[u8],
    ) -> usize {
        let mut sent = 0;
        for _ in 0..2 {
            let builder = if self.entries == 0 {
                TrunkFrameBuilder::new(&mut self.buf[..], cfg.mtu, cfg.layout, 0)
            } else {
                TrunkFrameBuilder::resume(
                    &mut self.buf[..],
                    cfg.mtu,
                    cfg.layout,
                    self.len,
                    self.entries,
                )
            };
            let Ok(mut b) = builder else {
                return sent;
            };
            match b.push(call, Timestamp16::from_full(ts), payload) {
                Ok(()) => {
                    self.len = b.len();
                    self.entries = b.entry_count();
                    return sent;
                }
                Err(TrunkPushError::Full { .. }) => {
                    sent += self.flush(now, out);
                }
                Err(TrunkPushError::TooLarge { .. } | TrunkPushError::ZeroCallNumber) => {
                    return sent;
                }
            }
        }
        sent
    }

    /// Sends the open frame, stamped with the trunk clock. Returns 1 when a
    /// frame went out.
    pub(crate) fn flush(&mut self, now: Instant, out: &mut dyn Transmit) -> usize {
        if self.entries == 0 {
            return 0;
        }
        let idle = self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) > IDLE_RESTART);
        if idle {
            self.clock_start = Some(now);
            self.last_ts = None;
        }
        let start = self.clock_start.unwrap_or(now);
        // Truncation intended: the trunk clock wraps at 2^32 ms.
        let mut ts = (now - start).as_millis() as u32;
        // Trunk timestamps never repeat (PROTOCOL.md 13.2).
        if let Some(last) = self.last_ts {
            if ts.wrapping_sub(last) as i32 <= 0 {
                ts = last.wrapping_add(1);
            }
        }
        self.last_ts = Some(ts);
        MetaTrunkFrame::new_unchecked(&mut self.buf[..self.len]).set_trunk_timestamp(ts);
        out.send(self.peer, &self.buf[..self.len]);
        self.last_sent = Some(now);
        self.len = 0;
        self.entries = 0;
        1
    }
}
