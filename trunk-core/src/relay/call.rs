//! One relayed call: its two legs and what the relay tracks of its
//! signalling.

use std::net::SocketAddr;

use super::peers::PeerId;
use crate::time::Instant;
use crate::wire::CallNumber;

/// What a table entry carries (PROTOCOL.md 8.2: the exchanges that create
/// state at the far end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A call set up by NEW.
    Call,
    /// A POKE relayed end to end (ends with the PONG).
    Poke,
    /// A REGREQ or REGREL relayed end to end (ends with REGACK/REGREJ).
    Registration,
    /// Anything else that opened an exchange (FWDOWNL).
    Other,
}

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// NEW sent on; the far side has not replied from a call number yet.
    Setup,
    /// Both call numbers known: media may flow.
    Up,
    /// Ended by HANGUP, REJECT or INVAL; kept until `until` so the final
    /// ACK and retransmissions still pass.
    Ending { until: Instant },
}

/// One side of a call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Leg {
    pub(crate) peer: PeerId,
    /// Where this leg's frames go.
    pub(crate) addr: SocketAddr,
    /// The peer's call number on this leg, once known.
    pub(crate) callno: Option<CallNumber>,
    /// When this leg was first heard from (the receive epoch used to
    /// rebuild the timestamps of trunk entries sent without one).
    pub(crate) rx_epoch: Instant,
    /// The peer has sent a full frame addressed to our call number on this
    /// leg, so it can map our media to the call. Until then its voice goes
    /// as mini frames, not trunk entries: Asterisk loses the rest of a
    /// trunk frame after an entry of a call it does not know (PROTOCOL.md
    /// 2.5), while an unknown mini frame costs only itself.
    pub(crate) knows_us: bool,
}

/// A TXREQ the relay turned into a PING on its way (see
/// `signalling::refuse_transfer`): the PONG answering it goes back to the
/// requester as the TXREJ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RefusedTransfer {
    /// The leg that sent the TXREQ.
    pub(crate) requester: usize,
    /// The TXREQ's timestamp, which the PONG echoes.
    pub(crate) timestamp: u32,
}

/// A call in the table.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// Leg 0 sent the NEW (ingress); leg 1 is where it was routed.
    pub(crate) legs: [Leg; 2],
    pub(crate) phase: Phase,
    pub(crate) purpose: Purpose,
    /// The NEW offered encryption.
    pub(crate) encryption_offered: bool,
    /// The far side agreed to encrypt: from AUTHREP on, everything after
    /// the call numbers is ciphertext, so the relay reads nothing more and
    /// follows the call by inactivity alone.
    pub(crate) encrypted: bool,
    pub(crate) created: Instant,
    pub(crate) refused_transfer: Option<RefusedTransfer>,
    /// Counted once in `calls_ended`.
    pub(crate) ended: bool,
    /// An ANSWER was relayed.
    pub(crate) answered: bool,
    /// A POKE, PING or LAGRQ relayed and not answered yet: its reply gives
    /// the round trip to that leg's peer.
    pub(crate) probe: Option<Probe>,
    /// Voice per direction, for the one-way audio diagnostic.
    pub(crate) one_way: super::one_way::OneWayWatch,
    /// The source address counted for this entry in the per-source table
    /// (`None` for a gateway peer's, which are not counted per source).
    pub(crate) admitted_from: Option<std::net::IpAddr>,
    /// Each leg's DTMF, text and control frames (`admission.control_rate`).
    pub(crate) control: [super::admission::Bucket; 2],
    /// The last NEW relayed on this call from a gateway peer (its
    /// timestamp and outbound sequence number, and when), to let the
    /// second copy of a NEW sent twice on the link go no further.
    pub(crate) link_new: Option<(u32, u8, Instant)>,
}

/// An exchange whose reply measures a round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The leg it was sent to.
    pub(crate) toward: usize,
    /// When.
    pub(crate) sent: Instant,
    /// Its timestamp, which the PONG or LAGRP echoes.
    pub(crate) timestamp: u32,
}

impl Call {
    /// Which leg a frame from `peer` with source call number `source`
    /// belongs to. A leg whose number is not known yet matches any source
    /// (the far side's first reply binds it).
    pub(crate) fn leg_of(&self, peer: PeerId, source: CallNumber) -> Option<usize> {
        self.legs.iter().position(|l| {
            l.peer == peer
                && match l.callno {
                    Some(c) => c == source || source == CallNumber::STATELESS,
                    None => true,
                }
        })
    }

    /// The leg of a media frame: its number must be known.
    #[inline]
    pub(crate) fn media_leg(&self, peer: PeerId, source: CallNumber) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| l.peer == peer && l.callno == Some(source))
    }

    pub(crate) fn end(&mut self, until: Instant) -> bool {
        let first = !self.ended;
        self.ended = true;
        if !matches!(self.phase, Phase::Ending { .. }) {
            self.phase = Phase::Ending { until };
        }
        first
    }
}
