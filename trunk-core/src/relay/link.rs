//! This gateway's own probes of its gateway peers (POKE/PONG): the link's
//! liveness and round trip, and keepalive traffic that holds NAT mappings
//! open while no call is up. The interval is the peer's `keepalive`.
//!
//! Probes come from the reserved call number [`LINK_PROBE`], which no call
//! ever uses, so the far gateway can tell them from a PBX's POKE that it
//! must relay: it answers them itself with a stateless PONG, which comes
//! back addressed to [`LINK_PROBE`]. Worker 0 sends the probes; any worker
//! may receive the answer (the link state is shared).

use std::net::SocketAddr;

use iax2_config::PeerKind;

use super::callno::LINK_PROBE;
use super::counters::Kind;
use super::peers::PeerId;
use super::replies::{self, Header};
use super::LinkState;
use super::RelayWorker;
use crate::time::Instant;
use crate::transmit::Transmit;
use crate::wire::{CallNumber, FullFrame, IaxSubclass};

impl RelayWorker {
    /// Worker 0, on its housekeeping turn: counts unanswered probes and
    /// sends the probes that are due.
    pub(super) fn probe_links<T: Transmit>(&mut self, now: Instant, out: &mut T) {
        let gen = std::sync::Arc::clone(&self.gen);
        for (id, peer) in gen.peers.iter() {
            // Every `keepalive` (iax2_config::DEFAULT_KEEPALIVE unless set).
            let Some(interval) = peer.config.keepalive_interval() else {
                continue;
            };
            if peer.retired {
                continue;
            }
            let Some(to) = peer.addr() else {
                continue;
            };
            // Registration first: the far gateway then knows this one's
            // address before the probe reaches it.
            self.register_link(now, id, to, false, out);
            let mut link = peer.link.lock();
            // State changes show in status and metrics (`link_views`).
            let change = link.liveness.handle_timeout(now);
            let due = link.next.is_none_or(|next| now >= next);
            let mut lost = change == Some(LinkState::Unreachable);
            let mut stamp = 0;
            if due {
                // The probe's timestamp is its id: the PONG echoes it.
                stamp = u32::try_from(now.as_millis() % (1 << 32)).unwrap_or(0);
                lost |= link.liveness.probe_sent(now, stamp) == Some(LinkState::Unreachable);
                link.next = Some(now + interval);
            }
            drop(link);
            if due {
                self.send_probe(out, id, to, stamp);
            }
            if lost {
                // A link that just went unreachable registers again at once.
                self.register_link(now, id, to, true, out);
            }
        }
        // A gateway that registers but does not probe still registers.
        for (id, peer) in gen.peers.iter() {
            if peer.retired || peer.config.keepalive_interval().is_some() {
                continue;
            }
            if let Some(to) = peer.addr() {
                self.register_link(now, id, to, false, out);
            }
        }
    }

    fn send_probe<T: Transmit>(&mut self, out: &mut T, peer: PeerId, to: SocketAddr, stamp: u32) {
        let header = Header {
            source: CallNumber::from_field(LINK_PROBE),
            dest: CallNumber::UNKNOWN,
            timestamp: stamp,
            oseqno: 0,
            iseqno: 0,
            subclass: IaxSubclass::Poke,
        };
        replies::send(out, to, header, None);
        self.counters.replies_sent.incr();
        self.count_tx(peer, Kind::Full, 12);
        self.counters.tx_full.incr();
    }

    /// A full frame of a link probe exchange from gateway peer `peer`: a
    /// POKE from the far gateway's probe number (answered here) or the
    /// PONG to ours. `false`: not one, relay it as usual.
    pub(super) fn handle_link_probe<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        from: SocketAddr,
        frame: &FullFrame<&[u8]>,
        iax: Option<IaxSubclass>,
        out: &mut T,
    ) -> bool {
        let state = self.gen.peers.get(peer);
        if state.kind() != PeerKind::Gateway {
            return false;
        }
        let probe = CallNumber::from_field(LINK_PROBE);
        match iax {
            Some(IaxSubclass::Poke)
                if frame.source_call_number() == probe
                    && frame.dest_call_number() == CallNumber::UNKNOWN =>
            {
                let reply = replies::stateless(
                    probe,
                    frame.timestamp(),
                    frame.iseqno().0,
                    IaxSubclass::Pong,
                );
                replies::send(out, from, reply, None);
                self.counters.replies_sent.incr();
                self.count_tx(peer, Kind::Full, 12);
                self.counters.tx_full.incr();
                true
            }
            Some(IaxSubclass::RegReq) if frame.source_call_number() == probe => {
                self.handle_link_regreq(now, from, frame, out)
            }
            Some(
                IaxSubclass::RegAuth
                | IaxSubclass::RegAck
                | IaxSubclass::RegRej
                | IaxSubclass::Inval,
            ) if frame.dest_call_number() == probe => {
                self.handle_registration_answer(now, peer, from, frame, iax, out)
            }
            // The ACK that ends a registration: nothing more to do.
            Some(IaxSubclass::Ack)
                if frame.dest_call_number() == probe && frame.source_call_number() == probe =>
            {
                true
            }
            Some(IaxSubclass::Pong) if frame.dest_call_number() == probe => {
                let mut link = state.link.lock();
                let sent = link.liveness.outstanding_since(frame.timestamp());
                let _ = link.liveness.answered(now, frame.timestamp());
                drop(link);
                if let (Some(sent), Some(c)) = (sent, self.counters.peer(peer.index())) {
                    let rtt = u64::try_from((now - sent).as_micros()).unwrap_or(u64::MAX);
                    c.rtt(rtt, now.as_millis());
                }
                true
            }
            _ => false,
        }
    }
}
