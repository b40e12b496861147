//! One call's state and the frames it sends.

use std::net::SocketAddr;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::transmit::Transmit;
use trunk_core::wire::{
    CallNumber, FrameType, FullFrame, IaxSubclass, IeList, MediaFormat, MiniFrame, SeqNo, Subclass,
    Timestamp16,
};

use super::media::{self, MediaRxStats};
use super::registration::RegTxn;
use super::reliable::{initial_timeout, RetransmitQueue};
use super::trunk::{TrunkConfig, TrunkOut};
use super::{CallId, CallState, Codec, Direction, EndReason, RecordedFrame};

/// Length of a full frame header.
pub(crate) const FULL_HEADER_LEN: usize = 12;
/// Length of a mini frame header.
const MINI_HEADER_LEN: usize = 4;

/// Writes a full frame header into `buf` (at least 12 bytes).
#[allow(clippy::too_many_arguments)]
fn write_header(
    buf: &mut [u8],
    src: CallNumber,
    dst: CallNumber,
    ts: u32,
    oseqno: SeqNo,
    iseqno: SeqNo,
    frame_type: FrameType,
    subclass: Subclass,
) {
    let mut f = FullFrame::new_unchecked(buf);
    f.rewrite_call_numbers(src, dst);
    f.set_timestamp(ts);
    f.set_oseqno(oseqno);
    f.set_iseqno(iseqno);
    f.set_frame_type(frame_type);
    f.set_subclass(subclass);
}

/// Sends an unsequenced, never retransmitted full frame (ACK, VNAK, INVAL,
/// stateless replies) straight into the transmit buffer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_unreliable(
    out: &mut dyn Transmit,
    to: SocketAddr,
    src: CallNumber,
    dst: CallNumber,
    ts: u32,
    oseqno: SeqNo,
    iseqno: SeqNo,
    subclass: IaxSubclass,
    ies: &IeList,
) {
    let len = FULL_HEADER_LEN + ies.buffer_len();
    let buf = out.buffer();
    let Some(buf) = buf.get_mut(..len) else {
        return;
    };
    write_header(
        buf,
        src,
        dst,
        ts,
        oseqno,
        iseqno,
        FrameType::Iax,
        Subclass(subclass.code()),
    );
    if ies.emit(&mut buf[FULL_HEADER_LEN..]).is_ok() {
        out.commit(to, len);
    }
}

/// What to do with a call after handling something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    Keep,
    Destroy,
}

/// Outgoing voice state.
#[derive(Debug, Default)]
pub(crate) struct MediaTx {
    /// Voice is flowing (the call is answered and media is on).
    pub(crate) active: bool,
    /// The peer asked us to stop (QUELCH).
    pub(crate) quelched: bool,
    /// Media sequence number of the next frame.
    pub(crate) seq: u32,
    /// When the next frame is due.
    pub(crate) next_at: Instant,
    /// Call timestamp of the next frame.
    pub(crate) next_ts: u32,
    /// Timestamp of the last voice frame sent, if any.
    pub(crate) last_ts: Option<u32>,
}

/// Everything the endpoint knows about one call.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: CallId,
    pub(crate) local: CallNumber,
    pub(crate) peer: SocketAddr,
    /// The peer's call number; [`CallNumber::UNKNOWN`] until its first reply.
    pub(crate) peer_call: CallNumber,
    pub(crate) direction: Direction,
    pub(crate) state: CallState,
    /// Origin of our call timestamps.
    pub(crate) start: Instant,
    last_ts: Option<u32>,
    pub(crate) oseqno: SeqNo,
    pub(crate) iseqno: SeqNo,
    /// The ISeqno our last full frame carried (for the explicit-ACK rule).
    pub(crate) last_iseqno_sent: Option<SeqNo>,
    pub(crate) queue: RetransmitQueue,
    pub(crate) ping_time: Duration,
    /// Highest call timestamp received (PROTOCOL.md 7's `last`).
    pub(crate) rx_last_ts: u32,
    /// Our instant at the peer's timestamp 0 (Asterisk's `rxcore`).
    pub(crate) rx_core: Option<Instant>,
    /// Codec of the last full voice frame received.
    pub(crate) rx_format: Option<MediaFormat>,
    /// Payload length of the first intact voice frame received.
    pub(crate) rx_payload_len: Option<usize>,
    /// ACCEPT sent or received: media may flow.
    pub(crate) started: bool,
    pub(crate) codec: Codec,
    pub(crate) payload_len: usize,
    /// The request that opened the call (NEW, REGREQ, REGREL): what a
    /// CALLTOKEN challenge makes us send again.
    pub(crate) request: IaxSubclass,
    /// The request's IEs, kept to re-send it with a call token.
    pub(crate) new_ies: Option<IeList>,
    /// Set when the call is a registration transaction, not a call.
    pub(crate) reg: Option<RegTxn>,
    pub(crate) token_sent: bool,
    /// The challenge of our AUTHREQ (answerer).
    pub(crate) challenge: Option<String>,
    /// Whether we already answered an AUTHREQ (originator).
    pub(crate) auth_answered: bool,
    pub(crate) tx: MediaTx,
    pub(crate) answer_at: Option<Instant>,
    pub(crate) next_ping: Option<Instant>,
    pub(crate) next_lagrq: Option<Instant>,
    /// When the next periodic DTMF digit is due.
    pub(crate) next_dtmf: Option<Instant>,
    /// Periodic DTMF digits sent so far (picks the next digit).
    pub(crate) dtmf_count: u32,
    /// When the call's earliest timer entry is due (None: none queued).
    pub(crate) timer_at: Option<Instant>,
    pub(crate) stats: super::CallStats,
    pub(crate) sent_media: Vec<RecordedFrame>,
    pub(crate) received_media: Vec<RecordedFrame>,
}

impl Call {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: CallId,
        local: CallNumber,
        peer: SocketAddr,
        direction: Direction,
        codec: Codec,
        payload_len: usize,
        now: Instant,
        called: String,
    ) -> Self {
        Self {
            id,
            local,
            peer,
            peer_call: CallNumber::UNKNOWN,
            direction,
            state: CallState::Calling,
            start: now,
            last_ts: None,
            oseqno: SeqNo(0),
            iseqno: SeqNo(0),
            last_iseqno_sent: None,
            queue: RetransmitQueue::default(),
            ping_time: Duration::from_millis(1000),
            rx_last_ts: 0,
            rx_core: None,
            rx_format: None,
            rx_payload_len: None,
            started: false,
            codec,
            payload_len,
            request: IaxSubclass::New,
            new_ies: None,
            reg: None,
            token_sent: false,
            challenge: None,
            auth_answered: false,
            tx: MediaTx::default(),
            answer_at: None,
            next_ping: None,
            next_dtmf: None,
            dtmf_count: 0,
            next_lagrq: None,
            timer_at: None,
            stats: super::CallStats {
                id,
                direction,
                local_call_number: local.get(),
                peer_call_number: None,
                peer,
                called,
                codec,
                state: CallState::Calling,
                created: now,
                answered: None,
                ended: None,
                end: None,
                voice_sent: 0,
                voice_full_sent: 0,
                full_frames_sent: 0,
                full_frames_received: 0,
                retransmissions: 0,
                rtt: None,
                rx: MediaRxStats::default(),
            },
            sent_media: Vec::new(),
            received_media: Vec::new(),
        }
    }

    pub(crate) fn set_state(&mut self, state: CallState) {
        self.state = state;
        self.stats.state = state;
    }

    pub(crate) fn end(&mut self, reason: EndReason) {
        if self.stats.end.is_none() {
            self.stats.end = Some(reason);
        }
    }

    /// Milliseconds since the call's start, as a wrapping 32-bit clock.
    pub(crate) fn clock_ms(&self, now: Instant) -> u32 {
        // Truncation intended: the call clock wraps at 2^32 ms.
        (now - self.start).as_millis() as u32
    }

    /// The timestamp of a new signalling frame: the call clock, bumped to
    /// last + 3 when it would not increase (PROTOCOL.md 7).
    pub(crate) fn next_ts(&mut self, now: Instant) -> u32 {
        let t = self.clock_ms(now);
        let t = match self.last_ts {
            Some(l) if (t.wrapping_sub(l) as i32) <= 0 => l.wrapping_add(3),
            _ => t,
        };
        self.note_sent_ts(t);
        t
    }

    fn note_sent_ts(&mut self, ts: u32) {
        match self.last_ts {
            Some(l) if (ts.wrapping_sub(l) as i32) <= 0 => {}
            _ => self.last_ts = Some(ts),
        }
    }

    /// Notes the timestamp of a received frame that counts for `last`
    /// (media and signalling other than ACK, PONG, LAGRP).
    pub(crate) fn note_rx_ts(&mut self, now: Instant, ts: u32) {
        if self.rx_core.is_none() {
            self.rx_core = Some(now - Duration::from_millis(u64::from(ts)));
            self.rx_last_ts = ts;
        } else if (ts.wrapping_sub(self.rx_last_ts) as i32) > 0 {
            self.rx_last_ts = ts;
        }
    }

    /// Sends a sequenced full frame, queues it for retransmission and
    /// returns its length. `last` marks HANGUP/REJECT/REGACK/REGREJ.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_reliable(
        &mut self,
        now: Instant,
        out: &mut dyn Transmit,
        frame_type: FrameType,
        subclass: Subclass,
        ts: u32,
        payload: &[u8],
        last: bool,
    ) {
        let mut bytes = vec![0u8; FULL_HEADER_LEN + payload.len()];
        write_header(
            &mut bytes,
            self.local,
            self.peer_call,
            ts,
            self.oseqno,
            self.iseqno,
            frame_type,
            subclass,
        );
        bytes[FULL_HEADER_LEN..].copy_from_slice(payload);
        out.send(self.peer, &bytes);
        self.last_iseqno_sent = Some(self.iseqno);
        self.stats.full_frames_sent += 1;
        let timeout = initial_timeout(self.ping_time);
        self.queue.push(self.oseqno, bytes, now, timeout, last);
        self.oseqno = self.oseqno.next();
    }

    /// Sends a sequenced IAX frame with the current call clock.
    pub(crate) fn send_iax(
        &mut self,
        now: Instant,
        out: &mut dyn Transmit,
        subclass: IaxSubclass,
        ies: &IeList,
    ) {
        let ts = self.next_ts(now);
        self.send_iax_ts(now, out, subclass, ies, ts);
    }

    /// Sends a sequenced IAX frame with a given timestamp (PONG and LAGRP
    /// echo the request's).
    pub(crate) fn send_iax_ts(
        &mut self,
        now: Instant,
        out: &mut dyn Transmit,
        subclass: IaxSubclass,
        ies: &IeList,
        ts: u32,
    ) {
        let mut payload = vec![0u8; ies.buffer_len()];
        // The buffer is exactly the list's length.
        let _ = ies.emit(&mut payload);
        let last = matches!(
            subclass,
            IaxSubclass::Hangup | IaxSubclass::Reject | IaxSubclass::RegAck | IaxSubclass::RegRej
        );
        self.send_reliable(
            now,
            out,
            FrameType::Iax,
            Subclass(subclass.code()),
            ts,
            &payload,
            last,
        );
    }

    /// Sends a sequenced frame of another type with the current call clock.
    pub(crate) fn send_other(
        &mut self,
        now: Instant,
        out: &mut dyn Transmit,
        frame_type: FrameType,
        subclass: Subclass,
        payload: &[u8],
    ) {
        let ts = self.next_ts(now);
        self.send_reliable(now, out, frame_type, subclass, ts, payload, false);
    }

    /// ACKs a received frame: echoes its timestamp, OSeqno = its ISeqno
    /// (PROTOCOL.md 6.1-6.2).
    pub(crate) fn send_ack(&mut self, out: &mut dyn Transmit, ts: u32, their_iseqno: SeqNo) {
        send_unreliable(
            out,
            self.peer,
            self.local,
            self.peer_call,
            ts,
            their_iseqno,
            self.iseqno,
            IaxSubclass::Ack,
            &IeList::new(),
        );
        self.last_iseqno_sent = Some(self.iseqno);
    }

    /// Asks the peer to resend everything from our ISeqno on.
    pub(crate) fn send_vnak(&mut self, now: Instant, out: &mut dyn Transmit) {
        let ts = self.clock_ms(now);
        send_unreliable(
            out,
            self.peer,
            self.local,
            self.peer_call,
            ts,
            self.iseqno,
            self.iseqno,
            IaxSubclass::Vnak,
            &IeList::new(),
        );
        self.last_iseqno_sent = Some(self.iseqno);
    }

    /// Starts sending voice at `now`.
    pub(crate) fn start_media(&mut self, now: Instant) {
        if self.tx.active {
            return;
        }
        self.tx.active = true;
        self.tx.next_at = now;
        if self.tx.last_ts.is_none() {
            self.tx.next_ts = self.next_ts(now);
        }
    }

    /// Sends the voice frame due now: full for the first frame and when
    /// the timestamp's upper 16 bits change (per `full_on_wrap`, PROTOCOL.md
    /// 7), mini otherwise; with `trunk`, minis become trunk entries and
    /// only the first frame is full. Returns whether it went as a full
    /// frame, and how many trunk frames went out to make room.
    pub(crate) fn send_voice(
        &mut self,
        now: Instant,
        out: &mut dyn Transmit,
        full_on_wrap: bool,
        record: bool,
        trunk: Option<(&TrunkConfig, &mut TrunkOut, &mut Vec<u8>)>,
        echo: Option<(u32, &[u8])>,
    ) -> (bool, usize) {
        let (ts, len) = echo.map_or((self.tx.next_ts, self.payload_len), |(ts, p)| (ts, p.len()));
        let seq = self.tx.seq;
        let fill = |buf: &mut [u8]| match echo {
            Some((_, p)) if p.len() == buf.len() => buf.copy_from_slice(p),
            _ => media::write_payload(buf, seq, now),
        };
        let full = match self.tx.last_ts {
            None => true,
            Some(_) if trunk.is_some() => false,
            Some(last) => {
                let epoch = ts >> 16;
                if full_on_wrap {
                    epoch != last >> 16
                } else {
                    epoch != last >> 16 && epoch != last.wrapping_add(0x1_0000) >> 16
                }
            }
        };
        let mut trunk_frames = 0;
        if full {
            let mut payload = vec![0u8; len];
            fill(&mut payload);
            let subclass = Subclass::from_format(self.codec.format()).unwrap_or(Subclass(0));
            self.note_sent_ts(ts);
            self.send_reliable(now, out, FrameType::Voice, subclass, ts, &payload, false);
            self.stats.voice_full_sent += 1;
            if record {
                self.sent_media.push(RecordedFrame { ts, payload });
            }
        } else if let Some((cfg, t, scratch)) = trunk {
            scratch.clear();
            scratch.resize(len, 0);
            fill(scratch);
            if record {
                self.sent_media.push(RecordedFrame {
                    ts,
                    payload: scratch.clone(),
                });
            }
            trunk_frames = t.push(cfg, now, out, self.local, ts, scratch);
            self.note_sent_ts(ts);
        } else {
            let buf = out.buffer();
            if let Some(buf) = buf.get_mut(..MINI_HEADER_LEN + len) {
                let mut m = MiniFrame::new_unchecked(&mut *buf);
                // Our call numbers are never 0, so this cannot fail.
                let _ = m.set_source_call_number(self.local);
                m.set_timestamp(Timestamp16::from_full(ts));
                fill(m.payload_mut());
                if record {
                    self.sent_media.push(RecordedFrame {
                        ts,
                        payload: buf[MINI_HEADER_LEN..].to_vec(),
                    });
                }
                out.commit(self.peer, MINI_HEADER_LEN + len);
            }
            self.note_sent_ts(ts);
        }
        self.stats.voice_sent += 1;
        self.tx.last_ts = Some(ts);
        self.tx.seq = self.tx.seq.wrapping_add(1);
        (full, trunk_frames)
    }

    /// The earliest instant this call needs a timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let voice = (self.tx.active).then_some(self.tx.next_at);
        [
            self.queue.next_due(),
            self.answer_at,
            self.next_ping,
            self.next_lagrq,
            self.next_dtmf,
            voice,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
