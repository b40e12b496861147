//! One emulated PBX: a sans-IO IAX2 endpoint built on trunk-core's codec.
//!
//! The endpoint owns one local address and any number of calls (up to the
//! 32 766 usable call numbers). Like trunk-core it reads no clock and opens
//! no socket: the caller passes `now`, feeds received datagrams to
//! [`Endpoint::handle_datagram`], calls [`Endpoint::handle_timeout`] when
//! [`Endpoint::poll_timeout`] says so, and sends what the endpoint writes
//! into its [`Transmit`]. Randomness comes from the configured seed, so a
//! run with the same inputs replays exactly.
//!
//! It behaves like Asterisk's chan_iax2 where PROTOCOL.md describes it:
//! CALLTOKEN (both sides), MD5 authentication, ACCEPT/RINGING/ANSWER,
//! sequence numbers with implicit and explicit ACKs, VNAK, retransmission
//! with Asterisk's schedule, PING/LAGRQ keepalives, stateless replies from
//! call 1, INVAL for unknown calls, TXREJ for native transfer requests.
//!
//! Lookups are O(1) per datagram: a full frame names our call number, which
//! indexes a table of slots; a mini frame or trunk entry is found by
//! (source address, peer call number) in a hash map. Timers live in a
//! binary heap with one live entry per call.

mod auth;
mod call;
pub mod measure;
pub mod media;
mod registration;
mod reliable;
pub mod shard;
mod trunk;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use trunk_core::time::Instant;
use trunk_core::transmit::Transmit;
use trunk_core::wire::{
    AuthMethods, CallNumber, ControlSubclass, Frame, FrameType, FullFrame, IaxSubclass, Ie,
    IeBlock, IeList, IeLookup, IeType, MediaFormat, MetaTrunkFrame, SeqNo, SeqOrder, Subclass,
    Timestamp16, TrunkLayout,
};

use crate::rng::SplitMix64;
pub use auth::md5_response;
use auth::TokenMinter;
use call::{send_unreliable, Call, Disposition};
pub use measure::Measurements;
pub use media::MediaRxStats;
use registration::Registrations;
pub use registration::{
    RegistrarConfig, RegistrationFailure, RegistrationId, RegistrationState, RegistrationStats,
    RegistrationStatus, RegistryEntry, DEFAULT_REFRESH, EXPIRY_GRACE_SECS, REFUSED_CAUSE,
    REFUSED_CAUSE_CODE,
};
use reliable::Expiry;
pub use shard::{CallOwners, Shard};
pub use trunk::TrunkConfig;
use trunk::TrunkOut;

/// A voice codec the emulator can carry. The payload is test data with the
/// codec's size, not real audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 u-law: 160 bytes per 20 ms.
    Ulaw,
    /// G.711 a-law: 160 bytes per 20 ms.
    Alaw,
    /// GSM full rate: 33 bytes per 20 ms.
    Gsm,
    /// G.729: 20 bytes per 20 ms.
    G729,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Self; 4] = [Self::Ulaw, Self::Alaw, Self::Gsm, Self::G729];

    /// The media format bit.
    pub fn format(self) -> MediaFormat {
        match self {
            Self::Ulaw => MediaFormat::ULAW,
            Self::Alaw => MediaFormat::ALAW,
            Self::Gsm => MediaFormat::GSM,
            Self::G729 => MediaFormat::G729,
        }
    }

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ulaw => "ulaw",
            Self::Alaw => "alaw",
            Self::Gsm => "gsm",
            Self::G729 => "g729",
        }
    }

    /// The codec of a single format bit.
    pub fn from_format(format: MediaFormat) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.format() == format)
    }

    /// Payload bytes per frame of `ptime_ms`: the codec's size, but at
    /// least [`media::MIN_PAYLOAD_LEN`] so the measurement header fits.
    pub fn payload_len(self, ptime_ms: u32) -> usize {
        let per_20ms = match self {
            Self::Ulaw | Self::Alaw => 160,
            Self::Gsm => 33,
            Self::G729 => 20,
        };
        self.format()
            .payload_len(ptime_ms)
            .unwrap_or(per_20ms * (ptime_ms as usize).div_ceil(20))
            .max(media::MIN_PAYLOAD_LEN)
    }
}

/// What the answering side does with an incoming call once it passed the
/// call token and authentication checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerMode {
    /// ACCEPT, RINGING, then ANSWER after [`EndpointConfig::answer_delay`].
    Answer,
    /// REJECT with this Q.850 cause code.
    Reject(u8),
    /// ACCEPT and RINGING, never ANSWER (rings until the caller gives up).
    RingNoAnswer,
    /// Drop every NEW without a reply, as a host that is down would.
    Ignore,
}

/// Configuration of one emulated PBX.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The endpoint's own address; for logs only.
    pub local: std::net::SocketAddr,
    /// USERNAME sent in NEW when originating.
    pub username: String,
    /// CALLING NUMBER sent in NEW.
    pub calling_number: String,
    /// CALLING NAME sent in NEW.
    pub calling_name: String,
    /// MD5 secret. The originator answers AUTHREQ with it; an answerer with
    /// a secret challenges every NEW and checks the MD5 RESULT.
    pub secret: Option<String>,
    /// Answerer: challenge NEWs with a stateless CALLTOKEN and accept only
    /// those that carry a valid token (PROTOCOL.md 12).
    pub require_calltoken: bool,
    /// The codec offered when originating and preferred when answering.
    pub codec: Codec,
    /// Voice frame interval, milliseconds.
    pub ptime_ms: u32,
    /// What an answerer does with incoming calls.
    pub answer: AnswerMode,
    /// Delay between RINGING and ANSWER.
    pub answer_delay: Duration,
    /// Send voice both ways once ANSWER is sent or received.
    pub media: bool,
    /// Send a full voice frame whenever the timestamp's upper 16 bits
    /// change (the RFC's rule). Off: cross 16-bit wraps with mini frames as
    /// Asterisk does (PROTOCOL.md 7).
    pub full_voice_on_wrap: bool,
    /// Send voice minis as entries of meta trunk frames (Asterisk's
    /// `trunk=yes`); `None` sends plain mini frames. The first voice frame
    /// of a call still goes as a full frame, and no full frame marks 16-bit
    /// wraps (PROTOCOL.md 7, 13.2).
    pub trunk: Option<TrunkConfig>,
    /// Per-call PING interval (Asterisk: 21 s); `None` sends none.
    pub ping_interval: Option<Duration>,
    /// Per-call LAGRQ interval (Asterisk: 10 s); `None` sends none.
    pub lagrq_interval: Option<Duration>,
    /// Keep every voice frame sent and received (timestamp and payload) per
    /// call, for end-to-end comparisons. Costs memory: tests only.
    pub record_media: bool,
    /// Emit an [`Event::Voice`] per voice frame received.
    pub voice_events: bool,
    /// Keep the statistics (and recordings) of ended calls so
    /// [`Endpoint::call_stats`] still answers; a load run drains them with
    /// [`Endpoint::take_ended`].
    pub keep_ended_calls: bool,
    /// Seed of the endpoint's random numbers.
    pub seed: u64,
    /// Act as a registrar for these users (PROTOCOL.md 11.3); `None`
    /// refuses every REGREQ with a stateless REGREJ.
    pub registrar: Option<RegistrarConfig>,
    /// Registrant: re-register by itself at 5/6 of the granted REFRESH
    /// (Asterisk). Off: each [`Endpoint::register`] sends one transaction.
    pub reregister: bool,
    /// One of several endpoints sharing one address: allocate only this
    /// shard's call numbers and publish which peer call numbers it owns.
    pub shard: Option<Shard>,
    /// Originator: send a DTMF digit (`0`-`9`, `*`, `#` in turn) this
    /// often on every answered call, as a caller in an IVR would; `None`
    /// sends none.
    pub dtmf_interval: Option<Duration>,
    /// Answerer: send each voice frame received back on the same call
    /// (payload unchanged, our own timestamps) instead of generating
    /// voice, as Asterisk's Echo() does. The originator then measures the
    /// round trip.
    pub echo: bool,
}

impl EndpointConfig {
    /// Asterisk-like defaults: u-law 20 ms, immediate answer, media on,
    /// PING every 21 s and LAGRQ every 10 s, no secret, no call token.
    pub fn new(local: SocketAddr, seed: u64) -> Self {
        Self {
            local,
            username: "loadtest".to_owned(),
            calling_number: "1000".to_owned(),
            calling_name: "Load Test".to_owned(),
            secret: None,
            require_calltoken: false,
            codec: Codec::Ulaw,
            ptime_ms: 20,
            answer: AnswerMode::Answer,
            answer_delay: Duration::ZERO,
            media: true,
            full_voice_on_wrap: true,
            trunk: None,
            ping_interval: Some(Duration::from_secs(21)),
            lagrq_interval: Some(Duration::from_secs(10)),
            record_media: false,
            voice_events: false,
            keep_ended_calls: true,
            seed,
            registrar: None,
            reregister: true,
            shard: None,
            echo: false,
            dtmf_interval: None,
        }
    }
}

/// Identifies a call for the endpoint's whole life (call numbers get
/// reused; call ids do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call#{}", self.0)
    }
}

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We sent the NEW.
    Outgoing,
    /// We received the NEW.
    Incoming,
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// NEW sent or received, not accepted yet.
    Calling,
    /// Authentication in progress (AUTHREQ sent or answered).
    Authenticating,
    /// ACCEPT sent or received.
    Accepted,
    /// RINGING sent or received.
    Ringing,
    /// ANSWER sent or received: media flows.
    Up,
    /// HANGUP or REJECT sent, waiting for its ACK.
    Ending,
}

/// Why a call failed (as opposed to being hung up or rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// A full frame went unacknowledged through every retransmission.
    Timeout,
    /// The peer sent INVAL: it does not know the call.
    Invalidated,
    /// The peer asked for authentication we cannot give (no secret, or no
    /// method in common).
    NoAuthMethod,
    /// The peer accepted with a codec we cannot carry.
    NoCodec,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// We hung up with this cause code.
    HungUpLocally(u8),
    /// The peer hung up with this cause code.
    HungUpByPeer(u8),
    /// We rejected the call with this cause code.
    RejectedLocally(u8),
    /// The peer rejected the call with this cause code.
    RejectedByPeer(u8),
    /// The call failed.
    Failed(FailReason),
}

/// Something that happened on a call, for the application to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A NEW passed the call-token check and created a call.
    IncomingCall {
        /// The call.
        call: CallId,
        /// CALLED NUMBER.
        called: String,
        /// CALLING NUMBER.
        calling: String,
        /// USERNAME.
        username: String,
    },
    /// Our NEW was accepted.
    Accepted {
        /// The call.
        call: CallId,
        /// The codec of the ACCEPT's FORMAT.
        codec: Codec,
    },
    /// The far end rings.
    Ringing {
        /// The call.
        call: CallId,
    },
    /// The call is answered (ANSWER sent or received); voice flows.
    Answered {
        /// The call.
        call: CallId,
    },
    /// The peer rejected our call.
    Rejected {
        /// The call.
        call: CallId,
        /// CAUSECODE (0 when absent).
        cause_code: u8,
        /// CAUSE text (empty when absent).
        cause: String,
    },
    /// The peer hung up.
    HungUp {
        /// The call.
        call: CallId,
        /// CAUSECODE (0 when absent).
        cause_code: u8,
    },
    /// A DTMF digit ended (type 1 frame).
    Dtmf {
        /// The call.
        call: CallId,
        /// The digit.
        digit: char,
    },
    /// A text frame arrived.
    Text {
        /// The call.
        call: CallId,
        /// The text, without Asterisk's trailing NUL.
        text: String,
    },
    /// A voice frame arrived (only with [`EndpointConfig::voice_events`]).
    Voice {
        /// The call.
        call: CallId,
        /// The full 32-bit call timestamp, rebuilt for minis.
        ts: u32,
        /// Payload bytes.
        payload_len: usize,
        /// Media sequence number of an intact payload.
        seq: Option<u32>,
    },
    /// The call failed.
    CallFailed {
        /// The call.
        call: CallId,
        /// Why.
        reason: FailReason,
    },
    /// The call's state is gone; always the call's last event.
    Ended {
        /// The call.
        call: CallId,
    },
    /// Registrant: REGACK received.
    Registered {
        /// The registration.
        reg: RegistrationId,
        /// REFRESH granted (60 when the REGACK had none).
        refresh: u16,
        /// APPARENT ADDR: where the registrar saw the REGREQ come from.
        apparent_addr: Option<SocketAddr>,
    },
    /// Registrant: a registration attempt failed.
    RegistrationFailed {
        /// The registration.
        reg: RegistrationId,
        /// Why.
        failure: RegistrationFailure,
    },
    /// Registrant: our REGREL was acknowledged with REGACK.
    Unregistered {
        /// The registration.
        reg: RegistrationId,
    },
}

/// One voice frame as sent or received, for end-to-end comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFrame {
    /// Full 32-bit call timestamp.
    pub ts: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Per-call statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    /// The call.
    pub id: CallId,
    /// Who started it.
    pub direction: Direction,
    /// Our call number.
    pub local_call_number: u16,
    /// The peer's call number, once known.
    pub peer_call_number: Option<u16>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// CALLED NUMBER.
    pub called: String,
    /// The negotiated codec.
    pub codec: Codec,
    /// Current (or last) state.
    pub state: CallState,
    /// When the call was created.
    pub created: Instant,
    /// When it was answered.
    pub answered: Option<Instant>,
    /// When its state was released.
    pub ended: Option<Instant>,
    /// How it ended.
    pub end: Option<EndReason>,
    /// Voice frames sent (full and mini).
    pub voice_sent: u64,
    /// Of those, full voice frames.
    pub voice_full_sent: u64,
    /// Full frames sent (first transmissions).
    pub full_frames_sent: u64,
    /// Full frames received.
    pub full_frames_received: u64,
    /// Retransmissions sent (timeouts and VNAKs).
    pub retransmissions: u64,
    /// Last PING round-trip time.
    pub rtt: Option<Duration>,
    /// Incoming voice measurements.
    pub rx: MediaRxStats,
}

/// A call whose state is gone, kept for inspection.
#[derive(Debug, Clone)]
pub struct EndedCall {
    /// Its final statistics.
    pub stats: CallStats,
    /// Voice sent (with [`EndpointConfig::record_media`]).
    pub sent_media: Vec<RecordedFrame>,
    /// Voice received (with [`EndpointConfig::record_media`]).
    pub received_media: Vec<RecordedFrame>,
}

/// Endpoint-wide counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    /// Calls we originated.
    pub calls_originated: u64,
    /// Calls created by incoming NEWs.
    pub calls_incoming: u64,
    /// Calls that reached the answered state.
    pub calls_answered: u64,
    /// Calls currently holding state.
    pub active_calls: usize,
    /// Calls ended, any reason.
    pub calls_ended: u64,
    /// Calls hung up by us.
    pub calls_hung_up_locally: u64,
    /// Calls hung up by the peer.
    pub calls_hung_up_by_peer: u64,
    /// Calls we rejected.
    pub calls_rejected_locally: u64,
    /// Calls the peer rejected.
    pub calls_rejected_by_peer: u64,
    /// Calls that failed.
    pub calls_failed: u64,
    /// NEWs dropped by [`AnswerMode::Ignore`].
    pub news_ignored: u64,
    /// Stateless CALLTOKEN challenges sent.
    pub calltoken_challenges: u64,
    /// Stateless REJECTs for missing or bad call tokens.
    pub calltoken_rejects: u64,
    /// AUTHREPs whose MD5 RESULT was wrong.
    pub auth_failures: u64,
    /// Datagrams handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams that did not parse (or had a broken IE block).
    pub malformed: u64,
    /// Datagrams of kinds the emulator ignores (video, other meta).
    pub ignored: u64,
    /// Full frames received for known calls.
    pub full_frames_received: u64,
    /// Full frames sent (first transmissions, sequenced).
    pub full_frames_sent: u64,
    /// Retransmissions sent.
    pub retransmissions: u64,
    /// Explicit ACKs sent.
    pub acks_sent: u64,
    /// Duplicate full frames received (re-ACKed and dropped).
    pub duplicate_full_frames: u64,
    /// VNAKs sent.
    pub vnaks_sent: u64,
    /// VNAKs received.
    pub vnaks_received: u64,
    /// INVALs sent for frames of unknown calls.
    pub invals_sent: u64,
    /// INVALs received.
    pub invals_received: u64,
    /// TXREQs received (each answered with TXREJ).
    pub txreq_received: u64,
    /// POKEs answered.
    pub pokes_answered: u64,
    /// DTMF digits sent (DTMF frames, whether periodic or asked for).
    pub dtmf_sent: u64,
    /// DTMF digits received.
    pub dtmf_received: u64,
    /// DTMF frames (begin or end) received again: duplicates, also counted
    /// in `duplicate_full_frames`.
    pub dtmf_duplicates: u64,
    /// Minis and trunk entries for no known call.
    pub unknown_call_media: u64,
    /// Voice frames sent.
    pub voice_sent: u64,
    /// Voice frames sent as full frames.
    pub voice_full_sent: u64,
    /// Voice frames received with an intact payload (duplicates included).
    pub voice_received: u64,
    /// Voice frames lost (summed per call up to its highest sequence number).
    pub voice_lost: u64,
    /// Duplicate voice frames.
    pub voice_duplicates: u64,
    /// Reordered voice frames.
    pub voice_reordered: u64,
    /// Voice frames with a damaged payload.
    pub voice_corrupt: u64,
    /// Voice frames dropped before measurement.
    pub voice_dropped: u64,
    /// Meta trunk frames sent.
    pub trunk_frames_sent: u64,
    /// Voice frames not sent because the sender fell too far behind.
    pub voice_skipped: u64,
    /// Smallest one-way latency seen, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency seen, microseconds.
    pub latency_max_us: u64,
    /// Sum of one-way latencies, microseconds.
    pub latency_sum_us: u64,
    /// Largest per-call jitter, microseconds.
    pub jitter_max_us: f64,
}

impl EndpointStats {
    /// Adds another endpoint's counters (the shards of one PBX): sums,
    /// and the extremes of the extremes.
    pub fn add(&mut self, o: &Self) {
        let (mine, theirs) = (
            self.voice_received - self.voice_duplicates,
            o.voice_received - o.voice_duplicates,
        );
        self.latency_min_us = match (mine, theirs) {
            (0, _) => o.latency_min_us,
            (_, 0) => self.latency_min_us,
            _ => self.latency_min_us.min(o.latency_min_us),
        };
        self.calls_originated += o.calls_originated;
        self.calls_incoming += o.calls_incoming;
        self.calls_answered += o.calls_answered;
        self.active_calls += o.active_calls;
        self.calls_ended += o.calls_ended;
        self.calls_hung_up_locally += o.calls_hung_up_locally;
        self.calls_hung_up_by_peer += o.calls_hung_up_by_peer;
        self.calls_rejected_locally += o.calls_rejected_locally;
        self.calls_rejected_by_peer += o.calls_rejected_by_peer;
        self.calls_failed += o.calls_failed;
        self.news_ignored += o.news_ignored;
        self.calltoken_challenges += o.calltoken_challenges;
        self.calltoken_rejects += o.calltoken_rejects;
        self.auth_failures += o.auth_failures;
        self.datagrams_received += o.datagrams_received;
        self.malformed += o.malformed;
        self.ignored += o.ignored;
        self.full_frames_received += o.full_frames_received;
        self.full_frames_sent += o.full_frames_sent;
        self.retransmissions += o.retransmissions;
        self.acks_sent += o.acks_sent;
        self.duplicate_full_frames += o.duplicate_full_frames;
        self.vnaks_sent += o.vnaks_sent;
        self.vnaks_received += o.vnaks_received;
        self.invals_sent += o.invals_sent;
        self.invals_received += o.invals_received;
        self.txreq_received += o.txreq_received;
        self.pokes_answered += o.pokes_answered;
        self.dtmf_sent += o.dtmf_sent;
        self.dtmf_received += o.dtmf_received;
        self.dtmf_duplicates += o.dtmf_duplicates;
        self.unknown_call_media += o.unknown_call_media;
        self.voice_sent += o.voice_sent;
        self.voice_full_sent += o.voice_full_sent;
        self.voice_received += o.voice_received;
        self.voice_lost += o.voice_lost;
        self.voice_duplicates += o.voice_duplicates;
        self.voice_reordered += o.voice_reordered;
        self.voice_corrupt += o.voice_corrupt;
        self.voice_dropped += o.voice_dropped;
        self.trunk_frames_sent += o.trunk_frames_sent;
        self.voice_skipped += o.voice_skipped;
        self.latency_max_us = self.latency_max_us.max(o.latency_max_us);
        self.latency_sum_us += o.latency_sum_us;
        self.jitter_max_us = self.jitter_max_us.max(o.jitter_max_us);
    }

    /// Mean one-way latency in microseconds.
    pub fn latency_mean_us(&self) -> Option<u64> {
        let n = self.voice_received - self.voice_duplicates;
        (n > 0).then(|| self.latency_sum_us / n)
    }

    fn add_media(&mut self, rx: &MediaRxStats) {
        if rx.unique() > 0 {
            self.latency_min_us = if self.voice_received == self.voice_duplicates {
                rx.latency_min_us
            } else {
                self.latency_min_us.min(rx.latency_min_us)
            };
        }
        self.voice_received += rx.received;
        self.voice_lost += rx.lost();
        self.voice_duplicates += rx.duplicates;
        self.voice_reordered += rx.reordered;
        self.voice_corrupt += rx.corrupt;
        self.voice_dropped += rx.dropped;
        self.latency_max_us = self.latency_max_us.max(rx.latency_max_us);
        self.latency_sum_us += rx.latency_sum_us;
        self.jitter_max_us = self.jitter_max_us.max(rx.jitter_us);
    }
}

/// Number of call-number slots (15-bit call numbers).
const SLOTS: usize = 0x8000;
/// Largest number of voice frames sent to catch up after a late tick; past
/// it the sender skips ahead.
const MAX_VOICE_CATCH_UP: u32 = 10;

/// The Q.850 cause text Asterisk puts next to a cause code.
fn cause_text(code: u8) -> &'static str {
    match code {
        1 => "Unallocated (unassigned) number",
        3 => "No route to destination",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        27 => "Destination out of order",
        29 => "Facility rejected",
        34 => "No circuit/channel available",
        38 => "Network out of order",
        50 => "Facility not subscribed",
        58 => "Bearer capability not available",
        _ => "Unknown",
    }
}

/// HANGUP or REJECT IEs: CAUSE text and CAUSECODE.
fn cause_ies(text: &str, code: u8) -> IeList {
    let mut ies = IeList::new();
    if let Ok(ie) = Ie::string(IeType::Cause, text) {
        ies.push(ie);
    }
    ies.push(Ie::u8(IeType::CauseCode, code));
    ies
}

/// How a media payload came, and what dates it.
#[derive(Debug, Clone, Copy)]
enum MediaVia {
    /// A mini frame, with its 16-bit timestamp.
    Mini(Timestamp16),
    /// A trunk entry (a trunk frame reaches every shard of a PBX): its own
    /// 16-bit timestamp, or else the sender's trunk clock (our instant at
    /// its trunk timestamp 0, and the frame's trunk timestamp).
    TrunkEntry {
        ts16: Option<Timestamp16>,
        clock: Option<(Instant, u32)>,
    },
}

/// One emulated PBX. See the module documentation.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    payload_len: usize,
    rng: SplitMix64,
    tokens: TokenMinter,
    /// Calls by our call number.
    slots: Vec<Option<Box<Call>>>,
    /// Our call number by (peer address, peer call number).
    by_peer: HashMap<(SocketAddr, u16), u16>,
    /// Our call number by call id.
    by_id: HashMap<CallId, u16>,
    next_id: u64,
    /// (due, call id, our call number); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, u64, u16)>>,
    events: VecDeque<Event>,
    stats: EndpointStats,
    /// Media totals of ended calls.
    ended_media: EndpointStats,
    ended: HashMap<CallId, EndedCall>,
    /// Our instant at each trunk sender's trunk timestamp 0.
    trunk_anchor: HashMap<SocketAddr, Instant>,
    /// Open trunk frames by peer (with [`EndpointConfig::trunk`]).
    trunks: Vec<TrunkOut>,
    trunk_index: HashMap<SocketAddr, usize>,
    /// When the open trunk frames are due to go out.
    trunk_flush_at: Option<Instant>,
    /// Reused buffer for one voice payload.
    scratch: Vec<u8>,
    /// Registrant and registrar state.
    regs: Registrations,
    /// Latency, setup and jitter distributions.
    measure: Measurements,
    /// When the datagram being handled reached our socket, if earlier than
    /// `now` ([`Endpoint::handle_datagram_at`]).
    arrival: Option<Instant>,
}

impl Endpoint {
    /// An endpoint with no calls.
    pub fn new(cfg: EndpointConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let tokens = TokenMinter::new(rng.next_u64());
        // Up to 200 ms, so a u-law frame fits a datagram.
        let ptime = cfg.ptime_ms.clamp(10, 200);
        let payload_len = cfg.codec.payload_len(ptime);
        let cfg = EndpointConfig {
            ptime_ms: ptime,
            ..cfg
        };
        let mut slots = Vec::with_capacity(SLOTS);
        slots.resize_with(SLOTS, || None);
        Self {
            cfg,
            payload_len,
            rng,
            tokens,
            slots,
            by_peer: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            ended_media: EndpointStats::default(),
            ended: HashMap::new(),
            trunk_anchor: HashMap::new(),
            trunks: Vec::new(),
            trunk_index: HashMap::new(),
            trunk_flush_at: None,
            scratch: Vec::new(),
            regs: Registrations::default(),
            measure: Measurements::new(),
            arrival: None,
        }
    }

    /// The configuration in force (ptime clamped to 10..=200 ms).
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Calls currently holding state.
    pub fn active_calls(&self) -> usize {
        self.by_id.len()
    }

    /// The ids of the calls currently holding state, oldest first (sorted,
    /// so that iterating them keeps a run deterministic).
    pub fn call_ids(&self) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        [timer, self.trunk_flush_at, self.reg_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn call(&self, id: CallId) -> Option<&Call> {
        let local = *self.by_id.get(&id)?;
        self.slots[usize::from(local)].as_deref()
    }

    /// Statistics of a live call, or of an ended one while kept.
    pub fn call_stats(&self, id: CallId) -> Option<&CallStats> {
        match self.call(id) {
            Some(c) => Some(&c.stats),
            None => self.ended.get(&id).map(|e| &e.stats),
        }
    }

    /// Where a live call stands.
    pub fn call_state(&self, id: CallId) -> Option<CallState> {
        self.call(id).map(|c| c.state)
    }

    /// Voice frames sent on a call (with [`EndpointConfig::record_media`]).
    pub fn sent_media(&self, id: CallId) -> Option<&[RecordedFrame]> {
        match self.call(id) {
            Some(c) => Some(&c.sent_media),
            None => self.ended.get(&id).map(|e| &e.sent_media[..]),
        }
    }

    /// Voice frames received on a call (with [`EndpointConfig::record_media`]).
    pub fn received_media(&self, id: CallId) -> Option<&[RecordedFrame]> {
        match self.call(id) {
            Some(c) => Some(&c.received_media),
            None => self.ended.get(&id).map(|e| &e.received_media[..]),
        }
    }

    /// Takes the records of every ended call kept so far, oldest first.
    pub fn take_ended(&mut self) -> Vec<EndedCall> {
        let mut v: Vec<EndedCall> = self.ended.drain().map(|(_, e)| e).collect();
        v.sort_unstable_by_key(|e| e.stats.id);
        v
    }

    /// The distributions measured since the start or the last
    /// [`take_measurements`](Self::take_measurements); jitter includes
    /// the current value of every live call that received voice.
    pub fn measurements(&self) -> Measurements {
        let mut m = self.measure.clone();
        for c in self.slots.iter().flatten() {
            if c.reg.is_none() && c.stats.rx.unique() > 1 {
                m.record_jitter(c.stats.rx.jitter_us);
            }
        }
        m
    }

    /// [`measurements`](Self::measurements), then starts a new window:
    /// the histograms are emptied.
    pub fn take_measurements(&mut self) -> Measurements {
        let m = self.measurements();
        self.measure.reset();
        m
    }

    /// Endpoint-wide counters, live calls' media included.
    pub fn stats(&self) -> EndpointStats {
        let mut s = self.stats.clone();
        s.active_calls = self.active_calls();
        let m = &self.ended_media;
        s.voice_received = m.voice_received;
        s.voice_lost = m.voice_lost;
        s.voice_duplicates = m.voice_duplicates;
        s.voice_reordered = m.voice_reordered;
        s.voice_corrupt = m.voice_corrupt;
        s.voice_dropped = m.voice_dropped;
        s.latency_min_us = m.latency_min_us;
        s.latency_max_us = m.latency_max_us;
        s.latency_sum_us = m.latency_sum_us;
        s.jitter_max_us = m.jitter_max_us;
        for c in self.slots.iter().flatten() {
            s.add_media(&c.stats.rx);
        }
        s
    }

    // -----------------------------------------------------------------
    // Call table
    // -----------------------------------------------------------------

    /// A random free call number in 2..=32767, never 0 or 1; a shard
    /// takes only the numbers congruent to its index.
    fn allocate_call_number(&mut self) -> Option<CallNumber> {
        let (index, count) = self
            .cfg
            .shard
            .as_ref()
            .map_or((0, 1), |s| (usize::from(s.index), usize::from(s.count)));
        let usable = |n: usize| (2..SLOTS).contains(&n) && n % count == index;
        for _ in 0..64 {
            let r = self.rng.range(2, 32767) as usize;
            let n = r - r % count + index;
            if usable(n) && self.slots[n].is_none() {
                return CallNumber::new(n as u16).ok();
            }
        }
        // Nearly full: scan from a random point.
        let start = self.rng.range(2, 32767) as usize;
        (0..SLOTS - 2)
            .map(|i| 2 + (start - 2 + i) % (SLOTS - 2))
            .find(|&n| usable(n) && self.slots[n].is_none())
            .and_then(|n| CallNumber::new(n as u16).ok())
    }

    fn new_call(
        &mut self,
        local: CallNumber,
        peer: SocketAddr,
        direction: Direction,
        now: Instant,
        called: String,
    ) -> Box<Call> {
        let id = CallId(self.next_id);
        self.next_id += 1;
        self.by_id.insert(id, local.get());
        Box::new(Call::new(
            id,
            local,
            peer,
            direction,
            self.cfg.codec,
            self.payload_len,
            now,
            called,
        ))
    }

    fn bind_peer_call(&mut self, call: &mut Call, peer_call: CallNumber) {
        if call.peer_call == CallNumber::UNKNOWN && peer_call.get() > 1 {
            call.peer_call = peer_call;
            call.stats.peer_call_number = Some(peer_call.get());
            self.by_peer
                .insert((call.peer, peer_call.get()), call.local.get());
            if let Some(shard) = &self.cfg.shard {
                shard.owners.claim(peer_call.get(), shard.index);
            }
        }
    }

    /// Puts a call back in its slot (or releases it) and re-arms its timer.
    fn put_back(&mut self, mut call: Box<Call>, disposition: Disposition, now: Instant) {
        match disposition {
            Disposition::Keep => {
                if let Some(d) = call.next_deadline() {
                    if call.timer_at.is_none_or(|t| d < t) {
                        call.timer_at = Some(d);
                        self.timers.push(Reverse((d, call.id.0, call.local.get())));
                    }
                }
                let slot = usize::from(call.local.get());
                self.slots[slot] = Some(call);
            }
            Disposition::Destroy => self.destroy(call, now),
        }
    }

    fn destroy(&mut self, mut call: Box<Call>, now: Instant) {
        let key = (call.peer, call.peer_call.get());
        if self.by_peer.get(&key) == Some(&call.local.get()) {
            self.by_peer.remove(&key);
            if let Some(shard) = &self.cfg.shard {
                shard.owners.release(key.1, shard.index);
            }
        }
        if call.reg.is_some() {
            // A registration transaction: no call counters, no events.
            self.forget_txn(&call);
            return;
        }
        self.by_id.remove(&call.id);
        call.stats.ended = Some(now);
        match call.stats.end {
            Some(EndReason::HungUpLocally(_)) => self.stats.calls_hung_up_locally += 1,
            Some(EndReason::HungUpByPeer(_)) => self.stats.calls_hung_up_by_peer += 1,
            Some(EndReason::RejectedLocally(_)) => self.stats.calls_rejected_locally += 1,
            Some(EndReason::RejectedByPeer(_)) => self.stats.calls_rejected_by_peer += 1,
            Some(EndReason::Failed(_)) | None => self.stats.calls_failed += 1,
        }
        self.stats.calls_ended += 1;
        self.ended_media.add_media(&call.stats.rx);
        if call.stats.rx.unique() > 1 {
            self.measure.record_jitter(call.stats.rx.jitter_us);
        }
        let id = call.id;
        if self.cfg.keep_ended_calls {
            let call = *call;
            self.ended.insert(
                id,
                EndedCall {
                    stats: call.stats,
                    sent_media: call.sent_media,
                    received_media: call.received_media,
                },
            );
        }
        self.events.push_back(Event::Ended { call: id });
    }

    /// Pops timer entries of calls that are gone or re-armed, so that
    /// [`poll_timeout`](Self::poll_timeout) does not report them. Only run
    /// when no call is out of its slot.
    fn prune_timers(&mut self) {
        while let Some(&Reverse((t, id, local))) = self.timers.peek() {
            let live = self.slots[usize::from(local)]
                .as_ref()
                .is_some_and(|c| c.id.0 == id && c.timer_at == Some(t));
            if live {
                break;
            }
            self.timers.pop();
        }
    }

    fn take_call(&mut self, id: CallId) -> Option<Box<Call>> {
        let local = *self.by_id.get(&id)?;
        self.slots[usize::from(local)].take()
    }

    // -----------------------------------------------------------------
    // Application commands
    // -----------------------------------------------------------------

    /// Starts a call to `peer` for `called`: sends NEW with VERSION, CALLED
    /// NUMBER, CALLING NUMBER/NAME, USERNAME, FORMAT(2), CAPABILITY(2) and
    /// an empty CALLTOKEN last. `None` when no call number is free.
    pub fn originate<T: Transmit>(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        called: &str,
        out: &mut T,
    ) -> Option<CallId> {
        let local = self.allocate_call_number()?;
        let mut call = self.new_call(local, peer, Direction::Outgoing, now, called.to_owned());
        self.stats.calls_originated += 1;
        let f = self.cfg.codec.format();
        let mut ies = IeList::new().with(Ie::version());
        for (ty, s) in [
            (IeType::CalledNumber, called),
            (IeType::CallingNumber, self.cfg.calling_number.as_str()),
            (IeType::CallingName, self.cfg.calling_name.as_str()),
            (IeType::Username, self.cfg.username.as_str()),
        ] {
            if let Ok(ie) = Ie::string(ty, s) {
                ies.push(ie);
            }
        }
        ies.push(Ie::format(f))
            .push(Ie::format2(f))
            .push(Ie::capability(f))
            .push(Ie::capability2(f))
            .push(Ie::empty(IeType::CallToken));
        call.send_iax(now, out, IaxSubclass::New, &ies);
        call.new_ies = Some(ies);
        let id = call.id;
        self.put_back(call, Disposition::Keep, now);
        self.prune_timers();
        Some(id)
    }

    /// Sends a DTMF digit: DTMF_BEGIN (type 12) then DTMF (type 1), both
    /// reliable full frames. False when the call is unknown.
    pub fn send_dtmf<T: Transmit>(
        &mut self,
        now: Instant,
        call: CallId,
        digit: char,
        out: &mut T,
    ) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        let sub = Subclass(u8::try_from(u32::from(digit)).unwrap_or(b'?') & 0x7f);
        c.send_other(now, out, FrameType::DtmfBegin, sub, &[]);
        c.send_other(now, out, FrameType::Dtmf, sub, &[]);
        self.stats.dtmf_sent += 1;
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        true
    }

    /// Sends a text frame (UTF-8 with a trailing NUL, as Asterisk does).
    /// False when the call is unknown.
    pub fn send_text<T: Transmit>(
        &mut self,
        now: Instant,
        call: CallId,
        text: &str,
        out: &mut T,
    ) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        let mut payload = Vec::with_capacity(text.len() + 1);
        payload.extend_from_slice(text.as_bytes());
        payload.push(0);
        c.send_other(now, out, FrameType::Text, Subclass(0), &payload);
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        true
    }

    /// Sends an arbitrary sequenced IAX frame on a call (TXREQ, QUELCH,
    /// ...) with the call clock, retransmitted until acknowledged like any
    /// other; the endpoint keeps no further state about it. For tests that
    /// need a PBX to say something the emulator never says by itself.
    /// False when the call is unknown.
    pub fn send_iax<T: Transmit>(
        &mut self,
        now: Instant,
        call: CallId,
        subclass: IaxSubclass,
        ies: &IeList,
        out: &mut T,
    ) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        c.send_iax(now, out, subclass, ies);
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        true
    }

    /// Hangs up: HANGUP with CAUSE and CAUSECODE; the call's state goes
    /// when the peer acknowledges it (or retransmissions run out). False
    /// when the call is unknown or already ending.
    pub fn hangup<T: Transmit>(
        &mut self,
        now: Instant,
        call: CallId,
        cause_code: u8,
        out: &mut T,
    ) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        if c.state == CallState::Ending {
            self.put_back(c, Disposition::Keep, now);
            return false;
        }
        self.flush_trunk(c.peer, now, out);
        Self::end_call_with(&mut c, now, out, IaxSubclass::Hangup, cause_code);
        c.end(EndReason::HungUpLocally(cause_code));
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        true
    }

    /// Hangs up every live call; returns how many.
    pub fn hangup_all<T: Transmit>(&mut self, now: Instant, cause_code: u8, out: &mut T) -> usize {
        let ids = self.call_ids();
        ids.into_iter()
            .filter(|&id| self.hangup(now, id, cause_code, out))
            .count()
    }

    /// Starts voice on an answered call (it starts by itself when
    /// [`EndpointConfig::media`] is on). False when not answered.
    pub fn start_media(&mut self, now: Instant, call: CallId) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        let ok = c.state == CallState::Up;
        if ok {
            c.start_media(now);
        }
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        ok
    }

    /// Stops sending voice on a call. False when the call is unknown.
    pub fn stop_media(&mut self, now: Instant, call: CallId) -> bool {
        let Some(mut c) = self.take_call(call) else {
            return false;
        };
        c.tx.active = false;
        self.put_back(c, Disposition::Keep, now);
        self.prune_timers();
        true
    }

    // -----------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------

    /// Runs what is due at `now`: retransmissions, answers, keepalives and
    /// voice ticks.
    pub fn handle_timeout<T: Transmit>(&mut self, now: Instant, out: &mut T) {
        while let Some(&Reverse((t, id, local))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[usize::from(local)];
            let live = slot
                .as_ref()
                .is_some_and(|c| c.id.0 == id && c.timer_at == Some(t));
            if !live {
                continue;
            }
            let Some(mut call) = slot.take() else {
                continue;
            };
            call.timer_at = None;
            let d = self.on_call_timer(&mut call, now, out);
            self.put_back(call, d, now);
        }
        if self.trunk_flush_at.is_some_and(|t| t <= now) {
            self.trunk_flush_at = None;
            for t in &mut self.trunks {
                self.stats.trunk_frames_sent += t.flush(now, out) as u64;
            }
        }
        if self.reg_deadline().is_some_and(|t| t <= now) {
            self.reg_timers(now, out);
        }
        self.prune_timers();
    }

    /// Sends the open trunk frame towards `peer` now, so that none of its
    /// entries trails a HANGUP of their call.
    fn flush_trunk(&mut self, peer: SocketAddr, now: Instant, out: &mut dyn Transmit) {
        if let Some(&i) = self.trunk_index.get(&peer) {
            self.stats.trunk_frames_sent += self.trunks[i].flush(now, out) as u64;
        }
    }

    fn on_call_timer(
        &mut self,
        call: &mut Call,
        now: Instant,
        out: &mut dyn Transmit,
    ) -> Disposition {
        let peer = call.peer;
        let mut resent = 0u64;
        let expiry = call.queue.on_timeout(now, call.iseqno, |b| {
            out.send(peer, b);
            resent += 1;
        });
        if resent > 0 {
            call.last_iseqno_sent = Some(call.iseqno);
            call.stats.retransmissions += resent;
            self.stats.retransmissions += resent;
        }
        if let Expiry::GaveUp { last } = expiry {
            if call.reg.is_some() {
                self.reg_gave_up(call, last);
            } else if !last {
                call.end(EndReason::Failed(FailReason::Timeout));
                self.events.push_back(Event::CallFailed {
                    call: call.id,
                    reason: FailReason::Timeout,
                });
            }
            return Disposition::Destroy;
        }
        if call.answer_at.is_some_and(|t| t <= now) {
            call.answer_at = None;
            self.answer(call, now, out);
        }
        if let (Some(t), Some(every)) = (call.next_ping, self.cfg.ping_interval) {
            if t <= now {
                call.next_ping = Some(now + every);
                call.send_iax(now, out, IaxSubclass::Ping, &IeList::new());
            }
        }
        if let (Some(t), Some(every)) = (call.next_lagrq, self.cfg.lagrq_interval) {
            if t <= now {
                call.next_lagrq = Some(now + every);
                call.send_iax(now, out, IaxSubclass::LagRq, &IeList::new());
            }
        }
        if let (Some(t), Some(every)) = (call.next_dtmf, self.cfg.dtmf_interval) {
            if t <= now {
                const DIGITS: &[u8; 12] = b"0123456789*#";
                call.next_dtmf = Some(now + every);
                let digit = DIGITS[(call.dtmf_count % 12) as usize];
                call.dtmf_count += 1;
                call.send_other(now, out, FrameType::DtmfBegin, Subclass(digit), &[]);
                call.send_other(now, out, FrameType::Dtmf, Subclass(digit), &[]);
                self.stats.dtmf_sent += 1;
            }
        }
        let ptime = Duration::from_millis(u64::from(self.cfg.ptime_ms));
        let mut sent = 0;
        while call.tx.active && call.tx.next_at <= now {
            if sent >= MAX_VOICE_CATCH_UP {
                // Too far behind: skip to the present instead of bursting.
                call.tx.next_at += ptime;
                call.tx.next_ts = call.tx.next_ts.wrapping_add(self.cfg.ptime_ms);
                self.stats.voice_skipped += 1;
                continue;
            }
            if !call.tx.quelched {
                self.send_voice(call, now, out, None);
            }
            sent += 1;
            call.tx.next_at += ptime;
            call.tx.next_ts = call.tx.next_ts.wrapping_add(self.cfg.ptime_ms);
        }
        Disposition::Keep
    }

    /// Sends one voice frame of `call`: the next generated one, or with
    /// `echo` (timestamp, payload) a received one sent back.
    fn send_voice(
        &mut self,
        call: &mut Call,
        now: Instant,
        out: &mut dyn Transmit,
        echo: Option<(u32, &[u8])>,
    ) {
        let trunk = match &self.cfg.trunk {
            Some(tc) => {
                let trunks = &mut self.trunks;
                let i = *self.trunk_index.entry(call.peer).or_insert_with(|| {
                    trunks.push(TrunkOut::new(call.peer));
                    trunks.len() - 1
                });
                if self.trunk_flush_at.is_none() {
                    self.trunk_flush_at = Some(now + tc.interval);
                }
                Some((tc, &mut self.trunks[i], &mut self.scratch))
            }
            None => None,
        };
        let (full, frames) = call.send_voice(
            now,
            out,
            self.cfg.full_voice_on_wrap,
            self.cfg.record_media,
            trunk,
            echo,
        );
        self.stats.trunk_frames_sent += frames as u64;
        self.stats.voice_sent += 1;
        if full {
            self.stats.voice_full_sent += 1;
            self.stats.full_frames_sent += 1;
        }
    }

    // -----------------------------------------------------------------
    // Receive path
    // -----------------------------------------------------------------

    /// [`handle_datagram`](Self::handle_datagram) of a datagram that
    /// reached the socket at `arrival` (the kernel's receive timestamp, or
    /// when another thread read it) and is handled `now`: latency and
    /// jitter are measured at `arrival`, everything else happens `now`.
    pub fn handle_datagram_at<T: Transmit>(
        &mut self,
        now: Instant,
        arrival: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut T,
    ) {
        self.arrival = Some(arrival.min(now));
        self.handle_datagram(now, from, datagram, out);
        self.arrival = None;
    }

    /// Handles one received datagram. Never panics; what does not parse is
    /// counted in [`EndpointStats::malformed`] and dropped.
    pub fn handle_datagram<T: Transmit>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut T,
    ) {
        self.stats.datagrams_received += 1;
        match Frame::parse(datagram) {
            Err(_) => self.stats.malformed += 1,
            Ok(Frame::Full(f)) => self.on_full(now, from, f, out),
            Ok(Frame::Mini(m)) => self.on_media(
                now,
                from,
                m.source_call_number(),
                MediaVia::Mini(m.timestamp()),
                m.payload(),
                out,
            ),
            Ok(Frame::MetaTrunk(t)) => self.on_trunk(now, from, t, out),
            Ok(Frame::VideoMini(_) | Frame::Meta(_)) => self.stats.ignored += 1,
        }
        self.prune_timers();
    }

    fn on_trunk(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: MetaTrunkFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) {
        let trunk_ts = t.trunk_timestamp();
        if t.layout() == TrunkLayout::NoTimestamps {
            // Anchor the sender's trunk clock on first sight and whenever it
            // restarts (timestamp 0), as Asterisk does.
            let anchor = now - Duration::from_millis(u64::from(trunk_ts));
            let a = self.trunk_anchor.entry(from).or_insert(anchor);
            if trunk_ts == 0 {
                *a = anchor;
            }
        }
        let anchor = self.trunk_anchor.get(&from).copied();
        for entry in t.entries() {
            let Ok(e) = entry else {
                self.stats.malformed += 1;
                break;
            };
            let via = MediaVia::TrunkEntry {
                ts16: e.timestamp,
                clock: anchor.map(|a| (a, trunk_ts)),
            };
            self.on_media(now, from, e.call_number, via, e.payload, out);
        }
    }

    /// A mini frame or trunk entry.
    fn on_media(
        &mut self,
        now: Instant,
        from: SocketAddr,
        source: CallNumber,
        via: MediaVia,
        payload: &[u8],
        out: &mut dyn Transmit,
    ) {
        let Some(&local) = self.by_peer.get(&(from, source.get())) else {
            match &self.cfg.shard {
                // A trunk frame goes to every shard; each takes its own
                // entries and leaves the other shards' alone.
                Some(s) if matches!(via, MediaVia::TrunkEntry { .. }) => {
                    if s.owners.owner(source.get()).is_none_or(|o| o == s.index) {
                        self.stats.unknown_call_media += 1;
                    }
                }
                _ => self.stats.unknown_call_media += 1,
            }
            return;
        };
        let Some(mut call) = self.slots[usize::from(local)].take() else {
            return;
        };
        if !call.started {
            call.stats.rx.dropped += 1;
        } else if call.rx_format.is_none() {
            // Media before the first full voice frame: ask for it again.
            call.stats.rx.dropped += 1;
            call.send_vnak(now, out);
            self.stats.vnaks_sent += 1;
        } else {
            let (ts16, trunk) = match via {
                MediaVia::Mini(t) => (Some(t), None),
                MediaVia::TrunkEntry { ts16, clock } => (ts16, clock),
            };
            let ts = match (ts16, trunk, call.rx_core) {
                (Some(t), _, _) => t.unwrap_asterisk(call.rx_last_ts),
                (None, Some((anchor, trunk_ts)), Some(core)) => {
                    // Truncation intended: call timestamps wrap at 2^32 ms.
                    let offset = anchor.as_millis() as i64 - core.as_millis() as i64;
                    (i64::from(trunk_ts) + offset) as u32
                }
                _ => call.rx_last_ts,
            };
            call.note_rx_ts(now, ts);
            self.on_voice(&mut call, now, ts, payload, out);
        }
        self.slots[usize::from(local)] = Some(call);
    }

    fn on_voice(
        &mut self,
        call: &mut Call,
        now: Instant,
        ts: u32,
        payload: &[u8],
        out: &mut dyn Transmit,
    ) {
        let checked = media::check_payload(payload);
        let len_ok = *call.rx_payload_len.get_or_insert(payload.len()) == payload.len();
        let seq = match checked {
            Some((seq, sent)) if len_ok => {
                let arrival = self.arrival.unwrap_or(now);
                if let Some(latency) = call.stats.rx.record(seq, sent, ts, arrival) {
                    self.measure.record_latency(latency);
                    if self.cfg.echo && call.state == CallState::Up {
                        self.send_voice(call, now, out, Some((ts, payload)));
                    }
                }
                Some(seq)
            }
            _ => {
                call.stats.rx.corrupt += 1;
                None
            }
        };
        if self.cfg.record_media {
            call.received_media.push(RecordedFrame {
                ts,
                payload: payload.to_vec(),
            });
        }
        if self.cfg.voice_events {
            self.events.push_back(Event::Voice {
                call: call.id,
                ts,
                payload_len: payload.len(),
                seq,
            });
        }
    }

    fn on_full(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) {
        let src = f.source_call_number();
        let dst = f.dest_call_number();
        let local = if dst != CallNumber::UNKNOWN {
            self.slots[usize::from(dst.get())]
                .as_ref()
                .filter(|c| c.peer == from)
                .map(|_| dst.get())
        } else if src.get() > 1 {
            self.by_peer.get(&(from, src.get())).copied()
        } else {
            None
        };
        let Some(local) = local else {
            self.on_unknown_call(now, from, f, out);
            return;
        };
        let Some(mut call) = self.slots[usize::from(local)].take() else {
            return;
        };
        let d = self.on_call_frame(&mut call, now, f, out);
        self.put_back(call, d, now);
    }

    /// A full frame that matches no call: NEW may create one, POKE gets a
    /// stateless PONG, most others get INVAL (PROTOCOL.md 8.2-8.3).
    fn on_unknown_call(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) {
        let sub = f.iax_subclass();
        match sub {
            Some(IaxSubclass::New) if f.dest_call_number() == CallNumber::UNKNOWN => {
                self.on_new(now, from, f, out);
            }
            Some(IaxSubclass::RegReq | IaxSubclass::RegRel)
                if f.dest_call_number() == CallNumber::UNKNOWN =>
            {
                self.on_regreq(now, from, f, out);
            }
            Some(IaxSubclass::Poke) => {
                self.stats.pokes_answered += 1;
                self.stateless(out, from, &f, IaxSubclass::Pong, &IeList::new());
            }
            Some(
                IaxSubclass::Ack
                | IaxSubclass::Inval
                | IaxSubclass::TxCnt
                | IaxSubclass::TxAcc
                | IaxSubclass::FwDownl,
            ) => {}
            _ if f.source_call_number() == CallNumber::STATELESS => {}
            _ => {
                self.stats.invals_sent += 1;
                send_unreliable(
                    out,
                    from,
                    f.dest_call_number(),
                    f.source_call_number(),
                    0,
                    SeqNo(0),
                    SeqNo(0),
                    IaxSubclass::Inval,
                    &IeList::new(),
                );
            }
        }
    }

    /// A stateless reply (PROTOCOL.md 8.3): from call 1, to the request's
    /// source, echoing its timestamp, OSeqno 0, ISeqno = its ISeqno + 1.
    fn stateless(
        &self,
        out: &mut dyn Transmit,
        to: SocketAddr,
        req: &FullFrame<&[u8]>,
        sub: IaxSubclass,
        ies: &IeList,
    ) {
        send_unreliable(
            out,
            to,
            CallNumber::STATELESS,
            req.source_call_number(),
            req.timestamp(),
            SeqNo(0),
            req.iseqno().next(),
            sub,
            ies,
        );
    }

    fn on_new(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) {
        let Ok(ies) = IeBlock::new_checked(f.payload()) else {
            self.stats.malformed += 1;
            return;
        };
        if f.source_call_number().get() <= 1 {
            self.stats.malformed += 1;
            return;
        }
        if self.cfg.answer == AnswerMode::Ignore {
            self.stats.news_ignored += 1;
            return;
        }
        if self.cfg.require_calltoken {
            let secs = now.as_millis() / 1000;
            match ies.calltoken() {
                Some([]) => {
                    self.stats.calltoken_challenges += 1;
                    let token = self.tokens.mint(from, secs);
                    let reply = Ie::calltoken(token.as_bytes())
                        .map(|ie| IeList::new().with(ie))
                        .unwrap_or_default();
                    self.stateless(out, from, &f, IaxSubclass::CallToken, &reply);
                    return;
                }
                Some(token) if self.tokens.verify(token, from, secs) => {}
                Some(_) | None => {
                    self.stats.calltoken_rejects += 1;
                    let ies = cause_ies("Call token required or invalid", 21);
                    self.stateless(out, from, &f, IaxSubclass::Reject, &ies);
                    return;
                }
            }
        }
        let Some(local) = self.allocate_call_number() else {
            let ies = cause_ies(cause_text(34), 34);
            self.stateless(out, from, &f, IaxSubclass::Reject, &ies);
            return;
        };
        let called = ies.called_number().ok().flatten().unwrap_or("").to_owned();
        let calling = ies.calling_number().ok().flatten().unwrap_or("").to_owned();
        let username = ies.username().ok().flatten().unwrap_or("").to_owned();
        let mut call = self.new_call(local, from, Direction::Incoming, now, called.clone());
        self.stats.calls_incoming += 1;
        self.bind_peer_call(&mut call, f.source_call_number());
        self.events.push_back(Event::IncomingCall {
            call: call.id,
            called,
            calling,
            username,
        });
        // The NEW then goes through the call's normal path (sequencing,
        // negotiation, authentication).
        let d = self.on_call_frame(&mut call, now, f, out);
        self.put_back(call, d, now);
    }

    /// A full frame for a known call.
    fn on_call_frame(
        &mut self,
        call: &mut Call,
        now: Instant,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        self.stats.full_frames_received += 1;
        call.stats.full_frames_received += 1;
        let src = f.source_call_number();
        let sub = f.iax_subclass();
        if src == CallNumber::STATELESS {
            return self.on_stateless_reply(call, now, f, out);
        }
        self.bind_peer_call(call, src);
        if sub != Some(IaxSubclass::Inval) {
            let released = call.queue.release(f.iseqno(), call.oseqno);
            if released.last {
                // Our HANGUP or REJECT is acknowledged: the call is over.
                return Disposition::Destroy;
            }
        }
        let sequenced = !sub.is_some_and(IaxSubclass::is_unsequenced);
        if sequenced {
            match f.oseqno().classify(call.iseqno) {
                SeqOrder::InOrder => call.iseqno = call.iseqno.next(),
                SeqOrder::OldDuplicate => {
                    self.stats.duplicate_full_frames += 1;
                    if matches!(f.frame_type(), FrameType::Dtmf | FrameType::DtmfBegin) {
                        self.stats.dtmf_duplicates += 1;
                    }
                    self.stats.acks_sent += 1;
                    call.send_ack(out, f.timestamp(), f.iseqno());
                    return Disposition::Keep;
                }
                SeqOrder::Future => {
                    self.stats.vnaks_sent += 1;
                    call.send_vnak(now, out);
                    return Disposition::Keep;
                }
            }
        }
        if !matches!(
            sub,
            Some(IaxSubclass::Ack | IaxSubclass::Pong | IaxSubclass::LagRp)
        ) {
            call.note_rx_ts(now, f.timestamp());
        }
        let d = match f.frame_type() {
            FrameType::Iax => self.on_iax(call, now, &f, sub, out),
            FrameType::Control => {
                self.on_control(call, now, &f);
                Disposition::Keep
            }
            FrameType::Voice => {
                call.rx_format = f.subclass().voice_format();
                if call.started {
                    self.on_voice(call, now, f.timestamp(), f.payload(), out);
                } else {
                    call.stats.rx.dropped += 1;
                }
                Disposition::Keep
            }
            FrameType::Dtmf => {
                self.stats.dtmf_received += 1;
                self.events.push_back(Event::Dtmf {
                    call: call.id,
                    digit: char::from(f.subclass().0 & 0x7f),
                });
                Disposition::Keep
            }
            FrameType::Text => {
                let text = f.payload().strip_suffix(&[0]).unwrap_or(f.payload());
                self.events.push_back(Event::Text {
                    call: call.id,
                    text: String::from_utf8_lossy(text).into_owned(),
                });
                Disposition::Keep
            }
            FrameType::DtmfBegin
            | FrameType::Video
            | FrameType::Null
            | FrameType::Image
            | FrameType::Html
            | FrameType::Cng
            | FrameType::Modem
            | FrameType::Unknown(_) => Disposition::Keep,
        };
        if d == Disposition::Keep && sequenced && call.last_iseqno_sent != Some(call.iseqno) {
            self.stats.acks_sent += 1;
            call.send_ack(out, f.timestamp(), f.iseqno());
        }
        d
    }

    /// A frame from call 1 addressed to one of our calls: a CALLTOKEN
    /// challenge or a stateless REJECT. Never binds 1 as the peer's number.
    fn on_stateless_reply(
        &mut self,
        call: &mut Call,
        now: Instant,
        f: FullFrame<&[u8]>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        if call.reg.is_some()
            && matches!(
                f.iax_subclass(),
                Some(IaxSubclass::Reject | IaxSubclass::RegRej)
            )
        {
            return self.reg_stateless_reject(call, &f, out);
        }
        let ies = IeBlock::new_checked(f.payload()).ok();
        match f.iax_subclass() {
            Some(IaxSubclass::CallToken)
                if call.direction == Direction::Outgoing
                    && call.state == CallState::Calling
                    && !call.token_sent =>
            {
                let token = ies.as_ref().and_then(IeLookup::calltoken).unwrap_or(&[]);
                let Some(mut new_ies) = call.new_ies.take() else {
                    return Disposition::Keep;
                };
                if token.is_empty() {
                    call.new_ies = Some(new_ies);
                    return Disposition::Keep;
                }
                if let Ok(ie) = Ie::calltoken(token) {
                    new_ies.set(ie);
                }
                // PROTOCOL.md 12: same source number, sequence numbers reset,
                // new timestamp; the first NEW is forgotten.
                call.queue.clear();
                call.oseqno = SeqNo(0);
                call.iseqno = SeqNo(0);
                call.last_iseqno_sent = None;
                call.token_sent = true;
                call.send_iax(now, out, call.request, &new_ies);
                call.new_ies = Some(new_ies);
                Disposition::Keep
            }
            Some(IaxSubclass::Reject) => {
                let (code, cause) = cause_of(ies.as_ref());
                // Asterisk ignores this ACK to call 1, but sends it.
                send_unreliable(
                    out,
                    call.peer,
                    call.local,
                    CallNumber::STATELESS,
                    f.timestamp(),
                    f.iseqno(),
                    f.oseqno().next(),
                    IaxSubclass::Ack,
                    &IeList::new(),
                );
                self.stats.acks_sent += 1;
                call.end(EndReason::RejectedByPeer(code));
                self.events.push_back(Event::Rejected {
                    call: call.id,
                    cause_code: code,
                    cause,
                });
                Disposition::Destroy
            }
            _ => Disposition::Keep,
        }
    }

    fn on_iax(
        &mut self,
        call: &mut Call,
        now: Instant,
        f: &FullFrame<&[u8]>,
        sub: Option<IaxSubclass>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        let Some(sub) = sub else {
            return Disposition::Keep;
        };
        // A broken IE block still counts as the frame (it was sequenced);
        // its IEs read as absent.
        let parsed = IeBlock::new_checked(f.payload()).or_else(|_| {
            self.stats.malformed += 1;
            IeBlock::new_checked(&[])
        });
        let Ok(ies) = parsed else {
            return Disposition::Keep;
        };
        if call.reg.is_some() {
            return self.on_reg_iax(call, now, f, sub, &ies, out);
        }
        match sub {
            IaxSubclass::New => {
                if call.direction == Direction::Incoming && call.state == CallState::Calling {
                    self.incoming_new(call, now, &ies, out)
                } else {
                    Disposition::Keep
                }
            }
            IaxSubclass::Ping => {
                call.send_iax_ts(now, out, IaxSubclass::Pong, &IeList::new(), f.timestamp());
                Disposition::Keep
            }
            IaxSubclass::LagRq => {
                call.send_iax_ts(now, out, IaxSubclass::LagRp, &IeList::new(), f.timestamp());
                Disposition::Keep
            }
            IaxSubclass::Pong => {
                let rtt = call.clock_ms(now).wrapping_sub(f.timestamp());
                if rtt < 60_000 {
                    let rtt = Duration::from_millis(u64::from(rtt.max(1)));
                    call.ping_time = rtt;
                    call.stats.rtt = Some(rtt);
                }
                Disposition::Keep
            }
            IaxSubclass::Hangup => {
                let (code, _) = cause_of(Some(&ies));
                self.flush_trunk(call.peer, now, out);
                self.stats.acks_sent += 1;
                call.send_ack(out, f.timestamp(), f.iseqno());
                call.end(EndReason::HungUpByPeer(code));
                self.events.push_back(Event::HungUp {
                    call: call.id,
                    cause_code: code,
                });
                Disposition::Destroy
            }
            IaxSubclass::Reject => {
                let (code, cause) = cause_of(Some(&ies));
                self.stats.acks_sent += 1;
                call.send_ack(out, f.timestamp(), f.iseqno());
                call.end(EndReason::RejectedByPeer(code));
                self.events.push_back(Event::Rejected {
                    call: call.id,
                    cause_code: code,
                    cause,
                });
                Disposition::Destroy
            }
            IaxSubclass::Accept => {
                if call.direction == Direction::Outgoing && !call.started {
                    let codec = ies.format().ok().flatten().and_then(Codec::from_format);
                    let Some(codec) = codec else {
                        self.fail(call, FailReason::NoCodec);
                        Self::end_call_with(call, now, out, IaxSubclass::Hangup, 58);
                        return Disposition::Keep;
                    };
                    call.codec = codec;
                    call.stats.codec = codec;
                    call.payload_len = codec.payload_len(self.cfg.ptime_ms);
                    call.started = true;
                    call.set_state(CallState::Accepted);
                    self.start_keepalives(call, now);
                    self.events.push_back(Event::Accepted {
                        call: call.id,
                        codec,
                    });
                }
                Disposition::Keep
            }
            IaxSubclass::AuthReq => {
                if call.direction == Direction::Outgoing && !call.auth_answered {
                    self.answer_authreq(call, now, &ies, out);
                }
                Disposition::Keep
            }
            IaxSubclass::AuthRep => {
                if call.direction == Direction::Incoming && call.state == CallState::Authenticating
                {
                    self.check_authrep(call, now, &ies, out);
                }
                Disposition::Keep
            }
            IaxSubclass::Inval => {
                self.stats.invals_received += 1;
                self.fail(call, FailReason::Invalidated);
                Disposition::Destroy
            }
            IaxSubclass::Vnak => {
                self.stats.vnaks_received += 1;
                let peer = call.peer;
                let mut n = 0u64;
                call.queue
                    .resend_from(f.iseqno(), call.oseqno, call.iseqno, |b| {
                        out.send(peer, b);
                        n += 1;
                    });
                if n > 0 {
                    call.last_iseqno_sent = Some(call.iseqno);
                }
                call.stats.retransmissions += n;
                self.stats.retransmissions += n;
                Disposition::Keep
            }
            IaxSubclass::TxReq => {
                // We do not do native transfer: media stays where it is.
                self.stats.txreq_received += 1;
                call.send_iax(now, out, IaxSubclass::TxRej, &IeList::new());
                Disposition::Keep
            }
            IaxSubclass::Quelch => {
                call.tx.quelched = true;
                Disposition::Keep
            }
            IaxSubclass::Unquelch => {
                call.tx.quelched = false;
                Disposition::Keep
            }
            IaxSubclass::Unknown(code) => {
                let ies = IeList::new().with(Ie::u8(IeType::IaxUnknown, code));
                call.send_iax(now, out, IaxSubclass::Unsupport, &ies);
                Disposition::Keep
            }
            IaxSubclass::Ack
            | IaxSubclass::LagRp
            | IaxSubclass::RegReq
            | IaxSubclass::RegAuth
            | IaxSubclass::RegAck
            | IaxSubclass::RegRej
            | IaxSubclass::RegRel
            | IaxSubclass::DpReq
            | IaxSubclass::DpRep
            | IaxSubclass::Dial
            | IaxSubclass::TxCnt
            | IaxSubclass::TxAcc
            | IaxSubclass::TxReady
            | IaxSubclass::TxRel
            | IaxSubclass::TxRej
            | IaxSubclass::Poke
            | IaxSubclass::Page
            | IaxSubclass::Mwi
            | IaxSubclass::Unsupport
            | IaxSubclass::Transfer
            | IaxSubclass::Provision
            | IaxSubclass::FwDownl
            | IaxSubclass::FwData
            | IaxSubclass::TxMedia
            | IaxSubclass::RtKey
            | IaxSubclass::CallToken => Disposition::Keep,
        }
    }

    fn on_control(&mut self, call: &mut Call, now: Instant, f: &FullFrame<&[u8]>) {
        if call.direction != Direction::Outgoing {
            return;
        }
        match f.control_subclass() {
            Some(ControlSubclass::Ringing) => {
                if matches!(
                    call.state,
                    CallState::Calling | CallState::Authenticating | CallState::Accepted
                ) {
                    call.set_state(CallState::Ringing);
                }
                self.events.push_back(Event::Ringing { call: call.id });
            }
            Some(ControlSubclass::Answer)
                if call.state != CallState::Up && call.state != CallState::Ending =>
            {
                self.set_up(call, now);
            }
            _ => {}
        }
    }

    fn fail(&mut self, call: &mut Call, reason: FailReason) {
        call.end(EndReason::Failed(reason));
        self.events.push_back(Event::CallFailed {
            call: call.id,
            reason,
        });
    }

    fn start_keepalives(&self, call: &mut Call, now: Instant) {
        call.next_ping = self.cfg.ping_interval.map(|d| now + d);
        call.next_lagrq = self.cfg.lagrq_interval.map(|d| now + d);
    }

    /// The call is answered (ANSWER sent or received).
    fn set_up(&mut self, call: &mut Call, now: Instant) {
        call.set_state(CallState::Up);
        call.stats.answered = Some(now);
        self.stats.calls_answered += 1;
        if call.direction == Direction::Outgoing {
            self.measure.record_setup(
                now.as_micros()
                    .saturating_sub(call.stats.created.as_micros()),
            );
            call.next_dtmf = self.cfg.dtmf_interval.map(|d| now + d);
        }
        self.events.push_back(Event::Answered { call: call.id });
        if self.cfg.media && !self.cfg.echo {
            call.start_media(now);
        }
    }

    /// Sends HANGUP or REJECT with a cause and waits for its ACK.
    fn end_call_with(
        call: &mut Call,
        now: Instant,
        out: &mut dyn Transmit,
        sub: IaxSubclass,
        code: u8,
    ) {
        call.tx.active = false;
        call.answer_at = None;
        call.next_ping = None;
        call.next_lagrq = None;
        call.next_dtmf = None;
        call.set_state(CallState::Ending);
        call.send_iax(now, out, sub, &cause_ies(cause_text(code), code));
    }

    fn reject(
        &mut self,
        call: &mut Call,
        now: Instant,
        out: &mut dyn Transmit,
        code: u8,
        text: &str,
    ) {
        call.tx.active = false;
        call.set_state(CallState::Ending);
        call.end(EndReason::RejectedLocally(code));
        call.send_iax(now, out, IaxSubclass::Reject, &cause_ies(text, code));
    }

    /// Answerer: a NEW created this call. Negotiate, then authenticate or
    /// go on.
    fn incoming_new(
        &mut self,
        call: &mut Call,
        now: Instant,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) -> Disposition {
        let desired = ies.format().ok().flatten().and_then(Codec::from_format);
        let caps = ies.capability().ok().flatten().unwrap_or_default();
        let codec = match desired {
            Some(c) => Some(c),
            None if caps.contains(self.cfg.codec.format()) => Some(self.cfg.codec),
            None => Codec::ALL.into_iter().find(|c| caps.contains(c.format())),
        };
        let Some(codec) = codec else {
            self.reject(call, now, out, 58, cause_text(58));
            return Disposition::Keep;
        };
        call.codec = codec;
        call.stats.codec = codec;
        call.payload_len = codec.payload_len(self.cfg.ptime_ms);
        if self.cfg.secret.is_some() {
            let challenge = self.rng.range(0, 0x7fff_ffff).to_string();
            let mut reply = IeList::new().with(Ie::auth_methods(AuthMethods::MD5)).with(
                Ie::string(IeType::Challenge, &challenge)
                    .unwrap_or_else(|_| Ie::empty(IeType::Challenge)),
            );
            if let Ok(Some(user)) = ies.username() {
                if let Ok(ie) = Ie::string(IeType::Username, user) {
                    reply.push(ie);
                }
            }
            call.challenge = Some(challenge);
            call.set_state(CallState::Authenticating);
            call.send_iax(now, out, IaxSubclass::AuthReq, &reply);
        } else {
            self.proceed(call, now, out);
        }
        Disposition::Keep
    }

    /// Answerer: the caller is through the checks; apply the answer mode.
    fn proceed(&mut self, call: &mut Call, now: Instant, out: &mut dyn Transmit) {
        match self.cfg.answer {
            AnswerMode::Reject(code) => self.reject(call, now, out, code, cause_text(code)),
            AnswerMode::Answer | AnswerMode::RingNoAnswer | AnswerMode::Ignore => {
                let f = call.codec.format();
                let ies = IeList::new().with(Ie::format(f)).with(Ie::format2(f));
                call.send_iax(now, out, IaxSubclass::Accept, &ies);
                call.started = true;
                call.set_state(CallState::Accepted);
                self.start_keepalives(call, now);
                let ringing = Subclass(ControlSubclass::Ringing.code());
                call.send_other(now, out, FrameType::Control, ringing, &[]);
                call.set_state(CallState::Ringing);
                if self.cfg.answer == AnswerMode::Answer {
                    if self.cfg.answer_delay.is_zero() {
                        self.answer(call, now, out);
                    } else {
                        call.answer_at = Some(now + self.cfg.answer_delay);
                    }
                }
            }
        }
    }

    fn answer(&mut self, call: &mut Call, now: Instant, out: &mut dyn Transmit) {
        if call.state != CallState::Ringing {
            return;
        }
        let answer = Subclass(ControlSubclass::Answer.code());
        call.send_other(now, out, FrameType::Control, answer, &[]);
        self.set_up(call, now);
    }

    /// Originator: answer AUTHREQ with MD5 (or plaintext if that is all
    /// that is offered); hang up when we cannot.
    fn answer_authreq(
        &mut self,
        call: &mut Call,
        now: Instant,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) {
        let methods = ies.auth_methods().ok().flatten().unwrap_or_default();
        let challenge = ies.challenge().and_then(|c| core::str::from_utf8(c).ok());
        let reply = match (&self.cfg.secret, challenge) {
            (Some(secret), Some(ch)) if methods.contains(AuthMethods::MD5) => {
                Ie::string(IeType::Md5Result, &md5_response(ch, secret)).ok()
            }
            (Some(secret), _) if methods.contains(AuthMethods::PLAINTEXT) => {
                Ie::string(IeType::Password, secret).ok()
            }
            _ => None,
        };
        match reply {
            Some(ie) => {
                call.auth_answered = true;
                call.set_state(CallState::Authenticating);
                call.send_iax(now, out, IaxSubclass::AuthRep, &IeList::new().with(ie));
            }
            None => {
                self.fail(call, FailReason::NoAuthMethod);
                // Asterisk hangs up when it cannot authenticate.
                Self::end_call_with(call, now, out, IaxSubclass::Hangup, 29);
            }
        }
    }

    /// Answerer: check the MD5 RESULT; a wrong one is rejected the way
    /// Asterisk does ("No authority found", cause 50).
    fn check_authrep(
        &mut self,
        call: &mut Call,
        now: Instant,
        ies: &IeBlock<'_>,
        out: &mut dyn Transmit,
    ) {
        let ok = match (&self.cfg.secret, &call.challenge, ies.md5_result()) {
            (Some(secret), Some(ch), Ok(Some(result))) => {
                result.eq_ignore_ascii_case(&md5_response(ch, secret))
            }
            _ => false,
        };
        if ok {
            self.proceed(call, now, out);
        } else {
            self.stats.auth_failures += 1;
            self.reject(call, now, out, 50, "No authority found");
        }
    }
}

/// CAUSECODE and CAUSE of a HANGUP or REJECT (0 and "" when absent).
fn cause_of(ies: Option<&IeBlock<'_>>) -> (u8, String) {
    let Some(ies) = ies else {
        return (0, String::new());
    };
    let code = ies.causecode().ok().flatten().unwrap_or(0);
    let cause = ies.cause().ok().flatten().unwrap_or("").to_owned();
    (code, cause)
}
