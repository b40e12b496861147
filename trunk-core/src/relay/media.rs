//! Media: mini frames, video mini frames and trunk entries. The media path
//! takes only the call slot's read lock and allocates nothing.

use std::net::SocketAddr;

use iax2_config::PeerKind;

use super::call::Phase;
use super::counters::{Direction, DropReason, Kind};
use super::media_stats::Arrival;
use super::peers::PeerId;
use super::RelayWorker;
use crate::time::Instant;
use crate::transmit::Transmit;
use crate::wire::{
    CallNumber, MetaTrunkFrame, MiniFrame, Timestamp16, TrunkLayout, VideoMiniFrame,
};

/// Where one media frame goes.
#[derive(Clone, Copy, Debug)]
struct MediaRoute {
    ours: u16,
    /// The index of the leg the media came from.
    leg: usize,
    /// The leg the media came from (its receive epoch rebuilds trunk
    /// timestamps).
    rx_epoch: Instant,
    egress: PeerId,
    to: SocketAddr,
    encrypted: bool,
    /// The egress peer has addressed a full frame to our call number.
    egress_knows_us: bool,
}

/// What the voice frames of one datagram said, counted once per datagram.
#[derive(Clone, Copy, Debug, Default)]
struct VoiceSeen {
    frames: u64,
    /// Frames missing before them.
    gaps: u64,
    /// Frames older than one already relayed for their call.
    late: u64,
}

impl RelayWorker {
    /// Finds the call of media from `peer` with the peer's call number
    /// `theirs`.
    #[inline]
    fn media_route(
        &self,
        now: Instant,
        peer: PeerId,
        theirs: CallNumber,
    ) -> Result<MediaRoute, DropReason> {
        let relay = &*self.relay;
        let gen = &*self.gen;
        let ours = gen
            .peers
            .get(peer)
            .lookup(theirs)
            .ok_or(DropReason::UnknownCall)?;
        let slot = relay.table.slot(ours).ok_or(DropReason::UnknownCall)?;
        let route = {
            let guard = slot.call.read();
            let call = guard.as_ref().ok_or(DropReason::UnknownCall)?;
            let i = call
                .media_leg(peer, theirs)
                .ok_or(DropReason::UnknownCall)?;
            if call.phase == Phase::Setup {
                // The far side does not know the call yet: Asterisk would
                // drop the media, so it is not sent (PROTOCOL.md 8.2, 17).
                return Err(DropReason::CallNotStarted);
            }
            let egress = &call.legs[1 - i];
            MediaRoute {
                ours,
                leg: i,
                rx_epoch: call.legs[i].rx_epoch,
                egress: egress.peer,
                to: egress.addr,
                encrypted: call.encrypted,
                egress_knows_us: egress.knows_us,
            }
        };
        slot.touch(now);
        Ok(route)
    }

    /// Notes a voice frame of the call in its leg's statistics and adds
    /// what it says to `seen`.
    #[inline]
    fn note_voice(&self, now: Instant, route: &MediaRoute, ts: Timestamp16, seen: &mut VoiceSeen) {
        let arrival = self
            .relay
            .table
            .slot(route.ours)
            .and_then(|s| s.media.get(route.leg))
            .map(|m| m.record(now, ts));
        seen.frames += 1;
        if let Some(a) = arrival {
            seen.gaps += a.missing();
            seen.late += u64::from(a == Arrival::Late);
        }
    }

    /// Counts voice frames received from `peer`.
    #[inline]
    fn count_voice(&self, peer: PeerId, seen: VoiceSeen) {
        if let Some(c) = self.counters.peer(peer.index()) {
            c.voice_frames.add(seen.frames);
            if seen.gaps > 0 {
                c.voice_gaps.add(seen.gaps);
            }
            if seen.late > 0 {
                c.voice_reordered.add(seen.late);
            }
        }
    }

    /// Whether media of a call goes to `egress` as trunk entries: only once
    /// the egress peer knows the call (see `Leg::knows_us`). Encrypted
    /// minis keep their ciphertext timestamp only in the timestamped
    /// layout, and only our own gateway would turn them back into minis
    /// (Asterisk does not decrypt trunk entries, PROTOCOL.md 13.2).
    #[inline]
    fn trunks_to(&self, route: &MediaRoute) -> bool {
        if !route.egress_knows_us {
            return false;
        }
        match self
            .trunks
            .get(route.egress.index())
            .and_then(Option::as_ref)
        {
            None => false,
            Some(sender) => {
                !route.encrypted
                    || (sender.layout() == TrunkLayout::Timestamps
                        && self.gen.peers.get(route.egress).kind() == PeerKind::Gateway)
            }
        }
    }

    /// Sends one voice frame on: as a trunk entry or as a mini frame.
    #[inline]
    fn emit_voice<T: Transmit>(
        &mut self,
        now: Instant,
        route: &MediaRoute,
        ts: Timestamp16,
        payload: &[u8],
        out: &mut T,
    ) {
        let ours = CallNumber::new(route.ours).unwrap_or(CallNumber::UNKNOWN);
        if self.trunks_to(route) {
            if let Some(Some(sender)) = self.trunks.get_mut(route.egress.index()) {
                if let Err(reason) =
                    sender.push(now, ours, ts, payload, route.to, &self.counters, out)
                {
                    self.counters.count_drop(reason);
                }
            }
            return;
        }
        let buf = out.buffer();
        let len = 4 + payload.len();
        let Some(dst) = buf.get_mut(..len) else {
            return self.counters.count_drop(DropReason::TooBig);
        };
        dst[0..2].copy_from_slice(&ours.get().to_be_bytes());
        dst[2..4].copy_from_slice(&ts.0.to_be_bytes());
        dst[4..].copy_from_slice(payload);
        out.commit(route.to, len);
        self.count_tx(route.egress, Kind::Mini, len);
        self.counters.tx_mini.incr();
    }

    pub(super) fn handle_mini<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.counters.rx_mini.incr();
        let Ok(mini) = MiniFrame::new_checked(&*datagram) else {
            return self.counters.count_drop(DropReason::Malformed);
        };
        match self.media_route(now, peer, mini.source_call_number()) {
            Ok(route) => {
                let mut seen = VoiceSeen::default();
                self.note_voice(now, &route, mini.timestamp(), &mut seen);
                self.count_voice(peer, seen);
                self.emit_voice(now, &route, mini.timestamp(), mini.payload(), out);
            }
            Err(reason) => self.counters.count_drop(reason),
        }
    }

    pub(super) fn handle_video<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.counters.rx_video.incr();
        let Ok(video) = VideoMiniFrame::new_checked(&*datagram) else {
            return self.counters.count_drop(DropReason::Malformed);
        };
        let route = match self.media_route(now, peer, video.source_call_number()) {
            Ok(r) => r,
            Err(reason) => return self.counters.count_drop(reason),
        };
        // Video is never trunked: it goes on alone, renumbered in place.
        let ours = CallNumber::new(route.ours).unwrap_or(CallNumber::UNKNOWN);
        VideoMiniFrame::new_unchecked(&mut *datagram).set_source_call_number(ours);
        out.send(route.to, datagram);
        self.count_tx(route.egress, Kind::Video, datagram.len());
        self.counters.tx_video.incr();
    }

    pub(super) fn handle_trunk<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.counters.rx_trunk_frames.incr();
        if self.gen.peers.get(peer).trunk().is_none() {
            // Only `trunk: true` peers may send trunk frames.
            return self.counters.count_drop(DropReason::TrunkNotAllowed);
        }
        self.trunk_entries(now, peer, datagram, true, out);
    }

    /// Relays the entries of a trunk frame that belong to this worker's
    /// calls (see `RelayWorker::take_handoff`). `received`: the frame came
    /// from the socket, not from another worker, so it is counted here and
    /// other owners are noted for the handoff.
    pub(super) fn trunk_entries<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        datagram: &[u8],
        received: bool,
        out: &mut T,
    ) {
        let Ok(frame) = MetaTrunkFrame::new_checked(datagram) else {
            if received {
                self.counters.count_drop(DropReason::Malformed);
            }
            return;
        };
        let layout = frame.layout();
        let trunk_ts = frame.trunk_timestamp();
        let anchor = match layout {
            TrunkLayout::NoTimestamps => Some(self.gen.peers.get(peer).trunk_anchor(now, trunk_ts)),
            TrunkLayout::Timestamps => None,
        };
        let mut offset = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        let workers = self.relay.workers;
        let (mut own, mut seen) = (0, VoiceSeen::default());
        loop {
            let entry = match frame.entry_at(offset) {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(_)) => {
                    // The rest of the frame cannot be delimited.
                    if received {
                        self.counters.count_drop(DropReason::Malformed);
                    }
                    break;
                }
            };
            offset = entry.location.end();
            if workers > 1 {
                let owner = self.relay.owner(entry.call_number);
                if owner != self.index {
                    if received {
                        self.handoff.insert(owner);
                    }
                    continue;
                }
            }
            own += 1;
            let route = match self.media_route(now, peer, entry.call_number) {
                Ok(r) => r,
                Err(reason) => {
                    self.counters.count_drop(reason);
                    continue;
                }
            };
            let ts = match (entry.timestamp, anchor) {
                (Some(ts), _) => ts,
                (None, Some(anchor)) => rebuild_timestamp(trunk_ts, anchor, route.rx_epoch),
                (None, None) => Timestamp16(0),
            };
            self.note_voice(now, &route, ts, &mut seen);
            self.emit_voice(now, &route, ts, entry.payload, out);
        }
        // Counted once per frame rather than per entry.
        self.counters.rx_trunk_entries.add(own);
        if let Some(c) = self.counters.peer(peer.index()) {
            c.trunk_entries(Direction::Rx, own);
        }
        self.count_voice(peer, seen);
    }
}

/// An entry's call timestamp when the sender's trunk frames carry none,
/// the way Asterisk rebuilds it: the trunk timestamp moved from the trunk
/// clock to the call's receive clock (PROTOCOL.md 13.3).
fn rebuild_timestamp(trunk_ts: u32, trunk_anchor: Instant, call_epoch: Instant) -> Timestamp16 {
    let offset_ms = i64::try_from(trunk_anchor.as_millis()).unwrap_or(0)
        - i64::try_from(call_epoch.as_millis()).unwrap_or(0);
    let ts = i64::from(trunk_ts) + offset_ms;
    Timestamp16::from_full(u32::try_from(ts.rem_euclid(1 << 32)).unwrap_or(0))
}
