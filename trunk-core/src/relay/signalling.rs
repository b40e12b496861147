//! Full frames: finding the call, creating it from NEW, binding the far
//! call number, following its end, and refusing native transfer.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use iax2_config::PeerKind;

use super::admission::{Bucket, Refusal, SourceLimits};
use super::call::{Call, Leg, Phase, Probe, Purpose, RefusedTransfer};
use super::counters::{CallDirection, CallResult, DropReason, Kind};
use super::peers::{PeerId, Peers};
use super::replies::{self, Cause, Header};
use super::RelayWorker;
use crate::time::Instant;
use crate::transmit::Transmit;
use crate::wire::{
    CallNumber, ControlSubclass, FrameType, FullFrame, IaxSubclass, IeBlock, IeLookup, Subclass,
};

/// How long after a NEW from a gateway peer an identical one is taken as
/// its second copy on the link. The two copies leave back to back; the
/// dropped copy clears the mark, so of a retransmission (sent twice too)
/// a copy always passes.
const LINK_COPY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// What the relay needs to know of a plain (unencrypted) full frame.
#[derive(Clone, Copy, Debug)]
struct Signal {
    /// The IAX subclass, for frame type IAX.
    iax: Option<IaxSubclass>,
    /// HANGUP and REJECT end a call; so does INVAL.
    ends_call: bool,
}

fn signal_of(frame: &FullFrame<&[u8]>) -> Signal {
    let iax = (frame.frame_type() == FrameType::Iax)
        .then(|| frame.iax_subclass())
        .flatten();
    let ends_call = matches!(
        iax,
        Some(IaxSubclass::Hangup | IaxSubclass::Reject | IaxSubclass::Inval)
    );
    Signal { iax, ends_call }
}

/// Whether a frame of this subclass from the far side completes a
/// call-less exchange.
fn completes(purpose: Purpose, iax: Option<IaxSubclass>) -> bool {
    match purpose {
        Purpose::Call => false,
        Purpose::Poke => matches!(iax, Some(IaxSubclass::Pong | IaxSubclass::Reject)),
        Purpose::Registration => matches!(
            iax,
            Some(IaxSubclass::RegAck | IaxSubclass::RegRej | IaxSubclass::Reject)
        ),
        Purpose::Other => matches!(iax, Some(IaxSubclass::Reject)),
    }
}

/// Whether a plain full frame counts against its leg's control-frame rate:
/// DTMF (begin and end), text, image, HTML and control frames, except the
/// control HANGUP. Never voice, video or IAX frames (ACK, HANGUP, REJECT,
/// PING, ...).
fn counts_as_control(frame: &FullFrame<&[u8]>) -> bool {
    let t = frame.frame_type();
    matches!(
        t,
        FrameType::Dtmf
            | FrameType::DtmfBegin
            | FrameType::Text
            | FrameType::Image
            | FrameType::Html
    ) || (t == FrameType::Control && frame.control_subclass() != Some(ControlSubclass::Hangup))
}

/// Transfer frames that would take media off the relay (PROTOCOL.md 11.6).
fn is_transfer(iax: Option<IaxSubclass>) -> bool {
    matches!(
        iax,
        Some(
            IaxSubclass::TxCnt
                | IaxSubclass::TxAcc
                | IaxSubclass::TxReady
                | IaxSubclass::TxRel
                | IaxSubclass::TxMedia
        )
    )
}

impl RelayWorker {
    /// Handles a full frame from `peer`. `learn` is set when the datagram
    /// came from a new address that a dynamic peer's rules permit.
    pub(super) fn handle_full<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        learn: Option<SocketAddr>,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        self.counters.rx_full.incr();
        let Ok(frame) = FullFrame::new_checked(&*datagram) else {
            return self.counters.count_drop(DropReason::Malformed);
        };
        let source = frame.source_call_number();
        let dest = frame.dest_call_number();
        if source == CallNumber::UNKNOWN {
            return self.counters.count_drop(DropReason::Malformed);
        }
        if dest == CallNumber::STATELESS {
            // The ACK a PBX sends back to a stateless reply: Asterisk
            // ignores it, so it goes no further (PROTOCOL.md 17).
            return self.counters.count_drop(DropReason::StatelessAck);
        }
        let probe = CallNumber::from_field(super::callno::LINK_PROBE);
        if (source == probe || dest == probe)
            && self.handle_link_probe(now, peer, from, &frame, signal_of(&frame).iax, out)
        {
            return;
        }
        if dest != CallNumber::UNKNOWN {
            return self.continue_call(now, peer, from, dest.get(), datagram, out);
        }
        let signal = signal_of(&frame);
        let theirs_bound = self.gen.peers.get(peer).lookup(source);
        if let Some(ours) = theirs_bound.filter(|_| learn.is_none()) {
            if frame.is_retransmission() || !self.reused_after_end(ours, signal.iax) {
                // A retransmitted NEW, or the NEW re-sent with its CALLTOKEN.
                return self.continue_call(now, peer, from, ours, datagram, out);
            }
            // The peer reused the number of a call that has ended: the
            // lingering entry gives way to the new call.
            self.free_call(now, ours);
        }
        let purpose = match signal.iax {
            Some(IaxSubclass::New) => Purpose::Call,
            Some(IaxSubclass::Poke) => Purpose::Poke,
            Some(IaxSubclass::RegReq | IaxSubclass::RegRel) => Purpose::Registration,
            Some(IaxSubclass::FwDownl) => Purpose::Other,
            _ => return self.counters.count_drop(DropReason::UnknownCall),
        };
        if let Some(addr) = learn {
            self.gen.peers.learn(peer, addr);
        }
        self.create(now, peer, from, purpose, datagram, out);
    }

    /// Whether a frame that opens an exchange, on a number bound to call
    /// `ours`, starts a new exchange rather than repeating the old one: the
    /// old call has ended (lingering) and this is a new request. Asterisk
    /// quarantines its numbers for 60 s, but not every peer does.
    fn reused_after_end(&self, ours: u16, iax: Option<IaxSubclass>) -> bool {
        let opens = matches!(
            iax,
            Some(IaxSubclass::New | IaxSubclass::Poke | IaxSubclass::RegReq | IaxSubclass::RegRel)
        );
        opens && self.lingers(ours)
    }

    /// Whether call `ours` has ended and only lingers for the last ACKs
    /// (and is not encrypted, so that its end was seen).
    fn lingers(&self, ours: u16) -> bool {
        self.relay.table.slot(ours).is_some_and(|slot| {
            slot.call
                .read()
                .as_ref()
                .is_some_and(|c| matches!(c.phase, Phase::Ending { .. }) && !c.encrypted)
        })
    }

    /// Creates a call from a frame that opens an exchange, and sends it on.
    fn create<T: Transmit>(
        &mut self,
        now: Instant,
        ingress: PeerId,
        from: SocketAddr,
        purpose: Purpose,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        let relay = &*self.relay;
        let gen = &*self.gen;
        let frame = FullFrame::new_unchecked(&*datagram);
        let source = frame.source_call_number();
        let reply_to =
            |subclass| replies::stateless(source, frame.timestamp(), frame.iseqno().0, subclass);
        let refusal = match purpose {
            Purpose::Registration => IaxSubclass::RegRej,
            Purpose::Call | Purpose::Poke | Purpose::Other => IaxSubclass::Reject,
        };
        // A POKE goes end to end like a call, from a gateway peer too: the
        // PBXs qualify each other through the pair. (The gateways do not
        // POKE each other yet; link liveness will need frames this side can
        // tell apart from a relayed POKE.)
        // IEs that do not end on an IE boundary: Asterisk drops such a
        // frame as undecodable, so relayed it would only hold an entry and
        // a call number for nothing. Dropped before admission: it takes no
        // token and gets no reply.
        let Ok(ies) = IeBlock::new_checked(frame.payload()) else {
            return self.counters.count_drop(DropReason::Malformed);
        };
        let called = match purpose {
            Purpose::Call => Some(ies.called_number().ok().flatten().unwrap_or("")),
            Purpose::Poke | Purpose::Registration | Purpose::Other => None,
        };
        let encryption_offered = ies
            .encryption()
            .ok()
            .flatten()
            .is_some_and(|e| e.bits() != 0);
        let request_len = datagram.len();
        let refuse = |this: &mut Self, out: &mut T, cause, reason| {
            this.counters.count_drop(reason);
            if purpose == Purpose::Call {
                if let Some(c) = this.counters.peer(ingress.index()) {
                    c.call(CallDirection::In, CallResult::Refused);
                }
            }
            // A POKE gets no answer: the PBX marks the peer unreachable.
            // A refusal is never larger than the request that caused it.
            if purpose != Purpose::Poke
                && replies::send_within(out, from, reply_to(refusal), cause, request_len)
            {
                this.counters.replies_sent.incr();
            }
        };
        let limits = gen.timeouts.admission;
        // Per source address: a flood of NEWs from one address gets
        // nothing back, before any other check can answer it. Gateway
        // peers carry a whole site from one address and are not limited
        // per source.
        let per_source = (gen.peers.get(ingress).kind() != PeerKind::Gateway).then(|| {
            (
                from.ip(),
                SourceLimits {
                    max_entries: limits.maxcallnumbers,
                    max_unanswered: limits.max_unanswered_per_source,
                    rate: limits.new_rate,
                    burst: limits.new_burst,
                },
            )
        });
        if let Some((ip, l)) = per_source {
            match relay.sources.take_token(ip, l, now.as_millis()) {
                Ok(()) => {}
                Err(Refusal::Rate) => return self.counters.count_drop(DropReason::NewRate),
                Err(Refusal::Entries) => {
                    return refuse(self, out, Cause::Congestion, DropReason::SourceLimit)
                }
            }
        }
        // Draining: no new call, and no state for it (Relay::set_draining).
        if purpose == Purpose::Call && relay.is_draining() {
            return refuse(self, out, Cause::SwitchingCongestion, DropReason::Draining);
        }
        let Some(egress) = gen.route(ingress, called) else {
            return refuse(self, out, Cause::NoRoute, DropReason::NoRoute);
        };
        let Some(egress_addr) = gen.peers.get(egress).addr() else {
            return refuse(self, out, Cause::DestinationOutOfOrder, DropReason::NoRoute);
        };
        let full = |id: PeerId| {
            let p = gen.peers.get(id);
            p.config
                .maxcalls
                .is_some_and(|m| p.active_calls.load(Ordering::Relaxed) >= m.get())
        };
        if full(ingress) || full(egress) {
            return refuse(self, out, Cause::Congestion, DropReason::CallLimit);
        }
        let max_calls = usize::try_from(limits.max_calls).unwrap_or(usize::MAX);
        if relay.table.live() >= max_calls {
            return refuse(self, out, Cause::Congestion, DropReason::Capacity);
        }
        let max_unanswered = usize::try_from(limits.max_unanswered).unwrap_or(usize::MAX);
        if relay.setup_entries.load(Ordering::Relaxed) >= max_unanswered {
            return refuse(self, out, Cause::Congestion, DropReason::UnansweredLimit);
        }
        if let Some((ip, l)) = per_source {
            if relay.sources.reserve(ip, l, now.as_millis()).is_err() {
                return refuse(self, out, Cause::Congestion, DropReason::SourceLimit);
            }
        }
        let release_source = || {
            if let Some((ip, _)) = per_source {
                relay.sources.release(ip, true);
            }
        };
        let Some(ours) = relay.table.pool.lock().allocate(now) else {
            release_source();
            return refuse(self, out, Cause::Congestion, DropReason::Capacity);
        };
        let Some(slot) = relay.table.slot(ours) else {
            release_source();
            return;
        };
        let leg = |peer, addr, callno| Leg {
            peer,
            addr,
            callno,
            rx_epoch: now,
            knows_us: false,
        };
        let call = Call {
            legs: [
                leg(ingress, from, Some(source)),
                leg(egress, egress_addr, None),
            ],
            phase: Phase::Setup,
            purpose,
            encryption_offered,
            encrypted: false,
            created: now,
            refused_transfer: None,
            one_way: Default::default(),
            ended: false,
            answered: false,
            probe: (purpose == Purpose::Poke).then_some(Probe {
                toward: 1,
                sent: now,
                timestamp: frame.timestamp(),
            }),
            admitted_from: per_source.map(|(ip, _)| ip),
            control: [Bucket::full(limits.control_burst, now.as_millis()); 2],
            link_new: None,
        };
        {
            let mut guard = slot.call.write();
            if gen.peers.get(ingress).bind(source, ours).is_err() {
                // Another worker created this call a moment ago.
                drop(guard);
                relay.table.pool.lock().release_unused(ours);
                release_source();
                if let Some(existing) = gen.peers.get(ingress).lookup(source) {
                    self.continue_call(now, ingress, from, existing, datagram, out);
                }
                return;
            }
            *guard = Some(call);
            for m in &slot.media {
                m.reset();
            }
            relay.table.set_occupied(ours, true);
            slot.touch(now);
            relay.table.inc_live();
            relay.setup_entries.fetch_add(1, Ordering::Relaxed);
            gen.peers
                .get(ingress)
                .active_calls
                .fetch_add(1, Ordering::Relaxed);
            gen.peers
                .get(egress)
                .active_calls
                .fetch_add(1, Ordering::Relaxed);
            debug_check(&gen.peers, ours, guard.as_ref());
        }
        if purpose == Purpose::Call {
            self.counters.calls_created.incr();
        }
        let mut frame = FullFrame::new_unchecked(&mut *datagram);
        frame.rewrite_call_numbers(our_number(ours), CallNumber::UNKNOWN);
        self.send_full(out, egress, egress_addr, datagram);
    }

    /// Handles a full frame for call `ours` from `peer`.
    fn continue_call<T: Transmit>(
        &mut self,
        now: Instant,
        peer: PeerId,
        from: SocketAddr,
        ours: u16,
        datagram: &mut [u8],
        out: &mut T,
    ) {
        let relay = &*self.relay;
        let gen = &*self.gen;
        let linger = gen.timeouts.hangup_linger;
        let frame = FullFrame::new_unchecked(&*datagram);
        let source = frame.source_call_number();
        let dest_was_unknown = frame.dest_call_number() == CallNumber::UNKNOWN;
        let Some(slot) = relay.table.slot(ours) else {
            return self.unknown_call(from, datagram, out);
        };
        let mut guard = slot.call.write();
        let Some(call) = guard.as_mut() else {
            drop(guard);
            return self.unknown_call(from, datagram, out);
        };
        let Some(i) = call.leg_of(peer, source) else {
            drop(guard);
            return self.unknown_call(from, datagram, out);
        };
        let j = 1 - i;
        // From call 1 a frame is a stateless reply, unless call 1 is the
        // requester's own number: Asterisk never allocates it, but other
        // stacks do (the `iax2` crate registers from it), and Asterisk
        // maps frames by the peer's number whatever it is (PROTOCOL.md
        // 8.2).
        let stateless =
            source == CallNumber::STATELESS && call.legs[i].callno != Some(CallNumber::STATELESS);
        let signal = (!call.encrypted).then(|| signal_of(&frame));
        let iax = signal.and_then(|s| s.iax);
        let was_setup = call.phase == Phase::Setup;

        // A leg's DTMF, text and control frames are rate-limited, so a
        // flood of them cannot crowd out the call's HANGUP (which always
        // passes) or the relay's other work. So is a NEW sent again on the
        // call, which may cross a gateway link twice: never a flood
        // amplified.
        if signal.is_some() && (counts_as_control(&frame) || iax == Some(IaxSubclass::New)) {
            let l = gen.timeouts.admission;
            if !call.control[i].take(l.control_rate, l.control_burst, now.as_millis()) {
                drop(guard);
                return self.counters.count_drop(DropReason::ControlFlood);
            }
        }

        // A NEW sent again on a call crosses a gateway link twice (see
        // `twice` below): the copy right behind it goes no further. A
        // requester's own retransmission comes at least its retransmission
        // time later.
        if iax == Some(IaxSubclass::New)
            && !stateless
            && gen.peers.get(peer).kind() == PeerKind::Gateway
        {
            let (ts, seq) = (frame.timestamp(), frame.oseqno().0);
            if call.link_new.is_some_and(|(t, s, at)| {
                (t, s) == (ts, seq) && now.saturating_duration_since(at) < LINK_COPY_WINDOW
            }) {
                call.link_new = None;
                drop(guard);
                return self.counters.count_drop(DropReason::LinkCopy);
            }
            call.link_new = Some((ts, seq, now));
        }

        // Native transfer stays off the relay (PROTOCOL.md 11.6).
        let mut rewrite_to = None;
        if !stateless {
            match refuse_transfer(call, i, iax, &frame) {
                TransferVerdict::Forward => {}
                TransferVerdict::Rewrite(subclass, first) => {
                    rewrite_to = Some(subclass);
                    if first {
                        self.counters.transfers_refused.incr();
                    }
                }
                TransferVerdict::Drop => {
                    drop(guard);
                    return self.counters.count_drop(DropReason::Refused);
                }
            }
        }

        // The far side's first reply from a call number binds it.
        if call.legs[i].callno.is_none() && !stateless {
            if let Err(holder) = gen.peers.get(peer).bind(source, ours) {
                drop(guard);
                // The peer answers from the number of a call that has
                // ended (it does not quarantine its numbers, as Asterisk
                // does for 60 s): the lingering entry gives way, as it
                // does to a NEW (`reused_after_end`), and the reply is
                // taken again with the number free.
                if holder != ours
                    && self.lingers(holder)
                    && self.free_call(now, holder)
                    && self.gen.peers.get(peer).lookup(source).is_none()
                {
                    return self.continue_call(now, peer, from, ours, datagram, out);
                }
                return self.counters.count_drop(DropReason::UnknownCall);
            }
            call.legs[i].callno = Some(source);
            call.legs[i].rx_epoch = now;
            if call.phase == Phase::Setup {
                call.phase = Phase::Up;
            }
        }
        if !dest_was_unknown && !stateless {
            call.legs[i].knows_us = true;
        }
        if let Some(signal) = signal {
            if iax == Some(IaxSubclass::AuthReq) && call.encryption_offered {
                // Encryption is on once the callee's AUTHREQ agrees to it
                // (PROTOCOL.md 14.3); from the AUTHREP on we see ciphertext.
                let agreed = IeBlock::new_checked(frame.payload())
                    .ok()
                    .and_then(|b| b.encryption().ok().flatten())
                    .is_some_and(|e| e.bits() != 0);
                call.encrypted = agreed;
            }
            self.note_exchange(now, call, i, iax, &frame);
            let completes_exchange = i == 1 && completes(call.purpose, iax);
            if (signal.ends_call || completes_exchange)
                && call.end(now + linger)
                && call.purpose == Purpose::Call
            {
                self.counters.calls_ended.incr();
                let result = if iax == Some(IaxSubclass::Reject) {
                    CallResult::Rejected
                } else if call.answered {
                    CallResult::Answered
                } else {
                    CallResult::Unanswered
                };
                self.count_call(call, result);
            }
        }
        if was_setup && call.phase != Phase::Setup {
            relay.setup_entries.fetch_sub(1, Ordering::Relaxed);
            if let Some(ip) = call.admitted_from {
                relay.sources.replied(ip);
            }
        }
        let (src, dst) = if stateless {
            (
                CallNumber::STATELESS,
                call.legs[j].callno.unwrap_or(CallNumber::UNKNOWN),
            )
        } else if dest_was_unknown {
            (our_number(ours), CallNumber::UNKNOWN)
        } else {
            (
                our_number(ours),
                call.legs[j].callno.unwrap_or(CallNumber::UNKNOWN),
            )
        };
        let to = call.legs[j].addr;
        let egress = call.legs[j].peer;
        // A NEW sent again on a call (with the far PBX's call token, or a
        // retransmission) crosses a gateway link twice. The far PBX's token
        // lasts 10 s and the requester's next try comes some 10 s later,
        // so one more loss on the WAN would cost the call.
        let twice = dest_was_unknown
            && !stateless
            && iax == Some(IaxSubclass::New)
            && gen.peers.get(egress).kind() == PeerKind::Gateway;
        // Voice of this call queued for the next trunk tick leaves first:
        // the far side would drop it after the HANGUP, or play it after
        // the full voice frame that follows it.
        let flush_trunk = signal.is_some_and(|s| s.ends_call)
            || (!call.encrypted && frame.frame_type() == FrameType::Voice);
        debug_check(&gen.peers, ours, Some(call));
        drop(guard);
        slot.touch(now);
        if flush_trunk {
            self.flush_trunk(egress, out);
        }

        let mut frame = FullFrame::new_unchecked(&mut *datagram);
        frame.rewrite_call_numbers(src, dst);
        let len = match rewrite_to {
            Some(subclass) => {
                // The IEs of a TXREQ (the other PBX's address) or of a
                // PONG (receiver reports) mean nothing in the new frame.
                frame.set_subclass(Subclass(subclass.code()));
                FullFrame::<&[u8]>::HEADER_LEN
            }
            None => datagram.len(),
        };
        self.send_full(out, egress, to, &datagram[..len]);
        if twice {
            self.send_full(out, egress, to, &datagram[..len]);
        }
    }

    /// Notes what a relayed frame says of the call: its ANSWER (setup
    /// time), or a probe and its reply (round trip to a peer).
    fn note_exchange(
        &self,
        now: Instant,
        call: &mut Call,
        from_leg: usize,
        iax: Option<IaxSubclass>,
        frame: &FullFrame<&[u8]>,
    ) {
        if call.purpose == Purpose::Call
            && !call.answered
            && frame.frame_type() == FrameType::Control
            && frame.control_subclass() == Some(ControlSubclass::Answer)
        {
            call.answered = true;
            self.counters
                .call_setup
                .observe((now - call.created).as_secs_f64());
        }
        match iax {
            Some(IaxSubclass::Ping | IaxSubclass::LagRq | IaxSubclass::Poke) => {
                call.probe = Some(Probe {
                    toward: 1 - from_leg,
                    sent: now,
                    timestamp: frame.timestamp(),
                });
            }
            Some(IaxSubclass::Pong | IaxSubclass::LagRp) => {
                if let Some(p) = call
                    .probe
                    .filter(|p| p.toward == from_leg && p.timestamp == frame.timestamp())
                {
                    call.probe = None;
                    let rtt = u64::try_from((now - p.sent).as_micros()).unwrap_or(u64::MAX);
                    if let Some(c) = self.counters.peer(call.legs[from_leg].peer.index()) {
                        c.rtt(rtt, now.as_millis());
                    }
                }
            }
            _ => {}
        }
    }

    /// Counts an ended call for both its peers.
    fn count_call(&self, call: &Call, result: CallResult) {
        for (leg, dir) in call
            .legs
            .iter()
            .zip([CallDirection::In, CallDirection::Out])
        {
            if let Some(c) = self.counters.peer(leg.peer.index()) {
                c.call(dir, result);
            }
        }
    }

    /// Sends this worker's queued trunk entries toward `peer` now.
    fn flush_trunk<T: Transmit>(&mut self, peer: PeerId, out: &mut T) {
        if let Some(Some(sender)) = self.trunks.get_mut(peer.index()) {
            let to = self.gen.peers.get(peer).addr();
            sender.flush_now(to, &self.counters, out);
        }
    }

    fn send_full<T: Transmit>(&self, out: &mut T, peer: PeerId, to: SocketAddr, datagram: &[u8]) {
        out.send(to, datagram);
        self.count_tx(peer, Kind::Full, datagram.len());
        self.counters.tx_full.incr();
    }

    /// A full frame for a call we do not have: Asterisk answers INVAL so
    /// the sender tears its side down (PROTOCOL.md 8.2); so do we.
    fn unknown_call<T: Transmit>(&mut self, from: SocketAddr, datagram: &[u8], out: &mut T) {
        self.counters.count_drop(DropReason::UnknownCall);
        let frame = FullFrame::new_unchecked(datagram);
        let quiet = frame.frame_type() == FrameType::Iax
            && matches!(
                frame.iax_subclass(),
                Some(
                    IaxSubclass::Inval
                        | IaxSubclass::Ack
                        | IaxSubclass::TxCnt
                        | IaxSubclass::TxAcc
                        | IaxSubclass::FwDownl
                )
            );
        if quiet || frame.source_call_number() == CallNumber::STATELESS {
            return;
        }
        let header = Header {
            source: frame.dest_call_number(),
            dest: frame.source_call_number(),
            timestamp: 0,
            oseqno: 0,
            iseqno: 0,
            subclass: IaxSubclass::Inval,
        };
        replies::send(out, from, header, None);
        self.counters.replies_sent.incr();
    }

    /// Removes call `ours` from the table. Returns whether it was there.
    pub(super) fn free_call(&mut self, now: Instant, ours: u16) -> bool {
        let relay = &*self.relay;
        let gen = &*self.gen;
        let Some(slot) = relay.table.slot(ours) else {
            return false;
        };
        let call = {
            let mut guard = slot.call.write();
            let Some(call) = guard.take() else {
                return false;
            };
            for leg in &call.legs {
                if let Some(theirs) = leg.callno {
                    gen.peers.get(leg.peer).unbind(theirs, ours);
                }
            }
            relay.table.set_occupied(ours, false);
            call
        };
        if call.phase == Phase::Setup {
            relay.setup_entries.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(ip) = call.admitted_from {
            relay.sources.release(ip, call.phase == Phase::Setup);
        }
        if call.purpose == Purpose::Call {
            if !call.ended {
                self.count_call(&call, CallResult::Timeout);
            }
            for (leg, media) in call.legs.iter().zip(&slot.media) {
                let m = media.snapshot();
                if m.frames > 1 {
                    if let Some(c) = self.counters.peer(leg.peer.index()) {
                        #[allow(clippy::cast_precision_loss)]
                        c.jitter.observe(m.jitter_us as f64 / 1e6);
                    }
                }
            }
        }
        for leg in &call.legs {
            gen.peers
                .get(leg.peer)
                .active_calls
                .fetch_sub(1, Ordering::Relaxed);
        }
        relay.table.dec_live();
        relay
            .table
            .pool
            .lock()
            .release(ours, now + gen.timeouts.callno_quarantine);
        true
    }
}

fn our_number(ours: u16) -> CallNumber {
    // Slots are indexed by 15-bit numbers from the pool (2..=32767).
    CallNumber::new(ours).unwrap_or(CallNumber::UNKNOWN)
}

/// What to do with a frame with respect to native transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TransferVerdict {
    Forward,
    /// Forward as this IAX subclass, without IEs; `true` the first time
    /// for this TXREQ.
    Rewrite(IaxSubclass, bool),
    Drop,
}

/// Keeps media on the relay without touching sequence numbers.
///
/// A TXREQ must be refused with a TXREJ, but the relay cannot add a frame
/// to a call's reliable stream, nor take one out, without every later
/// sequence number of both PBXs going wrong (frames may be in flight or
/// lost at that moment). So the TXREQ keeps its slot and goes on as a
/// PING, which every IAX2 peer answers at once with a PONG echoing its
/// timestamp; that PONG keeps its slot too and reaches the requester as
/// the TXREJ. Both PBXs' own acknowledgements and retransmissions then
/// carry the exchange, losses included. Other transfer frames, which only
/// follow an accepted TXREQ, are dropped.
fn refuse_transfer(
    call: &mut Call,
    i: usize,
    iax: Option<IaxSubclass>,
    frame: &FullFrame<&[u8]>,
) -> TransferVerdict {
    match iax {
        Some(IaxSubclass::TxReq) => {
            let refused = RefusedTransfer {
                requester: i,
                timestamp: frame.timestamp(),
            };
            let first = call.refused_transfer != Some(refused);
            call.refused_transfer = Some(refused);
            TransferVerdict::Rewrite(IaxSubclass::Ping, first)
        }
        Some(IaxSubclass::Pong)
            if call
                .refused_transfer
                .is_some_and(|r| r.requester != i && r.timestamp == frame.timestamp()) =>
        {
            TransferVerdict::Rewrite(IaxSubclass::TxRej, false)
        }
        iax if is_transfer(iax) => TransferVerdict::Drop,
        _ => TransferVerdict::Forward,
    }
}

/// The invariants of one call, checked after every mutation in debug
/// builds and by [`Relay::check_invariants`](super::Relay::check_invariants).
pub(super) fn check_call(peers: &Peers, ours: u16, call: &Call) -> Result<(), String> {
    if call.legs[0].peer == call.legs[1].peer {
        return Err(format!("call {ours}: both legs on one peer"));
    }
    if call.legs[0].callno.is_none() {
        return Err(format!("call {ours}: ingress leg without a call number"));
    }
    for (i, leg) in call.legs.iter().enumerate() {
        if let Some(theirs) = leg.callno {
            // Only a requester may use call number 1 (see continue_call);
            // a reply from it is stateless and binds nothing.
            if theirs == CallNumber::UNKNOWN || (theirs == CallNumber::STATELESS && i != 0) {
                return Err(format!(
                    "call {ours}: bound to reserved number {}",
                    theirs.get()
                ));
            }
            if peers.get(leg.peer).lookup(theirs) != Some(ours) {
                return Err(format!(
                    "call {ours}: leg {} not in its peer's index",
                    theirs.get()
                ));
            }
        }
    }
    let both = call.legs.iter().all(|l| l.callno.is_some());
    match call.phase {
        Phase::Setup if both => Err(format!("call {ours}: set up with both numbers bound")),
        Phase::Up if !both => Err(format!("call {ours}: up without the far number")),
        Phase::Setup | Phase::Up | Phase::Ending { .. } => Ok(()),
    }
}

#[inline]
fn debug_check(peers: &Peers, ours: u16, call: Option<&Call>) {
    if cfg!(debug_assertions) {
        if let Some(call) = call {
            if let Err(e) = check_call(peers, ours, call) {
                panic!("relay invariant broken: {e}");
            }
        }
    }
}
