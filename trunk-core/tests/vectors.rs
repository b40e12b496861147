//! Byte-exact test vectors for the IAX2 wire codec, one group per frame
//! kind.
//!
//! Every expected byte string here is written by hand from the layouts of
//! `docs/PROTOCOL.md` (sections 1, 2, 9, 13) and RFC 5456 section 8; none is
//! produced by the codec's own emitter. Each test names the section it
//! checks. Emitters write into buffers pre-filled with a marker byte (0xa5,
//! then 0x5a) so a byte the emitter forgot to set shows up, and the bytes
//! past the frame must keep the marker.
//!
//! `SeqNo`, `Timestamp16` and `Timestamp15` arithmetic is covered by the unit
//! tests of `src/wire/wrapping.rs` and is not repeated here.
#![allow(clippy::wildcard_enum_match_arm)]

mod common;

use core::net::{SocketAddr, SocketAddrV6};

use trunk_core::wire::{
    classify, decode_versioned_u64, ApparentAddr, AuthMethods, CallNumber, ControlSubclass,
    Encryption, FamilyOrder, Frame, FrameKind, FrameRepr, FrameType, FullFrame, FullFramePayload,
    FullFrameRepr, IaxDateTime, IaxSubclass, Ie, IeBlock, IeIter, IeList, IeLookup, IeRef, IeType,
    MediaFormat, MetaCommand, MetaFrame, MetaFrameRepr, MetaTrunkFrame, MetaTrunkFrameRepr,
    MiniFrame, MiniFrameRepr, ReceiverReport, SeqNo, Structure, Subclass, Timestamp15, Timestamp16,
    TrunkEntryLocation, TrunkEntryRepr, TrunkFrameBuilder, TrunkLayout, TrunkPushError,
    VideoMiniFrame, VideoMiniFrameRepr, WireError,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Marker bytes the output buffers are pre-filled with.
const FILLS: [u8; 2] = [0xa5, 0x5a];
/// Extra bytes after the frame that must stay untouched.
const SLACK: usize = 16;

/// Checks that `emit` writes exactly `expected` (whatever the buffer held
/// before), leaves the bytes after it alone, and refuses a buffer one byte
/// short with `BufferTooSmall` without panicking.
fn assert_emits(expected: &[u8], emit: impl Fn(&mut [u8]) -> trunk_core::wire::Result<usize>) {
    for fill in FILLS {
        let mut buf = vec![fill; expected.len() + SLACK];
        let n = emit(&mut buf).expect("emit into a large enough buffer");
        assert_eq!(n, expected.len(), "emitted length (fill {fill:#04x})");
        assert_eq!(&buf[..n], expected, "emitted bytes (fill {fill:#04x})");
        assert!(
            buf[n..].iter().all(|&b| b == fill),
            "bytes past the frame were written (fill {fill:#04x}): {:02x?}",
            &buf[n..]
        );
        let mut exact = vec![fill; expected.len()];
        assert_eq!(emit(&mut exact), Ok(expected.len()), "exact-size buffer");
        assert_eq!(exact, expected);
    }
    if let Some(short) = expected.len().checked_sub(1) {
        let mut buf = vec![0u8; short];
        assert_eq!(
            emit(&mut buf),
            Err(WireError::BufferTooSmall {
                needed: expected.len(),
                got: short
            })
        );
    }
}

/// Concatenates byte strings.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).expect("call number literal fits 15 bits")
}

/// A recognisable payload: `len` bytes counting up from `start`.
fn pattern(start: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(i as u8)).collect()
}

fn truncated(what: Structure, offset: usize, needed: usize, got: usize) -> WireError {
    WireError::Truncated {
        what,
        offset,
        needed,
        got,
    }
}

fn wrong_kind(expected: Structure, first: [u8; 4]) -> WireError {
    WireError::WrongKind { expected, first }
}

// ---------------------------------------------------------------------------
// Section 2.6 byte examples (synthetic golden capture)
// ---------------------------------------------------------------------------

/// The CALLTOKEN value of the golden capture's call 1 (PROTOCOL.md 12 form:
/// `<unix time>?<40 hex>`).
const TOKEN: &[u8] = b"1700000004?81970643dc1b1dbf49ec8d4b6ea11eb4bf8d2b7d";

/// PROTOCOL.md 2.6 "NEW (call 17001, with token)": golden frame 13.
fn new_with_token_bytes() -> Vec<u8> {
    cat(&[
        // F|17001, R=0|dest 0 | ts 6 | o0 i0 IAX NEW
        &[
            0xc2, 0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x06, 0x01,
        ],
        &[0x0b, 0x02, 0x00, 0x02], // VERSION 2
        &[0x01, 0x04],
        b"2001", // CALLED NUMBER
        &[0x2d, 0x02],
        b"DE", // CODEC_PREFS u-law, a-law
        &[0x02, 0x04],
        b"1001",                               // CALLING NUMBER
        &[0x26, 0x01, 0x00],                   // CALLINGPRES 0
        &[0x27, 0x01, 0x00],                   // CALLINGTON 0
        &[0x28, 0x02, 0x00, 0x00],             // CALLINGTNS 0
        &[0x39, 0x04, 0x00, 0x00, 0x00, 0x00], // CALLINGANI2 0
        &[0x04, 0x05],
        b"Alice", // CALLING NAME
        &[0x06, 0x05],
        b"siteA",                                       // USERNAME
        &[0x09, 0x04, 0x00, 0x00, 0x00, 0x04],          // FORMAT u-law
        &[0x38, 0x09, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x04], // FORMAT2 v0 u-law
        &[0x08, 0x04, 0x00, 0x00, 0x00, 0x0c],          // CAPABILITY u-law|a-law
        &[0x37, 0x09, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x0c], // CAPABILITY2
        &[0x0c, 0x02, 0x00, 0x00],                      // ADSICPE 0
        &[0x1f, 0x04, 0x2f, 0x6e, 0xb1, 0xac],          // DATETIME 2023-11-14 22:13:24
        &[0x36, 0x33],                                  // CALLTOKEN, 51 bytes
        TOKEN,
    ])
}

/// PROTOCOL.md 2.6 "CALLTOKEN from call 1": golden frame 12.
fn calltoken_bytes() -> Vec<u8> {
    cat(&[
        &[
            0x80, 0x01, 0x42, 0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x06, 0x28,
        ],
        &[0x36, 0x33],
        TOKEN,
    ])
}

/// PROTOCOL.md 2.6 "ACK (echoes ts 9)": golden frame 17.
const ACK_BYTES: [u8; 12] = [
    0xc2, 0x69, 0x09, 0x29, 0x00, 0x00, 0x00, 0x09, 0x02, 0x02, 0x06, 0x04,
];

/// PROTOCOL.md 2.6 "full Voice u-law" header: golden frame 29.
const VOICE_HEADER: [u8; 12] = [
    0xc2, 0x69, 0x09, 0x29, 0x00, 0x00, 0x04, 0x0f, 0x02, 0x04, 0x02, 0x04,
];

fn voice_bytes() -> Vec<u8> {
    cat(&[&VOICE_HEADER, &pattern(0x10, 160)])
}

/// PROTOCOL.md 2.6 "trunk, no timestamps": golden frame 39 (payloads
/// replaced by patterns).
fn trunk_nots_bytes() -> Vec<u8> {
    cat(&[
        &[0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x42, 0x69, 0x00, 0xa0],
        &pattern(0x00, 160),
        &[0x42, 0x6a, 0x00, 0xa0],
        &pattern(0x80, 160),
    ])
}

/// PROTOCOL.md 2.6 "trunk, timestamps": golden frame 40 (payloads replaced
/// by patterns).
fn trunk_ts_bytes() -> Vec<u8> {
    cat(&[
        &[0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00],
        &[0x00, 0xa0, 0x09, 0x29, 0x07, 0xcf],
        &pattern(0x00, 160),
        &[0x00, 0xa0, 0x09, 0x2a, 0x05, 0xdb],
        &pattern(0x80, 160),
    ])
}

/// The hand-written vectors above are the golden capture's frames
/// (PROTOCOL.md 2.6; testdata/README.md): full frames compared whole, media
/// frames by their headers.
#[test]
fn section_2_6_vectors_match_the_golden_capture() {
    fn frame_of(frames: &[common::Datagram], n: usize) -> &[u8] {
        &frames
            .iter()
            .find(|d| d.number == n)
            .expect("frame present in the golden capture")
            .payload
    }
    let frames = common::read_udp(&common::testdata_dir().join("synthetic-iax2-golden.pcap"));
    let frame = |n: usize| frame_of(&frames, n);
    assert_eq!(frame(12), &calltoken_bytes()[..]);
    assert_eq!(frame(13), &new_with_token_bytes()[..]);
    assert_eq!(frame(17), &ACK_BYTES[..]);
    let voice = frame(29);
    assert_eq!((&voice[..12], voice.len()), (&VOICE_HEADER[..], 172));
    let nots = frame(39);
    let mine = trunk_nots_bytes();
    assert_eq!(nots.len(), mine.len());
    for range in [0..12, 172..176] {
        assert_eq!(&nots[range.clone()], &mine[range]);
    }
    let ts = frame(40);
    let mine = trunk_ts_bytes();
    assert_eq!(ts.len(), mine.len());
    for range in [0..14, 174..180] {
        assert_eq!(&ts[range.clone()], &mine[range]);
    }
}

/// PROTOCOL.md 2.6 NEW with IEs (2.1 header, 4 NEW, 9 IEs).
#[test]
fn section_2_6_new_with_ies() {
    let bytes = new_with_token_bytes();
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), cn(17001));
    assert_eq!(f.dest_call_number(), CallNumber::UNKNOWN);
    assert!(!f.is_retransmission());
    assert_eq!(f.timestamp(), 6);
    assert_eq!((f.oseqno(), f.iseqno()), (SeqNo(0), SeqNo(0)));
    assert_eq!(f.frame_type(), FrameType::Iax);
    assert_eq!(f.subclass(), Subclass(0x01));
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
    assert_eq!(f.control_subclass(), None);
    let ie_types: Vec<IeType> = f.ies().map(|ie| ie.expect("whole IE").ie_type).collect();
    assert_eq!(ie_types.len(), 17);
    assert_eq!(ie_types.first(), Some(&IeType::Version));
    assert_eq!(ie_types.last(), Some(&IeType::CallToken));

    let block = IeBlock::new_checked(f.payload()).expect("whole IEs");
    assert_eq!(block.version(), Ok(Some(2)));
    assert_eq!(block.called_number(), Ok(Some("2001")));
    assert_eq!(block.calling_number(), Ok(Some("1001")));
    assert_eq!(block.calling_name(), Ok(Some("Alice")));
    assert_eq!(block.username(), Ok(Some("siteA")));
    assert_eq!(block.codec_prefs(), Ok(Some("DE")));
    assert_eq!(block.format(), Ok(Some(MediaFormat::ULAW)));
    assert_eq!(
        block.capability(),
        Ok(Some(MediaFormat::ULAW | MediaFormat::ALAW))
    );
    assert_eq!(block.u8_ie(IeType::CallingPres), Ok(Some(0)));
    assert_eq!(block.u32_ie(IeType::CallingAni2), Ok(Some(0)));
    assert_eq!(
        block.datetime(),
        Ok(Some(IaxDateTime {
            year: 2023,
            month: 11,
            day: 14,
            hour: 22,
            minute: 13,
            second: 24
        }))
    );
    assert_eq!(block.calltoken(), Some(TOKEN));

    let ulaw_alaw = MediaFormat::ULAW | MediaFormat::ALAW;
    let ies = IeList::new()
        .with(Ie::version())
        .with(Ie::string(IeType::CalledNumber, "2001").expect("short"))
        .with(Ie::string(IeType::CodecPrefs, "DE").expect("short"))
        .with(Ie::string(IeType::CallingNumber, "1001").expect("short"))
        .with(Ie::u8(IeType::CallingPres, 0))
        .with(Ie::u8(IeType::CallingTon, 0))
        .with(Ie::u16(IeType::CallingTns, 0))
        .with(Ie::u32(IeType::CallingAni2, 0))
        .with(Ie::string(IeType::CallingName, "Alice").expect("short"))
        .with(Ie::string(IeType::Username, "siteA").expect("short"))
        .with(Ie::format(MediaFormat::ULAW))
        .with(Ie::format2(MediaFormat::ULAW))
        .with(Ie::capability(ulaw_alaw))
        .with(Ie::capability2(ulaw_alaw))
        .with(Ie::u16(IeType::AdsiCpe, 0))
        .with(Ie::datetime(IaxDateTime {
            year: 2023,
            month: 11,
            day: 14,
            hour: 22,
            minute: 13,
            second: 24,
        }))
        .with(Ie::calltoken(TOKEN).expect("51 bytes"));
    let repr = FullFrameRepr::iax(
        cn(17001),
        CallNumber::UNKNOWN,
        6,
        SeqNo(0),
        SeqNo(0),
        IaxSubclass::New,
        ies,
    );
    assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_eq!(repr.buffer_len(), bytes.len());
    assert_emits(&bytes, |b| repr.emit(b));
    assert_eq!(repr.to_vec(), bytes);
}

/// PROTOCOL.md 2.6 CALLTOKEN from call 1 (8.3 stateless reply, 12).
#[test]
fn section_2_6_calltoken_from_call_1() {
    let bytes = calltoken_bytes();
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), CallNumber::STATELESS);
    assert_eq!(f.dest_call_number(), cn(17001));
    assert_eq!(f.timestamp(), 0);
    assert_eq!((f.oseqno(), f.iseqno()), (SeqNo(0), SeqNo(1)));
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::CallToken));
    let ies: Vec<IeRef<'_>> = f.ies().map(|ie| ie.expect("whole IE")).collect();
    assert_eq!(
        ies,
        [IeRef {
            ie_type: IeType::CallToken,
            data: TOKEN
        }]
    );

    let repr = FullFrameRepr::iax(
        CallNumber::STATELESS,
        cn(17001),
        0,
        SeqNo(0),
        SeqNo(1),
        IaxSubclass::CallToken,
        IeList::new().with(Ie::calltoken(TOKEN).expect("51 bytes")),
    );
    assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// PROTOCOL.md 2.6 ACK echoing ts 9 (6.2: an ACK echoes the timestamp).
#[test]
fn section_2_6_ack_echoing_ts_9() {
    let f = FullFrame::new_checked(&ACK_BYTES[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), cn(17001));
    assert_eq!(f.dest_call_number(), cn(2345));
    assert!(!f.is_retransmission());
    assert_eq!(f.timestamp(), 9);
    assert_eq!((f.oseqno(), f.iseqno()), (SeqNo(2), SeqNo(2)));
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::Ack));
    assert!(f.payload().is_empty());
    assert_eq!(f.ies().count(), 0);

    let repr = FullFrameRepr::iax(
        cn(17001),
        cn(2345),
        9,
        SeqNo(2),
        SeqNo(2),
        IaxSubclass::Ack,
        IeList::new(),
    );
    assert_eq!(FullFrameRepr::parse(&ACK_BYTES), Ok(repr.clone()));
    assert_emits(&ACK_BYTES, |b| repr.emit(b));
}

/// PROTOCOL.md 2.6 full Voice u-law (2.2: u-law goes out literally as 0x04).
#[test]
fn section_2_6_full_voice_ulaw() {
    let bytes = voice_bytes();
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), cn(17001));
    assert_eq!(f.dest_call_number(), cn(2345));
    assert_eq!(f.timestamp(), 1039);
    assert_eq!((f.oseqno(), f.iseqno()), (SeqNo(2), SeqNo(4)));
    assert_eq!(f.frame_type(), FrameType::Voice);
    assert_eq!(f.subclass(), Subclass(0x04));
    assert!(!f.subclass().is_compressed());
    assert_eq!(f.subclass().voice_format(), Some(MediaFormat::ULAW));
    assert_eq!(f.iax_subclass(), None);
    assert_eq!(f.payload(), &pattern(0x10, 160)[..]);

    let repr = FullFrameRepr {
        source_call_number: cn(17001),
        dest_call_number: cn(2345),
        retransmission: false,
        timestamp: 1039,
        oseqno: SeqNo(2),
        iseqno: SeqNo(4),
        frame_type: FrameType::Voice,
        subclass: Subclass::from_format(MediaFormat::ULAW).expect("u-law encodes"),
        payload: FullFramePayload::Raw(pattern(0x10, 160)),
    };
    assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// PROTOCOL.md 2.6 trunk frame without trunk timestamps (2.5, cmd data 0:
/// `call | len | data`).
#[test]
fn section_2_6_trunk_without_timestamps() {
    let bytes = trunk_nots_bytes();
    let f = MetaTrunkFrame::new_checked(&bytes[..]).expect("a meta trunk frame");
    assert_eq!(f.command_data(), 0);
    assert_eq!(f.layout(), TrunkLayout::NoTimestamps);
    assert_eq!(f.trunk_timestamp(), 0);
    assert_eq!(f.entry_bytes(), &bytes[8..]);
    let entries: Vec<_> = f.entries().map(|e| e.expect("whole entry")).collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].call_number, cn(17001));
    assert!(!entries[0].flag);
    assert_eq!(entries[0].timestamp, None);
    assert_eq!(entries[0].payload, &pattern(0x00, 160)[..]);
    assert_eq!(
        entries[0].location,
        TrunkEntryLocation {
            offset: 8,
            layout: TrunkLayout::NoTimestamps,
            payload_len: 160
        }
    );
    assert_eq!(entries[0].location.payload_range(), 12..172);
    assert_eq!(entries[0].location.end(), 172);
    assert_eq!(entries[1].call_number, cn(17002));
    assert_eq!(entries[1].payload, &pattern(0x80, 160)[..]);
    assert_eq!(entries[1].location.offset, 172);
    assert_eq!(entries[1].location.payload_range(), 176..336);
    assert_eq!(f.entry_at(8), Some(Ok(entries[0])));
    assert_eq!(f.entry_at(172), Some(Ok(entries[1])));
    assert_eq!(f.entry_at(336), None);

    let repr = MetaTrunkFrameRepr {
        command_data: 0,
        trunk_timestamp: 0,
        entries: vec![
            TrunkEntryRepr {
                call_number: cn(17001),
                flag: false,
                timestamp: None,
                payload: pattern(0x00, 160),
            },
            TrunkEntryRepr {
                call_number: cn(17002),
                flag: false,
                timestamp: None,
                payload: pattern(0x80, 160),
            },
        ],
    };
    assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_eq!(repr.layout(), TrunkLayout::NoTimestamps);
    assert_eq!(repr.buffer_len(), 336);
    assert_emits(&bytes, |b| repr.emit(b));
}

/// PROTOCOL.md 2.6 trunk frame with trunk timestamps (2.5, cmd data 1:
/// `len | call | ts | data`).
#[test]
fn section_2_6_trunk_with_timestamps() {
    let bytes = trunk_ts_bytes();
    let f = MetaTrunkFrame::new_checked(&bytes[..]).expect("a meta trunk frame");
    assert_eq!(f.command_data(), 1);
    assert_eq!(f.layout(), TrunkLayout::Timestamps);
    assert_eq!(f.trunk_timestamp(), 0);
    let entries: Vec<_> = f.entries().map(|e| e.expect("whole entry")).collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].call_number, cn(2345));
    assert_eq!(entries[0].timestamp, Some(Timestamp16(0x07cf)));
    assert_eq!(entries[0].payload, &pattern(0x00, 160)[..]);
    assert_eq!(entries[0].location.offset, 8);
    assert_eq!(entries[0].location.payload_range(), 14..174);
    assert_eq!(entries[1].call_number, cn(2346));
    assert_eq!(entries[1].timestamp, Some(Timestamp16(0x05db)));
    assert_eq!(entries[1].location.offset, 174);
    assert_eq!(entries[1].location.payload_range(), 180..340);

    let repr = MetaTrunkFrameRepr {
        command_data: 1,
        trunk_timestamp: 0,
        entries: vec![
            TrunkEntryRepr {
                call_number: cn(2345),
                flag: false,
                timestamp: Some(Timestamp16(1999)),
                payload: pattern(0x00, 160),
            },
            TrunkEntryRepr {
                call_number: cn(2346),
                flag: false,
                timestamp: Some(Timestamp16(1499)),
                payload: pattern(0x80, 160),
            },
        ],
    };
    assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_eq!(repr.layout(), TrunkLayout::Timestamps);
    assert_emits(&bytes, |b| repr.emit(b));
}

// ---------------------------------------------------------------------------
// Full frame header (PROTOCOL.md 2.1, 2.2; RFC 5456 8.1.1)
// ---------------------------------------------------------------------------

/// Every header field at its extreme: F, source 0x7fff, R, dest 0x7fff, a
/// 32-bit timestamp using all bytes, both sequence numbers, a compressed
/// subclass (G.729 = 0x88) and a payload.
#[test]
fn full_header_all_fields_at_extremes() {
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0x01, 0x02, 0x88, 0x11, 0x22,
    ];
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), CallNumber::MAX);
    assert_eq!(f.dest_call_number(), CallNumber::MAX);
    assert!(f.is_retransmission());
    assert_eq!(f.timestamp(), 0xdead_beef);
    assert_eq!(f.oseqno(), SeqNo(0xfe));
    assert_eq!(f.iseqno(), SeqNo(0x01));
    assert_eq!(f.frame_type(), FrameType::Voice);
    assert_eq!(f.subclass(), Subclass(0x88));
    assert!(f.subclass().is_compressed());
    assert_eq!(f.subclass().voice_format(), Some(MediaFormat::G729));
    assert_eq!(f.payload(), &[0x11, 0x22]);
    assert_eq!(f.as_bytes(), &bytes);

    let repr = FullFrameRepr {
        source_call_number: CallNumber::MAX,
        dest_call_number: CallNumber::MAX,
        retransmission: true,
        timestamp: 0xdead_beef,
        oseqno: SeqNo(0xfe),
        iseqno: SeqNo(0x01),
        frame_type: FrameType::Voice,
        subclass: Subclass::from_format(MediaFormat::G729).expect("G.729 encodes"),
        payload: FullFramePayload::Raw(vec![0x11, 0x22]),
    };
    assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// R clear with destination 0x7fff, and source 0 with F set: the F and R
/// bits are separate from the 15-bit numbers (RFC 5456 8.1.1).
#[test]
fn full_header_flag_bits_are_separate_from_call_numbers() {
    let bytes = [0x80, 0x00, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0x06, 0x02];
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), CallNumber::UNKNOWN);
    assert_eq!(f.dest_call_number(), CallNumber::MAX);
    assert!(!f.is_retransmission());
    assert_eq!(f.iax_subclass(), Some(IaxSubclass::Ping));

    let repr = FullFrameRepr::iax(
        CallNumber::UNKNOWN,
        CallNumber::MAX,
        0,
        SeqNo(0),
        SeqNo(0),
        IaxSubclass::Ping,
        IeList::new(),
    );
    assert_emits(&bytes, |b| repr.emit(b));

    // R set, destination 0.
    let bytes = [
        0x80, 0x02, 0x80, 0x00, 0, 0, 0, 0x14, 0x05, 0x06, 0x06, 0x02,
    ];
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.source_call_number(), cn(2));
    assert_eq!(f.dest_call_number(), CallNumber::UNKNOWN);
    assert!(f.is_retransmission());
    let repr = FullFrameRepr {
        retransmission: true,
        ..FullFrameRepr::iax(
            cn(2),
            CallNumber::UNKNOWN,
            20,
            SeqNo(5),
            SeqNo(6),
            IaxSubclass::Ping,
            IeList::new(),
        )
    };
    assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// PROTOCOL.md 2.2: the literal u-law byte 0x04 and the compressed 0x82
/// decode to the same format, and each re-emits as received.
#[test]
fn subclass_literal_and_compressed_ulaw_decode_alike() {
    for byte in [0x04, 0x82] {
        let bytes = [
            0x80, 0x05, 0x00, 0x07, 0, 0, 0, 0x20, 0x00, 0x00, 0x02, byte, 0xff,
        ];
        let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
        assert_eq!(f.subclass(), Subclass(byte));
        assert_eq!(f.subclass().value(), Some(4));
        assert_eq!(f.subclass().voice_format(), Some(MediaFormat::ULAW));
        let repr = FullFrameRepr::parse(&bytes).expect("parses");
        assert_eq!(repr.subclass, Subclass(byte));
        assert_emits(&bytes, |b| repr.emit(b));
    }
    // The encoder follows Asterisk: literal below 0x80, compressed above.
    assert_eq!(
        Subclass::from_format(MediaFormat::ULAW),
        Some(Subclass(0x04))
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::GSM),
        Some(Subclass(0x02))
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::SLINEAR),
        Some(Subclass(0x40))
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::G729),
        Some(Subclass(0x88))
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::OPUS),
        Some(Subclass(0xa2))
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::ULAW | MediaFormat::ALAW),
        Some(Subclass(0x0c)),
        "a value below 0x80 is literal even when it is not one codec"
    );
    assert_eq!(
        Subclass::from_format(MediaFormat::G729 | MediaFormat::ILBC),
        None
    );
}

/// PROTOCOL.md 2.2 and 5: control subclass 0xFF is Asterisk's -1 ("stop
/// sounds"); other control and IAX subclasses also decode from the
/// compressed form; a compressed value above 255 is no IAX/control code.
#[test]
fn subclass_stop_sounds_and_small_codes() {
    // Golden-capture style "stop sounds": control frame, subclass 0xFF.
    let bytes = [
        0x89, 0x29, 0x42, 0x69, 0, 0, 0x03, 0xff, 0x03, 0x02, 0x04, 0xff,
    ];
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.frame_type(), FrameType::Control);
    assert_eq!(f.subclass(), Subclass::MINUS_ONE);
    assert_eq!(f.subclass().value(), None);
    assert_eq!(f.control_subclass(), Some(ControlSubclass::StopSounds));
    assert_eq!(f.iax_subclass(), None);
    let repr = FullFrameRepr::parse(&bytes).expect("parses");
    assert_eq!(repr.control_subclass(), Some(ControlSubclass::StopSounds));
    assert_emits(&bytes, |b| repr.emit(b));

    let control = |sub: u8| {
        let b = [0x80, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0x04, sub];
        FullFrame::new_checked(b)
            .expect("a full frame")
            .control_subclass()
    };
    assert_eq!(control(0x03), Some(ControlSubclass::Ringing));
    assert_eq!(control(0x82), Some(ControlSubclass::Answer)); // 1 << 2
    assert_eq!(control(0x88), None); // 256: no control code
    assert_eq!(control(0x20), Some(ControlSubclass::Unknown(0x20)));

    let iax = |sub: u8| {
        let b = [0x80, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0x06, sub];
        FullFrame::new_checked(b)
            .expect("a full frame")
            .iax_subclass()
    };
    assert_eq!(iax(0x28), Some(IaxSubclass::CallToken));
    assert_eq!(iax(0x85), Some(IaxSubclass::Mwi)); // 1 << 5 = 32
    assert_eq!(iax(0x7f), Some(IaxSubclass::Unknown(0x7f)));
    assert_eq!(iax(0x88), None); // 256: no IAX code
    assert_eq!(iax(0xff), None, "-1 is no IAX subclass");
}

/// PROTOCOL.md 2.2 video full frames: 0x40 is the end-of-frame marker.
#[test]
fn video_full_frame_subclass_marker() {
    let bytes = [
        0x80, 0x07, 0x00, 0x09, 0, 0, 0x01, 0x00, 0x01, 0x01, 0x03, 0xd5, 0x00,
    ];
    let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
    assert_eq!(f.frame_type(), FrameType::Video);
    assert!(f.subclass().video_marker());
    assert_eq!(f.subclass().video_format(), MediaFormat::H264);
}

/// PROTOCOL.md 3: frame types, including codes the codec does not know,
/// which are kept and re-emitted.
#[test]
fn frame_types_known_and_unknown() {
    let cases: &[(u8, FrameType)] = &[
        (0x01, FrameType::Dtmf),
        (0x02, FrameType::Voice),
        (0x03, FrameType::Video),
        (0x04, FrameType::Control),
        (0x05, FrameType::Null),
        (0x06, FrameType::Iax),
        (0x07, FrameType::Text),
        (0x08, FrameType::Image),
        (0x09, FrameType::Html),
        (0x0a, FrameType::Cng),
        (0x0b, FrameType::Modem),
        (0x0c, FrameType::DtmfBegin),
        (0x0d, FrameType::Unknown(0x0d)),
        (0xee, FrameType::Unknown(0xee)),
    ];
    for &(code, ty) in cases {
        let bytes = [0x80, 0x03, 0x00, 0x04, 0, 0, 0, 1, 0, 0, code, 0x35];
        let f = FullFrame::new_checked(&bytes[..]).expect("a full frame");
        assert_eq!(f.frame_type(), ty, "{code:#04x}");
        let repr = FullFrameRepr::parse(&bytes).expect("parses");
        assert_eq!(repr.frame_type, ty);
        assert_eq!(
            repr.payload,
            if ty == FrameType::Iax {
                FullFramePayload::Ies(IeList::new())
            } else {
                FullFramePayload::Raw(Vec::new())
            }
        );
        assert_emits(&bytes, |b| repr.emit(b));
    }
}

// ---------------------------------------------------------------------------
// Mini, video mini and meta frames (PROTOCOL.md 2.3-2.5; RFC 5456 8.1.2-8.1.3)
// ---------------------------------------------------------------------------

/// PROTOCOL.md 2.3: `0|call(15) | ts16 | payload`.
#[test]
fn mini_frame_vectors() {
    let bytes = [0x42, 0x69, 0x12, 0x34, 0x01, 0x02, 0x03];
    let f = MiniFrame::new_checked(&bytes[..]).expect("a mini frame");
    assert_eq!(f.source_call_number(), cn(17001));
    assert_eq!(f.timestamp(), Timestamp16(0x1234));
    assert_eq!(f.payload(), &[0x01, 0x02, 0x03]);
    let repr = MiniFrameRepr {
        source_call_number: cn(17001),
        timestamp: Timestamp16(0x1234),
        payload: vec![0x01, 0x02, 0x03],
    };
    assert_eq!(MiniFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_eq!(repr.buffer_len(), 7);
    assert_emits(&bytes, |b| repr.emit(b));

    // Largest call number and timestamp, empty payload.
    let bytes = [0x7f, 0xff, 0xff, 0xff];
    let f = MiniFrame::new_checked(&bytes[..]).expect("a mini frame");
    assert_eq!(f.source_call_number(), CallNumber::MAX);
    assert_eq!(f.timestamp(), Timestamp16(0xffff));
    assert!(f.payload().is_empty());
    let repr = MiniFrameRepr {
        source_call_number: CallNumber::MAX,
        timestamp: Timestamp16(0xffff),
        payload: Vec::new(),
    };
    assert_emits(&bytes, |b| repr.emit(b));

    // Call number 0 would read as a meta frame: refused, nothing written.
    let zero = MiniFrameRepr {
        source_call_number: CallNumber::UNKNOWN,
        ..repr
    };
    let mut buf = [0xa5u8; 8];
    assert!(matches!(
        zero.emit(&mut buf),
        Err(WireError::InvalidField { .. })
    ));
    assert_eq!(buf, [0xa5; 8]);
}

/// PROTOCOL.md 2.4: `0x0000 | 1|call(15) | M|ts15 | payload`.
#[test]
fn video_mini_frame_vectors() {
    let bytes = [0x00, 0x00, 0x80, 0x05, 0x80, 0x64, 0xde, 0xad];
    let f = VideoMiniFrame::new_checked(&bytes[..]).expect("a video mini frame");
    assert_eq!(f.source_call_number(), cn(5));
    assert!(f.marker());
    assert_eq!(f.timestamp().get(), 100);
    assert_eq!(f.payload(), &[0xde, 0xad]);
    assert_eq!(f.as_bytes(), &bytes);
    let repr = VideoMiniFrameRepr {
        source_call_number: cn(5),
        marker: true,
        timestamp: Timestamp15::new(100),
        payload: vec![0xde, 0xad],
    };
    assert_eq!(VideoMiniFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));

    // Largest call number and 15-bit timestamp, marker clear.
    let bytes = [0x00, 0x00, 0xff, 0xff, 0x7f, 0xff];
    let f = VideoMiniFrame::new_checked(&bytes[..]).expect("a video mini frame");
    assert_eq!(f.source_call_number(), CallNumber::MAX);
    assert!(!f.marker());
    assert_eq!(f.timestamp(), Timestamp15::new(0x7fff));
    // The timestamp's 16th bit cannot leak into the marker.
    let repr = VideoMiniFrameRepr {
        source_call_number: CallNumber::MAX,
        marker: false,
        timestamp: Timestamp15::new(0xffff),
        payload: Vec::new(),
    };
    assert_eq!(VideoMiniFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));

    // Marker set, timestamp 0.
    let bytes = [0x00, 0x00, 0x80, 0x01, 0x80, 0x00];
    let repr = VideoMiniFrameRepr {
        source_call_number: cn(1),
        marker: true,
        timestamp: Timestamp15::new(0),
        payload: Vec::new(),
    };
    assert_eq!(VideoMiniFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// RFC 5456 8.1.3, PROTOCOL.md 2.5: meta frames with commands other than
/// trunk are kept as opaque bytes.
#[test]
fn meta_frame_unknown_command() {
    let bytes = [0x00, 0x00, 0x05, 0x07, 0xaa, 0xbb, 0xcc];
    let f = MetaFrame::new_checked(&bytes[..]).expect("a meta frame");
    assert_eq!(f.meta_command(), MetaCommand::Unknown(0x05));
    assert_eq!(f.command_data(), 0x07);
    assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc]);
    let repr = MetaFrameRepr {
        meta_command: MetaCommand::Unknown(0x05),
        command_data: 0x07,
        payload: vec![0xaa, 0xbb, 0xcc],
    };
    assert_eq!(MetaFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_eq!(FrameRepr::parse(&bytes), Ok(FrameRepr::Meta(repr.clone())));
    assert_emits(&bytes, |b| repr.emit(b));

    // IANA's 0x02 (Asterisk META_VIDEO, never sent) is a plain meta frame,
    // not a video mini frame (that needs bit 7 of byte 2).
    let bytes = [0x00, 0x00, 0x02, 0x00];
    let repr = MetaFrameRepr::parse(&bytes).expect("a meta frame");
    assert_eq!(repr.meta_command, MetaCommand::Video);
    assert_eq!(classify(&bytes), Ok(FrameKind::Meta));
    assert_emits(&bytes, |b| repr.emit(b));

    // Largest 7-bit command.
    let bytes = [0x00, 0x00, 0x7f, 0xff];
    let repr = MetaFrameRepr::parse(&bytes).expect("a meta frame");
    assert_eq!(repr.meta_command, MetaCommand::Unknown(0x7f));
    assert_emits(&bytes, |b| repr.emit(b));

    // A command with the top bit cannot be emitted: it marks video.
    let bad = MetaFrameRepr {
        meta_command: MetaCommand::Unknown(0x85),
        command_data: 0,
        payload: Vec::new(),
    };
    assert!(matches!(
        bad.emit(&mut [0u8; 4]),
        Err(WireError::InvalidField {
            field: "meta command",
            ..
        })
    ));
}

/// PROTOCOL.md 2.5: the RFC's R bit before the call number of a supermini
/// entry is kept as `flag` and re-emitted; the call number excludes it.
#[test]
fn trunk_entry_flag_bit() {
    let bytes = [
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, // header, trunk ts 20
        0xc2, 0x69, 0x00, 0x01, 0x7e, // R|17001, len 1
        0x42, 0x6a, 0x00, 0x01, 0x7f, // 17002, len 1
    ];
    let f = MetaTrunkFrame::new_checked(&bytes[..]).expect("a meta trunk frame");
    assert_eq!(f.trunk_timestamp(), 20);
    let entries: Vec<_> = f.entries().map(|e| e.expect("whole entry")).collect();
    assert_eq!(entries[0].call_number, cn(17001));
    assert!(entries[0].flag);
    assert_eq!(entries[1].call_number, cn(17002));
    assert!(!entries[1].flag);
    let repr = MetaTrunkFrameRepr {
        command_data: 0,
        trunk_timestamp: 20,
        entries: vec![
            TrunkEntryRepr {
                call_number: cn(17001),
                flag: true,
                timestamp: None,
                payload: vec![0x7e],
            },
            TrunkEntryRepr {
                call_number: cn(17002),
                flag: false,
                timestamp: None,
                payload: vec![0x7f],
            },
        ],
    };
    assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));
}

/// PROTOCOL.md 2.5: a trunk frame with no entries, entries with empty
/// payloads, and command data bits beyond bit 0 (kept).
#[test]
fn trunk_frame_edge_layouts() {
    let empty = [0x00, 0x00, 0x01, 0x01, 0xff, 0xff, 0xff, 0xff];
    let f = MetaTrunkFrame::new_checked(&empty[..]).expect("a meta trunk frame");
    assert_eq!(f.trunk_timestamp(), u32::MAX);
    assert_eq!(f.entries().count(), 0);
    let repr = MetaTrunkFrameRepr {
        command_data: 1,
        trunk_timestamp: u32::MAX,
        entries: Vec::new(),
    };
    assert_eq!(MetaTrunkFrameRepr::parse(&empty), Ok(repr.clone()));
    assert_emits(&empty, |b| repr.emit(b));

    let bytes = [
        0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 0x28, // cmd data 3: bit 0 set
        0x00, 0x00, 0x00, 0x07, 0x00, 0x05, // len 0, call 7, ts 5
    ];
    let repr = MetaTrunkFrameRepr {
        command_data: 3,
        trunk_timestamp: 40,
        entries: vec![TrunkEntryRepr {
            call_number: cn(7),
            flag: false,
            timestamp: Some(Timestamp16(5)),
            payload: Vec::new(),
        }],
    };
    assert_eq!(repr.layout(), TrunkLayout::Timestamps);
    assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Ok(repr.clone()));
    assert_emits(&bytes, |b| repr.emit(b));

    // A timestamp present in the wrong layout (or missing in the right one)
    // is refused.
    for (command_data, timestamp) in [(0, Some(Timestamp16(1))), (1, None)] {
        let bad = MetaTrunkFrameRepr {
            command_data,
            trunk_timestamp: 0,
            entries: vec![TrunkEntryRepr {
                call_number: cn(7),
                flag: false,
                timestamp,
                payload: Vec::new(),
            }],
        };
        let mut buf = vec![0u8; bad.buffer_len()];
        assert!(matches!(
            bad.emit(&mut buf),
            Err(WireError::InvalidField { .. })
        ));
    }
    // A payload above 65535 bytes cannot be described by the length field.
    let big = MetaTrunkFrameRepr {
        command_data: 0,
        trunk_timestamp: 0,
        entries: vec![TrunkEntryRepr {
            call_number: cn(7),
            flag: false,
            timestamp: None,
            payload: vec![0; 65_536],
        }],
    };
    let mut buf = vec![0u8; big.buffer_len()];
    assert_eq!(
        big.emit(&mut buf),
        Err(WireError::TrunkEntryTooLong { len: 65_536 })
    );
}

/// PROTOCOL.md 2.5 "An entry longer than the remaining bytes ends parsing":
/// the iterator yields the whole entries, then one error, then nothing.
#[test]
fn trunk_entries_stop_at_a_truncated_entry() {
    let whole_nots = [0x42, 0x69, 0x00, 0x02, 0xaa, 0xbb];
    let whole_ts = [0x00, 0x02, 0x09, 0x29, 0x07, 0xcf, 0xaa, 0xbb];
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        // No timestamps, second entry's header cut short (3 of 4 bytes).
        (
            cat(&[&[0, 0, 1, 0, 0, 0, 0, 0], &whole_nots, &[0x42, 0x6a, 0x00]]),
            truncated(Structure::TrunkEntry, 14, 4, 3),
        ),
        // No timestamps, second entry says 5 bytes, 2 present.
        (
            cat(&[
                &[0, 0, 1, 0, 0, 0, 0, 0],
                &whole_nots,
                &[0x42, 0x6a, 0x00, 0x05, 0x01, 0x02],
            ]),
            truncated(Structure::TrunkEntry, 14, 9, 6),
        ),
        // Timestamps, second entry's header cut short (5 of 6 bytes).
        (
            cat(&[
                &[0, 0, 1, 1, 0, 0, 0, 0],
                &whole_ts,
                &[0x00, 0x05, 0x09, 0x2a, 0x05],
            ]),
            truncated(Structure::TrunkEntry, 16, 6, 5),
        ),
        // Timestamps, second entry says 5 bytes, 2 present.
        (
            cat(&[
                &[0, 0, 1, 1, 0, 0, 0, 0],
                &whole_ts,
                &[0x00, 0x05, 0x09, 0x2a, 0x05, 0xdb, 0x01, 0x02],
            ]),
            truncated(Structure::TrunkEntry, 16, 11, 8),
        ),
    ];
    for (bytes, err) in cases {
        let f = MetaTrunkFrame::new_checked(&bytes[..]).expect("the header is whole");
        let mut it = f.entries();
        let first = it
            .next()
            .expect("one entry")
            .expect("the first entry is whole");
        assert_eq!(first.payload, &[0xaa, 0xbb]);
        assert_eq!(
            first.call_number,
            cn(if f.command_data() == 0 { 17001 } else { 2345 })
        );
        assert_eq!(it.next(), Some(Err(err.clone())), "{bytes:02x?}");
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None, "stays done");
        assert_eq!(f.entry_at(first.location.end()), Some(Err(err.clone())));
        assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Err(err.clone()));
        assert_eq!(FrameRepr::parse(&bytes), Err(err));
        // The view itself is still usable (the relay forwards whole entries).
        assert!(Frame::parse(&bytes).is_ok());
    }
}

// ---------------------------------------------------------------------------
// Information elements (PROTOCOL.md 9, 9.1; RFC 5456 8.6)
// ---------------------------------------------------------------------------

/// Every typed constructor of `Ie`, with the bytes PROTOCOL.md 9 gives.
#[test]
fn ie_constructors_encode_per_section_9() {
    let v4: SocketAddr = "192.0.2.10:4569".parse().expect("literal");
    let v6: SocketAddr = "[2001:db8::1]:4569".parse().expect("literal");
    let cases: Vec<(Ie, Vec<u8>)> = vec![
        (
            Ie::new(IeType::Unknown(0xff), [0x01, 0x02]).expect("short"),
            vec![0xff, 0x02, 0x01, 0x02],
        ),
        (Ie::empty(IeType::AutoAnswer), vec![0x19, 0x00]),
        (
            Ie::string(IeType::CalledNumber, "2001").expect("short"),
            cat(&[&[0x01, 0x04], b"2001"]),
        ),
        (
            Ie::string(IeType::Username, "siteA").expect("short"),
            cat(&[&[0x06, 0x05], b"siteA"]),
        ),
        (Ie::u8(IeType::CauseCode, 16), vec![0x2a, 0x01, 0x10]),
        (Ie::u8(IeType::IaxUnknown, 0x2a), vec![0x17, 0x01, 0x2a]),
        (Ie::u16(IeType::Refresh, 60), vec![0x13, 0x02, 0x00, 0x3c]),
        (
            Ie::u32(IeType::TransferId, 0x0102_0304),
            vec![0x1b, 0x04, 0x01, 0x02, 0x03, 0x04],
        ),
        (
            Ie::versioned_u64(IeType::Format2, 0x0102_0304_0506_0708),
            vec![0x38, 0x09, 0x00, 1, 2, 3, 4, 5, 6, 7, 8],
        ),
        (Ie::version(), vec![0x0b, 0x02, 0x00, 0x02]),
        (
            Ie::format(MediaFormat::OPUS | MediaFormat::ULAW),
            vec![0x09, 0x04, 0x00, 0x00, 0x00, 0x04],
        ),
        (
            Ie::format2(MediaFormat::OPUS | MediaFormat::ULAW),
            vec![0x38, 0x09, 0x00, 0, 0, 0, 0x04, 0, 0, 0, 0x04],
        ),
        (
            Ie::capability(MediaFormat::OPUS | MediaFormat::G729),
            vec![0x08, 0x04, 0x00, 0x00, 0x01, 0x00],
        ),
        (
            Ie::capability2(MediaFormat::OPUS | MediaFormat::G729),
            vec![0x37, 0x09, 0x00, 0, 0, 0, 0x04, 0, 0, 0x01, 0x00],
        ),
        (
            Ie::auth_methods(AuthMethods::MD5 | AuthMethods::RSA),
            vec![0x0e, 0x02, 0x00, 0x06],
        ),
        (
            Ie::encryption(Encryption::AES128 | Encryption::KEY_ROTATION),
            vec![0x2b, 0x02, 0x80, 0x01],
        ),
        // 9.1: sockaddr_in, family little-endian `02 00`, port BE, 8 zeros.
        (
            Ie::apparent_addr(ApparentAddr::new(v4)),
            vec![
                0x12, 0x10, 0x02, 0x00, 0x11, 0xd9, 0xc0, 0x00, 0x02, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (
            Ie::apparent_addr(ApparentAddr {
                addr: v4,
                family_order: FamilyOrder::Big,
            }),
            vec![
                0x12, 0x10, 0x00, 0x02, 0x11, 0xd9, 0xc0, 0x00, 0x02, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        // 9.1: sockaddr_in6, 28 bytes: family `0a 00`, port, flowinfo,
        // address, scope id.
        (
            Ie::apparent_addr(ApparentAddr::new(v6)),
            vec![
                0x12, 0x1c, 0x0a, 0x00, 0x11, 0xd9, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0,
            ],
        ),
        // 9.1 DATETIME: 2026-11-27 17:53:42 = 897289909.
        (
            Ie::datetime(IaxDateTime {
                year: 2026,
                month: 11,
                day: 27,
                hour: 17,
                minute: 53,
                second: 42,
            }),
            vec![0x1f, 0x04, 0x35, 0x7b, 0x8e, 0xb5],
        ),
        (Ie::callno(CallNumber::MAX), vec![0x15, 0x02, 0x7f, 0xff]),
        (Ie::calltoken(b"").expect("empty"), vec![0x36, 0x00]),
        (
            Ie::calltoken(b"t?h").expect("short"),
            vec![0x36, 0x03, b't', b'?', b'h'],
        ),
    ];
    for (ie, bytes) in cases {
        assert_eq!(ie.buffer_len(), bytes.len(), "{ie:?}");
        assert_eq!(ie.ie_type(), IeType::from(bytes[0]));
        assert_eq!(ie.data(), &bytes[2..]);
        assert_emits(&bytes, |b| ie.emit(b));
        // And back: the block of one IE parses to the same IE.
        assert_eq!(IeList::parse(&bytes), Ok(IeList::new().with(ie.clone())));
    }
}

/// PROTOCOL.md 9: data is at most 255 bytes (one-byte length field).
#[test]
fn ie_longer_than_255_is_refused() {
    let max = Ie::new(IeType::Variable, vec![b'x'; 255]).expect("255 bytes fit");
    let mut expected = vec![0x34, 0xff];
    expected.extend_from_slice(&[b'x'; 255]);
    assert_emits(&expected, |b| max.emit(b));

    let too_long = WireError::IeTooLong {
        ie: IeType::Variable,
        len: 256,
    };
    assert_eq!(
        Ie::new(IeType::Variable, vec![0; 256]),
        Err(too_long.clone())
    );
    assert_eq!(
        Ie::string(IeType::Variable, &"x".repeat(256)),
        Err(too_long)
    );
    assert_eq!(
        Ie::calltoken(&[b'0'; 256]),
        Err(WireError::IeTooLong {
            ie: IeType::CallToken,
            len: 256
        })
    );
}

/// A block exercising every typed accessor of `IeLookup` (PROTOCOL.md 9).
fn accessor_block() -> Vec<u8> {
    cat(&[
        &[0x01, 0x04],
        b"2001", // CALLED NUMBER
        &[0x02, 0x04],
        b"1001", // CALLING NUMBER
        &[0x04, 0x05],
        b"Alice", // CALLING NAME
        &[0x05, 0x07],
        b"default", // CALLED CONTEXT
        &[0x06, 0x05],
        b"siteA", // USERNAME
        &[0x07, 0x06],
        b"s3cret",                 // PASSWORD
        &[0x0b, 0x02, 0x00, 0x02], // VERSION 2
        &[0x0e, 0x02, 0x00, 0x03], // AUTHMETHODS plaintext|MD5
        &[0x0f, 0x09],
        b"214748364", // CHALLENGE
        &[0x10, 0x20],
        b"0c5b82d1f207f433199e2c3652d875d7", // MD5 RESULT
        &[0x11, 0x04],
        b"QUJD", // RSA RESULT
        &[
            0x12, 0x10, 0x02, 0x00, 0x11, 0xdb, 0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
        ], // APPARENT ADDR 127.0.0.1:4571
        &[0x13, 0x02, 0x00, 0x3c], // REFRESH 60
        &[0x15, 0x02, 0x09, 0x29], // CALLNO 2345
        &[0x16, 0x0c],
        b"Normal Clear",                       // CAUSE
        &[0x17, 0x01, 0x2a],                   // IAX UNKNOWN 42
        &[0x1b, 0x04, 0x00, 0x00, 0x30, 0x39], // TRANSFERID 12345
        &[0x1f, 0x04, 0x35, 0x7b, 0x8e, 0xb5], // DATETIME
        &[0x2a, 0x01, 0x10],                   // CAUSECODE 16
        &[0x2b, 0x02, 0x80, 0x01],             // ENCRYPTION
        &[0x2d, 0x02],
        b"DE",                                             // CODEC_PREFS
        &[0x36, 0x00],                                     // CALLTOKEN request
        &[0x09, 0x04, 0x00, 0x00, 0x00, 0x04],             // FORMAT u-law
        &[0x38, 0x09, 0x00, 0, 0, 0, 0x04, 0, 0, 0, 0x04], // FORMAT2 Opus|u-law
        &[0x08, 0x04, 0x00, 0x00, 0x00, 0x0c],             // CAPABILITY
        &[0x37, 0x09, 0x00, 0, 0, 0, 0x04, 0, 0, 0, 0x0c], // CAPABILITY2
        &[0x18, 0x02, 0x01, 0x02],                         // MSGCOUNT
        &[0x34, 0x03],
        b"a=1", // VARIABLE
        &[0x34, 0x03],
        b"b=2", // VARIABLE again (find returns the first)
    ])
}

fn check_all_accessors<L: IeLookup>(ies: &L) {
    assert_eq!(ies.find(IeType::CalledNumber), Some(&b"2001"[..]));
    assert_eq!(ies.find(IeType::Variable), Some(&b"a=1"[..]));
    assert_eq!(ies.find(IeType::Language), None);
    assert!(ies.contains(IeType::CallToken));
    assert!(!ies.contains(IeType::AutoAnswer));
    assert_eq!(ies.str_ie(IeType::Variable), Ok(Some("a=1")));
    assert_eq!(ies.u8_ie(IeType::CauseCode), Ok(Some(16)));
    assert_eq!(ies.u16_ie(IeType::MsgCount), Ok(Some(0x0102)));
    assert_eq!(ies.u32_ie(IeType::TransferId), Ok(Some(12_345)));
    assert_eq!(ies.called_number(), Ok(Some("2001")));
    assert_eq!(ies.calling_number(), Ok(Some("1001")));
    assert_eq!(ies.calling_name(), Ok(Some("Alice")));
    assert_eq!(ies.called_context(), Ok(Some("default")));
    assert_eq!(ies.username(), Ok(Some("siteA")));
    assert_eq!(ies.password(), Ok(Some("s3cret")));
    assert_eq!(ies.version(), Ok(Some(2)));
    assert_eq!(
        ies.format(),
        Ok(Some(MediaFormat::OPUS | MediaFormat::ULAW)),
        "FORMAT2 wins over FORMAT"
    );
    assert_eq!(
        ies.capability(),
        Ok(Some(
            MediaFormat::OPUS | MediaFormat::ULAW | MediaFormat::ALAW
        )),
        "CAPABILITY2 wins over CAPABILITY"
    );
    let auth = ies.auth_methods().expect("well formed").expect("present");
    assert_eq!(auth, AuthMethods::PLAINTEXT | AuthMethods::MD5);
    assert!(auth.contains(AuthMethods::MD5));
    assert!(!auth.contains(AuthMethods::RSA));
    assert_eq!(ies.challenge(), Some(&b"214748364"[..]));
    assert_eq!(
        ies.md5_result(),
        Ok(Some("0c5b82d1f207f433199e2c3652d875d7"))
    );
    assert_eq!(ies.rsa_result(), Ok(Some("QUJD")));
    assert_eq!(
        ies.apparent_addr(),
        Ok(Some(ApparentAddr {
            addr: "127.0.0.1:4571".parse().expect("literal"),
            family_order: FamilyOrder::Little,
        }))
    );
    assert_eq!(ies.refresh(), Ok(Some(60)));
    assert_eq!(ies.callno(), Ok(Some(cn(2345))));
    assert_eq!(ies.cause(), Ok(Some("Normal Clear")));
    assert_eq!(ies.causecode(), Ok(Some(16)));
    assert_eq!(ies.iax_unknown(), Ok(Some(42)));
    assert_eq!(ies.calltoken(), Some(&[][..]), "empty CALLTOKEN = request");
    assert_eq!(
        ies.datetime(),
        Ok(Some(IaxDateTime {
            year: 2026,
            month: 11,
            day: 27,
            hour: 17,
            minute: 53,
            second: 42
        }))
    );
    let enc = ies.encryption().expect("well formed").expect("present");
    assert_eq!(enc, Encryption::AES128 | Encryption::KEY_ROTATION);
    assert!(enc.contains(Encryption::KEY_ROTATION));
    assert_eq!(ies.transfer_id(), Ok(Some(12_345)));
    assert_eq!(ies.codec_prefs(), Ok(Some("DE")));
    assert_eq!(ies.receiver_report(), Ok(None));
}

fn check_all_absent<L: IeLookup>(ies: &L) {
    assert_eq!(ies.find(IeType::CalledNumber), None);
    assert_eq!(ies.called_number(), Ok(None));
    assert_eq!(ies.calling_number(), Ok(None));
    assert_eq!(ies.calling_name(), Ok(None));
    assert_eq!(ies.called_context(), Ok(None));
    assert_eq!(ies.username(), Ok(None));
    assert_eq!(ies.password(), Ok(None));
    assert_eq!(ies.version(), Ok(None));
    assert_eq!(ies.format(), Ok(None));
    assert_eq!(ies.capability(), Ok(None));
    assert_eq!(ies.auth_methods(), Ok(None));
    assert_eq!(ies.challenge(), None);
    assert_eq!(ies.md5_result(), Ok(None));
    assert_eq!(ies.rsa_result(), Ok(None));
    assert_eq!(ies.apparent_addr(), Ok(None));
    assert_eq!(ies.refresh(), Ok(None));
    assert_eq!(ies.callno(), Ok(None));
    assert_eq!(ies.cause(), Ok(None));
    assert_eq!(ies.causecode(), Ok(None));
    assert_eq!(ies.iax_unknown(), Ok(None));
    assert_eq!(ies.calltoken(), None);
    assert_eq!(ies.datetime(), Ok(None));
    assert_eq!(ies.encryption(), Ok(None));
    assert_eq!(ies.transfer_id(), Ok(None));
    assert_eq!(ies.codec_prefs(), Ok(None));
    assert_eq!(ies.receiver_report(), Ok(None));
}

/// Every typed accessor of `IeLookup`, on the borrowed `IeBlock` and on the
/// owned `IeList` (PROTOCOL.md 9, 9.1).
#[test]
fn ie_lookup_typed_accessors() {
    let bytes = accessor_block();
    let block = IeBlock::new_checked(&bytes).expect("whole IEs");
    assert_eq!(block.as_bytes(), &bytes[..]);
    assert_eq!(block.iter().count(), 29);
    check_all_accessors(&block);
    let list = IeList::parse(&bytes).expect("whole IEs");
    assert_eq!(list.len(), 29);
    check_all_accessors(&list);
    assert_emits(&bytes, |b| list.emit(b));

    check_all_absent(&IeBlock::new_checked(&[]).expect("empty block"));
    check_all_absent(&IeList::new());
    // Unknown IE types are skipped by lookups.
    check_all_absent(&IeList::parse(&[0xff, 0x01, 0x00, 0x3a, 0x00]).expect("whole IEs"));
}

/// PROTOCOL.md 9: "When both FORMAT and FORMAT2 are present the 64-bit one
/// wins"; 9.1: "Other versions are ignored" (fall back to the 32-bit IE).
#[test]
fn ie_format2_precedence() {
    let format = [0x09, 0x04, 0x00, 0x00, 0x00, 0x08]; // a-law
    let format2 = [0x38, 0x09, 0x00, 0, 0, 0, 0x04, 0, 0, 0, 0x04]; // Opus|u-law
    let format2_v1 = [0x38, 0x09, 0x01, 0, 0, 0, 0x04, 0, 0, 0, 0x04];
    let format2_short = [0x38, 0x08, 0x00, 0, 0, 0, 0x04, 0, 0, 0];
    let format_short = [0x09, 0x03, 0x00, 0x00, 0x08];
    let alaw = Some(MediaFormat::ALAW);
    let wide = Some(MediaFormat::OPUS | MediaFormat::ULAW);
    let cases: Vec<(Vec<u8>, trunk_core::wire::Result<Option<MediaFormat>>)> = vec![
        (format.to_vec(), Ok(alaw)),
        (format2.to_vec(), Ok(wide)),
        (cat(&[&format, &format2]), Ok(wide)),
        (cat(&[&format2, &format]), Ok(wide)),
        (cat(&[&format2_v1, &format]), Ok(alaw)),
        (format2_v1.to_vec(), Ok(None)),
        (cat(&[&format2_short, &format]), Ok(alaw)),
        (cat(&[&format_short, &format2]), Ok(wide)),
        (
            format_short.to_vec(),
            Err(WireError::IeBadLength {
                ie: IeType::Format,
                expected: "4",
                got: 3,
            }),
        ),
    ];
    for (bytes, expected) in cases {
        let block = IeBlock::new_checked(&bytes).expect("whole IEs");
        assert_eq!(block.format(), expected, "{bytes:02x?}");
        assert_eq!(IeList::parse(&bytes).expect("whole").format(), expected);
        // The same rules hold for CAPABILITY (0x08) / CAPABILITY2 (0x37).
        let caps: Vec<u8> = {
            let mut b = bytes.clone();
            let mut i = 0;
            while i < b.len() {
                b[i] = match b[i] {
                    0x09 => 0x08,
                    _ => 0x37,
                };
                i += 2 + usize::from(b[i + 1]);
            }
            b
        };
        let caps_expected = expected.clone().map_err(|_| WireError::IeBadLength {
            ie: IeType::Capability,
            expected: "4",
            got: 3,
        });
        assert_eq!(
            IeBlock::new_checked(&caps).expect("whole").capability(),
            caps_expected,
            "{caps:02x?}"
        );
    }
    assert_eq!(
        decode_versioned_u64(IeType::Format2, &format2_v1[2..]),
        Err(WireError::IeBadValue {
            ie: IeType::Format2,
            why: "unknown version (only 0 is defined)"
        })
    );
    assert_eq!(
        decode_versioned_u64(IeType::Format2, &format2_short[2..]),
        Err(WireError::IeBadLength {
            ie: IeType::Format2,
            expected: "9",
            got: 8
        })
    );
}

/// PROTOCOL.md 9.1 APPARENT ADDR: little-endian family (what Asterisk
/// sends), big-endian accepted, IPv6 28 bytes; anything else refused.
#[test]
fn ie_apparent_addr_variants() {
    let v4 = |fam: [u8; 2]| {
        cat(&[
            &[0x12, 0x10],
            &fam,
            &[0x11, 0xd9, 0xc0, 0x00, 0x02, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0],
        ])
    };
    let addr: SocketAddr = "192.0.2.10:4569".parse().expect("literal");
    for (fam, order) in [
        ([0x02, 0x00], FamilyOrder::Little),
        ([0x00, 0x02], FamilyOrder::Big),
    ] {
        let bytes = v4(fam);
        let got = IeList::parse(&bytes)
            .expect("whole")
            .apparent_addr()
            .expect("valid")
            .expect("present");
        assert_eq!(got.addr, addr);
        assert_eq!(got.family_order, order);
        assert_eq!(got.buffer_len(), 16);
        // Re-emitting keeps the order it was received in.
        assert_emits(&bytes, |b| Ie::apparent_addr(got).emit(b));
    }

    // IPv6 with flowinfo and scope id; the scope id follows the family's
    // byte order (it is host order in the raw sockaddr_in6).
    let v6 = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::1".parse().expect("literal"),
        4569,
        0x0001_2345,
        3,
    ));
    let le = cat(&[
        &[0x12, 0x1c, 0x0a, 0x00, 0x11, 0xd9, 0x00, 0x01, 0x23, 0x45],
        &[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ],
        &[0x03, 0x00, 0x00, 0x00],
    ]);
    let be = cat(&[
        &[0x12, 0x1c, 0x00, 0x0a, 0x11, 0xd9, 0x00, 0x01, 0x23, 0x45],
        &[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ],
        &[0x00, 0x00, 0x00, 0x03],
    ]);
    for (bytes, order) in [(le, FamilyOrder::Little), (be, FamilyOrder::Big)] {
        let want = ApparentAddr {
            addr: v6,
            family_order: order,
        };
        let block = IeBlock::new_checked(&bytes).expect("whole");
        assert_eq!(block.apparent_addr(), Ok(Some(want)));
        assert_eq!(want.buffer_len(), 28);
        assert_emits(&bytes, |b| Ie::apparent_addr(want).emit(b));
    }

    let bad_len = |got| {
        Err(WireError::IeBadLength {
            ie: IeType::ApparentAddr,
            expected: "16 (IPv4) or 28 (IPv6)",
            got,
        })
    };
    // IPv4 family with the IPv6 length, and the reverse, and short data.
    let mut v4_as_28 = v4([0x02, 0x00]);
    v4_as_28[1] = 28;
    v4_as_28.extend_from_slice(&[0; 12]);
    assert_eq!(
        IeList::parse(&v4_as_28).expect("whole").apparent_addr(),
        bad_len(28)
    );
    assert_eq!(
        IeList::parse(&[0x12, 0x01, 0x02])
            .expect("whole")
            .apparent_addr(),
        bad_len(1)
    );
    assert_eq!(
        IeList::parse(&[0x12, 0x00]).expect("whole").apparent_addr(),
        bad_len(0)
    );
    let odd_family = v4([0x07, 0x00]);
    assert_eq!(
        IeList::parse(&odd_family).expect("whole").apparent_addr(),
        Err(WireError::IeBadValue {
            ie: IeType::ApparentAddr,
            why: "address family is neither AF_INET nor AF_INET6"
        })
    );
}

/// PROTOCOL.md 9: ENCRYPTION is 2 bytes from Asterisk, 1 in the RFC diagram;
/// both are accepted.
#[test]
fn ie_encryption_one_and_two_bytes() {
    let cases: &[(&[u8], trunk_core::wire::Result<Option<Encryption>>)] = &[
        (&[0x2b, 0x01, 0x01], Ok(Some(Encryption::AES128))),
        (&[0x2b, 0x02, 0x00, 0x01], Ok(Some(Encryption::AES128))),
        (
            &[0x2b, 0x02, 0x80, 0x01],
            Ok(Some(Encryption::from_bits(0x8001))),
        ),
        (
            &[0x2b, 0x03, 0x00, 0x00, 0x01],
            Err(WireError::IeBadLength {
                ie: IeType::Encryption,
                expected: "2",
                got: 3,
            }),
        ),
        (
            &[0x2b, 0x00],
            Err(WireError::IeBadLength {
                ie: IeType::Encryption,
                expected: "2",
                got: 0,
            }),
        ),
    ];
    for (bytes, expected) in cases {
        let block = IeBlock::new_checked(bytes).expect("whole");
        assert_eq!(&block.encryption(), expected, "{bytes:02x?}");
    }
    assert_eq!(Encryption::from_bits(0x8001).bits(), 0x8001);
}

/// PROTOCOL.md 9, 12: an empty CALLTOKEN asks for a token, a non-empty one
/// carries it.
#[test]
fn ie_calltoken_empty_vs_token() {
    let request = IeBlock::new_checked(&[0x36, 0x00]).expect("whole");
    assert_eq!(request.calltoken(), Some(&[][..]));
    let token = cat(&[&[0x36, 0x33], TOKEN]);
    let block = IeBlock::new_checked(&token).expect("whole");
    assert_eq!(block.calltoken(), Some(TOKEN));
    assert_eq!(IeList::new().calltoken(), None);
}

/// PROTOCOL.md 9 RR_* IEs of a PONG (46-51).
#[test]
fn ie_receiver_report() {
    let bytes = [
        0x2e, 0x04, 0x00, 0x00, 0x00, 0x05, // RR_JITTER 5
        0x2f, 0x04, 0x05, 0x00, 0x00, 0x10, // RR_LOSS 5 %, 16 frames
        0x30, 0x04, 0x00, 0x00, 0x01, 0xf4, // RR_PKTS 500
        0x31, 0x02, 0x00, 0x28, // RR_DELAY 40 ms
        0x32, 0x04, 0x00, 0x00, 0x00, 0x02, // RR_DROPPED 2
        0x33, 0x04, 0x00, 0x00, 0x00, 0x01, // RR_OOO 1
    ];
    let rr = IeBlock::new_checked(&bytes)
        .expect("whole")
        .receiver_report()
        .expect("well formed")
        .expect("present");
    assert_eq!(
        rr,
        ReceiverReport {
            jitter: Some(5),
            loss: Some(0x0500_0010),
            packets: Some(500),
            delay_ms: Some(40),
            dropped: Some(2),
            out_of_order: Some(1),
        }
    );
    assert_eq!(rr.loss_percent(), Some(5));
    assert_eq!(rr.lost_frames(), Some(16));
    let list: IeList = [
        Ie::u32(IeType::RrJitter, 5),
        Ie::u32(IeType::RrLoss, 0x0500_0010),
        Ie::u32(IeType::RrPkts, 500),
        Ie::u16(IeType::RrDelay, 40),
        Ie::u32(IeType::RrDropped, 2),
        Ie::u32(IeType::RrOoo, 1),
    ]
    .into_iter()
    .collect();
    assert_emits(&bytes, |b| list.emit(b));

    // One RR IE is enough for a report.
    let partial = IeBlock::new_checked(&[0x30, 0x04, 0, 0, 0, 7]).expect("whole");
    assert_eq!(
        partial.receiver_report(),
        Ok(Some(ReceiverReport {
            packets: Some(7),
            ..ReceiverReport::default()
        }))
    );
    // A malformed one is an error.
    let bad = IeBlock::new_checked(&[0x31, 0x04, 0, 0, 0, 40]).expect("whole");
    assert_eq!(
        bad.receiver_report(),
        Err(WireError::IeBadLength {
            ie: IeType::RrDelay,
            expected: "2",
            got: 4
        })
    );
}

/// PROTOCOL.md 9: a fixed-size IE of the wrong length is `IeBadLength`; a
/// string that is not UTF-8 is `IeBadValue`; CALLNO above 15 bits is
/// `IeBadValue`.
#[test]
fn ie_value_errors() {
    fn bad_len<T>(ie: IeType, expected: &'static str, got: usize) -> Result<T, WireError> {
        Err(WireError::IeBadLength { ie, expected, got })
    }
    let block = |b: &'static [u8]| IeBlock::new_checked(b).expect("whole IEs");
    assert_eq!(
        block(&[0x0b, 0x03, 0x00, 0x00, 0x02]).version(),
        bad_len(IeType::Version, "2", 3)
    );
    assert_eq!(
        block(&[0x0b, 0x01, 0x02]).version(),
        bad_len(IeType::Version, "2", 1)
    );
    assert_eq!(
        block(&[0x2a, 0x02, 0x00, 0x10]).causecode(),
        bad_len(IeType::CauseCode, "1", 2)
    );
    assert_eq!(
        block(&[0x17, 0x00]).iax_unknown(),
        bad_len(IeType::IaxUnknown, "1", 0)
    );
    assert_eq!(
        block(&[0x13, 0x04, 0, 0, 0, 60]).refresh(),
        bad_len(IeType::Refresh, "2", 4)
    );
    assert_eq!(
        block(&[0x1f, 0x03, 0, 0, 0]).datetime(),
        bad_len(IeType::DateTime, "4", 3)
    );
    assert_eq!(
        block(&[0x0e, 0x01, 0x02]).auth_methods(),
        bad_len(IeType::AuthMethods, "2", 1)
    );
    assert_eq!(
        block(&[0x15, 0x01, 0x02]).callno(),
        bad_len(IeType::CallNo, "2", 1)
    );
    assert_eq!(
        block(&[0x1b, 0x02, 0x00, 0x01]).transfer_id(),
        bad_len(IeType::TransferId, "4", 2)
    );
    assert_eq!(
        block(&[0x15, 0x02, 0x80, 0x00]).callno(),
        Err(WireError::IeBadValue {
            ie: IeType::CallNo,
            why: "call number above 32767"
        })
    );
    let not_utf8 = |ie| {
        Err(WireError::IeBadValue {
            ie,
            why: "not UTF-8",
        })
    };
    assert_eq!(
        block(&[0x01, 0x02, 0xff, 0xfe]).called_number(),
        not_utf8(IeType::CalledNumber)
    );
    assert_eq!(
        block(&[0x06, 0x01, 0x80]).username(),
        not_utf8(IeType::Username)
    );
    assert_eq!(
        block(&[0x10, 0x02, 0xc3, 0x28]).md5_result(),
        not_utf8(IeType::Md5Result)
    );
    // CHALLENGE and CALLTOKEN are raw: any bytes are fine.
    assert_eq!(block(&[0x0f, 0x01, 0xff]).challenge(), Some(&[0xff][..]));
    assert_eq!(block(&[0x36, 0x01, 0xff]).calltoken(), Some(&[0xff][..]));
}

/// PROTOCOL.md 9 "A frame's IE block must end exactly on an IE boundary":
/// the iterator yields the whole IEs, then one `Truncated` with the offset
/// of the cut IE in the block; `FullFrameRepr::parse` reports the offset in
/// the datagram.
#[test]
fn ie_block_ending_mid_ie() {
    // VERSION, then CALLED NUMBER announcing 4 bytes with 2 present.
    let cut_data = [0x0b, 0x02, 0x00, 0x02, 0x01, 0x04, 0x32, 0x30];
    // VERSION, then a lone type byte.
    let cut_header = [0x0b, 0x02, 0x00, 0x02, 0x01];
    for (block, err) in [
        (&cut_data[..], truncated(Structure::Ie, 4, 6, 4)),
        (&cut_header[..], truncated(Structure::Ie, 4, 2, 1)),
    ] {
        let mut it = IeIter::new(block);
        assert_eq!(
            it.next(),
            Some(Ok(IeRef {
                ie_type: IeType::Version,
                data: &[0x00, 0x02]
            }))
        );
        assert_eq!(it.next(), Some(Err(err.clone())));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        assert_eq!(IeList::parse(block), Err(err.clone()));
        assert_eq!(IeBlock::new_checked(block), Err(err.clone()));

        // Inside an IAX full frame the offset is the datagram's.
        let frame = cat(&[&ACK_BYTES, block]);
        let WireError::Truncated {
            what,
            offset,
            needed,
            got,
        } = err
        else {
            unreachable!("built as Truncated above")
        };
        assert_eq!(
            FullFrameRepr::parse(&frame),
            Err(truncated(what, offset + 12, needed, got))
        );
        // The view builds, and its IE iterator reports the block offset.
        let view = FullFrame::new_checked(&frame[..]).expect("header is whole");
        assert_eq!(
            view.ies().last(),
            Some(Err(truncated(what, offset, needed, got)))
        );
        // Any other frame type keeps the same bytes as an opaque payload.
        let mut text = frame.clone();
        text[10] = FrameType::Text.code();
        assert_eq!(
            FullFrameRepr::parse(&text).map(|r| r.payload),
            Ok(FullFramePayload::Raw(block.to_vec()))
        );
    }
    // A single byte block.
    assert_eq!(
        IeList::parse(&[0x01]),
        Err(truncated(Structure::Ie, 0, 2, 1))
    );
}

/// `IeList` helpers used by the relay to build frames.
#[test]
fn ie_list_editing() {
    let mut list = IeList::new();
    assert!(list.is_empty());
    list.push(Ie::version())
        .push(Ie::u16(IeType::Refresh, 60))
        .push(Ie::empty(IeType::CallToken));
    list.set(Ie::calltoken(b"tok").expect("short"));
    list.set(Ie::u8(IeType::CauseCode, 16));
    let expected = [
        0x0b, 0x02, 0x00, 0x02, 0x13, 0x02, 0x00, 0x3c, 0x36, 0x03, b't', b'o', b'k', 0x2a, 0x01,
        0x10,
    ];
    assert_eq!(list.len(), 4);
    assert_eq!(list.buffer_len(), expected.len());
    assert_emits(&expected, |b| list.emit(b));
    let types: Vec<IeType> = list.iter().map(Ie::ie_type).collect();
    assert_eq!(
        types,
        [
            IeType::Version,
            IeType::Refresh,
            IeType::CallToken,
            IeType::CauseCode
        ]
    );
}

// ---------------------------------------------------------------------------
// In-place rewriting (PROTOCOL.md 17: rewrite bytes 0-3 / 0-1 only)
// ---------------------------------------------------------------------------

/// PROTOCOL.md 17: "Rewrite only bytes 0-3 of full frames (keep F and R
/// bits)".
#[test]
fn full_frame_rewrite_call_numbers_in_place() {
    for r_bit in [false, true] {
        let mut bytes = new_with_token_bytes();
        if r_bit {
            bytes[2] |= 0x80;
        }
        let original = bytes.clone();
        let mut f = FullFrame::new_checked(&mut bytes[..]).expect("a full frame");
        f.rewrite_call_numbers(CallNumber::MAX, cn(0x0123));
        assert_eq!(f.source_call_number(), CallNumber::MAX);
        assert_eq!(f.dest_call_number(), cn(0x0123));
        assert_eq!(f.is_retransmission(), r_bit);
        let r = if r_bit { 0x80 } else { 0x00 };
        assert_eq!(&bytes[..4], &[0xff, 0xff, r | 0x01, 0x23]);
        assert_eq!(&bytes[4..], &original[4..], "only bytes 0-3 change");

        // The single-field setters keep the flag bits too.
        let mut f = FullFrame::new_checked(&mut bytes[..]).expect("a full frame");
        f.set_source_call_number(cn(1));
        f.set_dest_call_number(cn(0x7f00));
        assert_eq!(&bytes[..4], &[0x80, 0x01, r | 0x7f, 0x00]);
        assert_eq!(&bytes[4..], &original[4..]);

        let mut f = FullFrame::new_checked(&mut bytes[..]).expect("a full frame");
        f.set_retransmission(!r_bit);
        assert_eq!(&bytes[..4], &[0x80, 0x01, (r ^ 0x80) | 0x7f, 0x00]);
        assert_eq!(&bytes[4..], &original[4..]);
    }
}

/// PROTOCOL.md 17: "bytes 0-1 of minis"; 0 would turn it into a meta frame.
#[test]
fn mini_frame_set_source_call_number_in_place() {
    let mut bytes = [0x42, 0x69, 0x12, 0x34, 0xaa, 0xbb];
    let mut f = MiniFrame::new_checked(&mut bytes[..]).expect("a mini frame");
    f.set_source_call_number(cn(0x0929)).expect("non-zero");
    assert_eq!(bytes, [0x09, 0x29, 0x12, 0x34, 0xaa, 0xbb]);

    let mut f = MiniFrame::new_checked(&mut bytes[..]).expect("a mini frame");
    assert_eq!(
        f.set_source_call_number(CallNumber::UNKNOWN),
        Err(WireError::InvalidField {
            field: "mini frame source call number",
            why: "0 would make the datagram a meta frame"
        })
    );
    assert_eq!(bytes, [0x09, 0x29, 0x12, 0x34, 0xaa, 0xbb], "unchanged");

    let mut f = MiniFrame::new_checked(&mut bytes[..]).expect("a mini frame");
    f.set_source_call_number(CallNumber::MAX).expect("non-zero");
    f.set_timestamp(Timestamp16(0xfffe));
    f.payload_mut().copy_from_slice(&[0x01, 0x02]);
    assert_eq!(bytes, [0x7f, 0xff, 0xff, 0xfe, 0x01, 0x02]);
}

/// PROTOCOL.md 2.5: a timestamped entry is "length + a complete mini frame";
/// a supermini entry header is as long as a mini header, so both turn into
/// mini frames in place.
#[test]
fn trunk_entry_to_mini_frame_in_place() {
    // No timestamps: `c2 69 00 03 | 01 02 03` (flag set) then `42 6a 00 01 | 04`.
    let mut nots = [
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0xc2, 0x69, 0x00, 0x03, 0x01, 0x02, 0x03,
        0x42, 0x6a, 0x00, 0x01, 0x04,
    ];
    let locations: Vec<TrunkEntryLocation> = MetaTrunkFrame::new_checked(&nots[..])
        .expect("a meta trunk frame")
        .entries()
        .map(|e| e.expect("whole").location)
        .collect();
    let mut f = MetaTrunkFrame::new_checked(&mut nots[..]).expect("a meta trunk frame");
    let r0 = f
        .entry_to_mini_frame(locations[0], cn(0x0929), Timestamp16(0x07cf))
        .expect("converts");
    let r1 = f
        .entry_to_mini_frame(locations[1], cn(0x092a), Timestamp16(0x05db))
        .expect("converts");
    assert_eq!((r0.clone(), r1.clone()), (8..15, 15..20));
    assert_eq!(
        nots,
        [
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, // header untouched
            0x09, 0x29, 0x07, 0xcf, 0x01, 0x02, 0x03, // mini, flag gone
            0x09, 0x2a, 0x05, 0xdb, 0x04,
        ]
    );
    let mini = MiniFrameRepr::parse(&nots[r0]).expect("a mini frame");
    assert_eq!(
        mini,
        MiniFrameRepr {
            source_call_number: cn(0x0929),
            timestamp: Timestamp16(0x07cf),
            payload: vec![1, 2, 3]
        }
    );
    assert!(MiniFrame::new_checked(&nots[r1]).is_ok());

    // Timestamps: `00 03 09 29 07 cf | 01 02 03` then `00 01 09 2a 05 db | 04`.
    let mut ts = [
        0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x03, 0x09, 0x29, 0x07, 0xcf, 0x01,
        0x02, 0x03, 0x00, 0x01, 0x09, 0x2a, 0x05, 0xdb, 0x04,
    ];
    let locations: Vec<TrunkEntryLocation> = MetaTrunkFrame::new_checked(&ts[..])
        .expect("a meta trunk frame")
        .entries()
        .map(|e| e.expect("whole").location)
        .collect();
    let mut f = MetaTrunkFrame::new_checked(&mut ts[..]).expect("a meta trunk frame");
    let r0 = f
        .entry_to_mini_frame(locations[0], cn(17001), Timestamp16(0x07cf))
        .expect("converts");
    let r1 = f
        .entry_to_mini_frame(locations[1], cn(0x7fff), Timestamp16(0x1234))
        .expect("converts");
    assert_eq!((r0, r1), (10..17, 19..24));
    assert_eq!(
        ts,
        [
            0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x14, // header untouched
            0x00, 0x03, 0x42, 0x69, 0x07, 0xcf, 0x01, 0x02, 0x03, // length kept
            0x00, 0x01, 0x7f, 0xff, 0x12, 0x34, 0x04,
        ]
    );

    // Call number 0 is refused and nothing changes.
    let before = ts;
    let mut f = MetaTrunkFrame::new_checked(&mut ts[..]).expect("a meta trunk frame");
    assert!(matches!(
        f.entry_to_mini_frame(locations[0], CallNumber::UNKNOWN, Timestamp16(0)),
        Err(WireError::InvalidField { .. })
    ));
    assert_eq!(ts, before);
}

// ---------------------------------------------------------------------------
// TrunkFrameBuilder (PROTOCOL.md 2.5, 13.2)
// ---------------------------------------------------------------------------

/// Builder output, byte for byte, in both layouts; bytes past the frame in
/// the caller's buffer are left alone.
#[test]
fn trunk_builder_exact_bytes() {
    let cases = [
        (
            TrunkLayout::NoTimestamps,
            vec![
                0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, // header
                0x42, 0x69, 0x00, 0x03, 0x01, 0x02, 0x03, // call, len, data
                0x42, 0x6a, 0x00, 0x02, 0x04, 0x05,
            ],
        ),
        (
            TrunkLayout::Timestamps,
            vec![
                0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x14, // header
                0x00, 0x03, 0x42, 0x69, 0x07, 0xcf, 0x01, 0x02, 0x03, // len, call, ts, data
                0x00, 0x02, 0x42, 0x6a, 0x05, 0xdb, 0x04, 0x05,
            ],
        ),
    ];
    for (layout, expected) in cases {
        for fill in FILLS {
            let mut buf = vec![fill; 64];
            let mut b = TrunkFrameBuilder::new(&mut buf, 1500, layout, 20).expect("fits");
            assert!(b.is_empty());
            assert_eq!(b.layout(), layout);
            assert_eq!(b.len(), 8);
            b.push(cn(17001), Timestamp16(0x07cf), &[1, 2, 3])
                .expect("fits");
            b.push(cn(17002), Timestamp16(0x05db), &[4, 5])
                .expect("fits");
            assert_eq!(b.entry_count(), 2);
            assert!(!b.is_empty());
            assert_eq!(b.as_bytes(), &expected[..]);
            let n = b.finish();
            assert_eq!(n, expected.len());
            assert_eq!(&buf[..n], &expected[..]);
            assert!(buf[n..].iter().all(|&x| x == fill));
        }
    }
}

/// PROTOCOL.md 13.2: an entry fits up to and including the MTU; the next
/// one is `Full`; one that cannot fit an empty frame is `TooLarge`; call
/// number 0 is refused; `reset` starts a new frame in the same buffer.
#[test]
fn trunk_builder_mtu_behaviour() {
    let mut buf = [0xa5u8; 64];
    let mtu = 8 + 2 * (4 + 10);
    let mut b = TrunkFrameBuilder::new(&mut buf, mtu, TrunkLayout::NoTimestamps, 0).expect("fits");
    assert!(b.fits(10));
    b.push(cn(2), Timestamp16(0), &[0x11; 10]).expect("fits");
    assert!(b.fits(10));
    assert!(!b.fits(11));
    b.push(cn(3), Timestamp16(0), &[0x22; 10]).expect("fits");
    assert_eq!(b.len(), mtu, "exactly the MTU");
    assert!(!b.fits(0));
    assert_eq!(
        b.push(cn(4), Timestamp16(0), &[0x33; 10]),
        Err(TrunkPushError::Full {
            entry_len: 14,
            limit: mtu
        })
    );
    assert_eq!(
        b.push(cn(4), Timestamp16(0), &[]),
        Err(TrunkPushError::Full {
            entry_len: 4,
            limit: mtu
        })
    );
    // Bigger than any frame of this MTU: 8 + 4 + 25 > 36.
    assert_eq!(
        b.push(cn(4), Timestamp16(0), &[0x44; 25]),
        Err(TrunkPushError::TooLarge {
            entry_len: 29,
            limit: mtu
        })
    );
    assert_eq!(
        b.push(CallNumber::UNKNOWN, Timestamp16(0), &[0x55]),
        Err(TrunkPushError::ZeroCallNumber)
    );
    assert_eq!(b.entry_count(), 2, "failed pushes add nothing");

    b.reset(0x0102_0304);
    assert!(b.is_empty());
    assert_eq!(b.len(), 8);
    assert_eq!(b.as_bytes(), &[0, 0, 1, 0, 1, 2, 3, 4]);
    // A single entry of exactly the MTU.
    b.push(cn(5), Timestamp16(0), &[0x66; 24])
        .expect("exactly the MTU");
    assert_eq!(b.len(), mtu);
    let n = b.finish();
    let frame = MetaTrunkFrameRepr::parse(&buf[..n]).expect("parses");
    assert_eq!(frame.trunk_timestamp, 0x0102_0304);
    assert_eq!(frame.entries.len(), 1);
    assert_eq!(frame.entries[0].payload, [0x66; 24]);
    assert!(
        buf[n..].iter().all(|&x| x == 0xa5),
        "the Full/TooLarge pushes wrote nothing"
    );

    // The limit is the smaller of MTU and buffer.
    let mut small = [0u8; 20];
    let mut b = TrunkFrameBuilder::new(&mut small, 1500, TrunkLayout::Timestamps, 0).expect("fits");
    assert_eq!(
        b.push(cn(2), Timestamp16(0), &[0; 7]),
        Err(TrunkPushError::TooLarge {
            entry_len: 13,
            limit: 20
        })
    );
    b.push(cn(2), Timestamp16(0), &[0; 6])
        .expect("exactly the buffer");
    assert_eq!(b.len(), 20);

    // Not even the header fits.
    let mut tiny = [0u8; 7];
    assert!(matches!(
        TrunkFrameBuilder::new(&mut tiny, 1500, TrunkLayout::NoTimestamps, 0),
        Err(WireError::BufferTooSmall { needed: 8, got: 7 })
    ));
    let mut big = [0u8; 64];
    assert!(matches!(
        TrunkFrameBuilder::new(&mut big, 7, TrunkLayout::NoTimestamps, 0),
        Err(WireError::BufferTooSmall { needed: 8, got: 7 })
    ));

    // A payload the 16-bit length cannot describe is TooLarge at any MTU.
    let mut huge = vec![0u8; 70_000];
    let mut b =
        TrunkFrameBuilder::new(&mut huge, usize::MAX, TrunkLayout::NoTimestamps, 0).expect("fits");
    assert!(!b.fits(65_536), "fits agrees with push");
    assert!(b.fits(65_535));
    assert_eq!(
        b.push(cn(2), Timestamp16(0), &[0; 65_536]),
        Err(TrunkPushError::TooLarge {
            entry_len: 65_540,
            limit: 70_000
        })
    );
    b.push(cn(2), Timestamp16(0), &[0; 65_535])
        .expect("largest length");
}

/// 50 G.711 entries (160 bytes, 20 ms) fit a 9000-byte jumbo MTU; the frame
/// parses back to the same entries.
#[test]
fn trunk_builder_fifty_g711_entries_in_jumbo_mtu() {
    for layout in [TrunkLayout::NoTimestamps, TrunkLayout::Timestamps] {
        let mut buf = vec![0u8; 9000];
        let mut b = TrunkFrameBuilder::new(&mut buf, 9000, layout, 1000).expect("fits");
        for i in 0..50u16 {
            let payload = [i as u8; 160];
            b.push(cn(16_384 + i), Timestamp16(20 * i), &payload)
                .expect("50 entries fit 9000 bytes");
        }
        let header = layout.entry_header_len();
        assert_eq!(b.len(), 8 + 50 * (header + 160));
        // It keeps filling until the MTU: (9000 - 8) / 164 = 54 (no ts),
        // (9000 - 8) / 166 = 54 (ts).
        let mut extra = 0;
        while b.push(cn(2), Timestamp16(0), &[0; 160]).is_ok() {
            extra += 1;
        }
        assert_eq!(50 + extra, 54);
        let n = b.finish();
        let frame = MetaTrunkFrameRepr::parse(&buf[..n]).expect("parses");
        assert_eq!(frame.layout(), layout);
        assert_eq!(frame.trunk_timestamp, 1000);
        assert_eq!(frame.entries.len(), 54);
        for (i, e) in frame.entries.iter().take(50).enumerate() {
            assert_eq!(e.call_number, cn(16_384 + i as u16));
            assert_eq!(e.payload, [i as u8; 160]);
            let ts = (layout == TrunkLayout::Timestamps).then_some(Timestamp16(20 * i as u16));
            assert_eq!(e.timestamp, ts);
        }
    }
}

/// PROTOCOL.md 13.2: with Asterisk's default `trunkmtu` 1240, u-law 20 ms
/// (164-byte entries) gives 7 entries per frame; G.729 20 ms about 51.
#[test]
fn trunk_builder_asterisk_trunkmtu_1240() {
    let per_frame = |layout, payload_len: usize| {
        let mut buf = [0u8; 1240];
        let mut b = TrunkFrameBuilder::new(&mut buf, 1240, layout, 0).expect("fits");
        let payload = vec![0xff; payload_len];
        let mut n = 0;
        loop {
            match b.push(cn(20_000 + n), Timestamp16(0), &payload) {
                Ok(()) => n += 1,
                Err(TrunkPushError::Full { .. }) => break,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(b.len() <= 1240);
        // After a flush the next frame takes the same number again.
        b.reset(20);
        let mut again = 0;
        while b.push(cn(2), Timestamp16(0), &payload).is_ok() {
            again += 1;
        }
        assert_eq!(again, n);
        n
    };
    assert_eq!(per_frame(TrunkLayout::NoTimestamps, 160), 7);
    assert_eq!(per_frame(TrunkLayout::Timestamps, 160), 7);
    assert_eq!(per_frame(TrunkLayout::NoTimestamps, 20), 51);
}

// ---------------------------------------------------------------------------
// Classification and kind errors (PROTOCOL.md 1)
// ---------------------------------------------------------------------------

/// PROTOCOL.md 1: the first-bytes table, in Asterisk's order.
#[test]
fn classify_first_bytes() {
    let cases: &[(&[u8], FrameKind)] = &[
        (&[0x00, 0x00, 0x80, 0x00], FrameKind::VideoMini),
        (&[0x00, 0x00, 0xff, 0xff, 0x00, 0x00], FrameKind::VideoMini),
        (&[0x00, 0x00, 0x01, 0x00], FrameKind::MetaTrunk),
        (&[0x00, 0x00, 0x01, 0x01], FrameKind::MetaTrunk),
        (&[0x00, 0x00, 0x00, 0x00], FrameKind::Meta),
        (&[0x00, 0x00, 0x02, 0x00], FrameKind::Meta),
        (&[0x00, 0x00, 0x7f, 0x00], FrameKind::Meta),
        (&[0x80, 0x00, 0x00, 0x00], FrameKind::Full),
        (&[0xff, 0xff, 0xff, 0xff], FrameKind::Full),
        (&[0x00, 0x01, 0x00, 0x00], FrameKind::Mini),
        (&[0x00, 0x80, 0x00, 0x00], FrameKind::Mini),
        (&[0x01, 0x00, 0x00, 0x00], FrameKind::Mini),
        (&[0x7f, 0xff, 0xff, 0xff], FrameKind::Mini),
    ];
    for &(bytes, kind) in cases {
        assert_eq!(classify(bytes), Ok(kind), "{bytes:02x?}");
    }
    // Midget packets (< 4 bytes) are refused whatever they hold.
    for bytes in [
        &[][..],
        &[0x80],
        &[0x00, 0x00],
        &[0x00, 0x00, 0x80],
        &[0x42, 0x69, 0x00],
    ] {
        let err = truncated(Structure::Datagram, 0, 4, bytes.len());
        assert_eq!(classify(bytes), Err(err.clone()));
        assert_eq!(Frame::parse(bytes).map(|f| f.kind()), Err(err.clone()));
        assert_eq!(FrameRepr::parse(bytes).map(|f| f.kind()), Err(err));
    }
}

/// `Frame::parse` and `FrameRepr::parse` dispatch on the classification,
/// then check the chosen kind's header length (PROTOCOL.md 1, 2).
#[test]
fn frame_parse_dispatch_and_short_headers() {
    let whole: Vec<(Vec<u8>, FrameKind)> = vec![
        (ACK_BYTES.to_vec(), FrameKind::Full),
        (vec![0x42, 0x69, 0x00, 0x01], FrameKind::Mini),
        (
            vec![0x00, 0x00, 0x80, 0x05, 0x00, 0x01],
            FrameKind::VideoMini,
        ),
        (trunk_ts_bytes(), FrameKind::MetaTrunk),
        (vec![0x00, 0x00, 0x05, 0x00], FrameKind::Meta),
    ];
    for (bytes, kind) in &whole {
        let frame = Frame::parse(bytes).expect("parses");
        assert_eq!(frame.kind(), *kind);
        let repr = FrameRepr::parse(bytes).expect("parses");
        assert_eq!(repr.kind(), *kind);
        assert_eq!(repr.buffer_len(), bytes.len());
        assert_eq!(repr.to_vec().as_ref(), Ok(bytes));
        assert_emits(bytes, |b| repr.emit(b));
    }
    // Classified by 4 bytes, but the kind's header is longer.
    let short: &[(&[u8], WireError)] = &[
        (
            &[0x80, 0x01, 0x00, 0x00],
            truncated(Structure::FullFrame, 0, 12, 4),
        ),
        (
            &[0x80, 0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x06],
            truncated(Structure::FullFrame, 0, 12, 11),
        ),
        (
            &[0x00, 0x00, 0x80, 0x01],
            truncated(Structure::VideoMiniFrame, 0, 6, 4),
        ),
        (
            &[0x00, 0x00, 0x80, 0x01, 0x00],
            truncated(Structure::VideoMiniFrame, 0, 6, 5),
        ),
        (
            &[0x00, 0x00, 0x01, 0x00],
            truncated(Structure::MetaFrame, 0, 8, 4),
        ),
        (
            &[0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
            truncated(Structure::MetaFrame, 0, 8, 7),
        ),
    ];
    for (bytes, err) in short {
        assert_eq!(Frame::parse(bytes).map(|f| f.kind()), Err(err.clone()));
        assert_eq!(FrameRepr::parse(bytes).map(|f| f.kind()), Err(err.clone()));
    }
}

/// Each view's `new_checked` refuses the other kinds with `WrongKind` (or
/// `WrongMetaCommand`) and a short buffer with `Truncated` carrying the
/// header length needed and the bytes present.
#[test]
fn new_checked_wrong_kind_and_truncated() {
    let full = ACK_BYTES;
    let mini = [0x42, 0x69, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0];
    let video = [0x00, 0x00, 0x80, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let trunk = [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0];
    let meta = [0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0];
    let first = |b: &[u8]| [b[0], b[1], b[2], b[3]];

    // FullFrame: F bit clear.
    for other in [&mini, &video, &trunk, &meta] {
        let err = wrong_kind(Structure::FullFrame, first(other));
        assert_eq!(FullFrame::new_checked(&other[..]), Err(err.clone()));
        assert_eq!(FullFrameRepr::parse(other), Err(err));
    }
    // MiniFrame: F bit set, or 0x0000.
    for other in [&full, &video, &trunk, &meta] {
        let err = wrong_kind(Structure::MiniFrame, first(other));
        assert_eq!(MiniFrame::new_checked(&other[..]), Err(err.clone()));
        assert_eq!(MiniFrameRepr::parse(other), Err(err));
    }
    // VideoMiniFrame: not 0x0000 + bit 7.
    for other in [&full, &mini, &trunk, &meta] {
        let err = wrong_kind(Structure::VideoMiniFrame, first(other));
        assert_eq!(VideoMiniFrame::new_checked(&other[..]), Err(err.clone()));
        assert_eq!(VideoMiniFrameRepr::parse(other), Err(err));
    }
    // MetaFrame (any command, trunk included): not 0x0000 + bit 7 clear.
    for other in [&full, &mini, &video] {
        let err = wrong_kind(Structure::MetaFrame, first(other));
        assert_eq!(MetaFrame::new_checked(&other[..]), Err(err.clone()));
        assert_eq!(MetaFrameRepr::parse(other), Err(err));
    }
    assert!(MetaFrame::new_checked(&trunk[..]).is_ok());
    // MetaTrunkFrame: not a meta frame, or another meta command.
    for other in [&full, &mini, &video] {
        let err = wrong_kind(Structure::MetaFrame, first(other));
        assert_eq!(MetaTrunkFrame::new_checked(&other[..]), Err(err.clone()));
        assert_eq!(MetaTrunkFrameRepr::parse(other), Err(err));
    }
    let err = WireError::WrongMetaCommand {
        expected: 0x01,
        found: 0x05,
    };
    assert_eq!(MetaTrunkFrame::new_checked(&meta[..]), Err(err.clone()));
    assert_eq!(MetaTrunkFrameRepr::parse(&meta), Err(err));
    // The kind is judged on 3 bytes, before the length, for meta kinds; the
    // `first` field pads with zeros.
    assert_eq!(
        MetaTrunkFrame::new_checked(&[0x80, 0x00, 0x01][..]),
        Err(wrong_kind(Structure::MetaFrame, [0x80, 0x00, 0x01, 0x00]))
    );

    // Truncated headers: needed = the kind's header length, got = the
    // bytes present.
    assert_eq!(
        FullFrame::new_checked(&full[..11]),
        Err(truncated(Structure::FullFrame, 0, 12, 11))
    );
    assert_eq!(
        FullFrame::new_checked(&[0u8; 0][..]),
        Err(truncated(Structure::FullFrame, 0, 12, 0))
    );
    assert_eq!(
        MiniFrame::new_checked(&mini[..3]),
        Err(truncated(Structure::MiniFrame, 0, 4, 3))
    );
    assert_eq!(
        VideoMiniFrame::new_checked(&video[..5]),
        Err(truncated(Structure::VideoMiniFrame, 0, 6, 5))
    );
    assert_eq!(
        VideoMiniFrame::new_checked(&video[..2]),
        Err(truncated(Structure::VideoMiniFrame, 0, 6, 2))
    );
    assert_eq!(
        MetaFrame::new_checked(&meta[..3]),
        Err(truncated(Structure::MetaFrame, 0, 4, 3))
    );
    assert_eq!(
        MetaTrunkFrame::new_checked(&trunk[..7]),
        Err(truncated(Structure::MetaFrame, 0, 8, 7))
    );
    assert_eq!(
        MetaTrunkFrameRepr::parse(&trunk[..4]),
        Err(truncated(Structure::MetaFrame, 0, 8, 4))
    );

    // The smallest datagram of each kind.
    assert!(FullFrame::new_checked(&full[..12]).is_ok());
    assert!(MiniFrame::new_checked(&mini[..4]).is_ok());
    assert!(VideoMiniFrame::new_checked(&video[..6]).is_ok());
    assert!(MetaFrame::new_checked(&meta[..4]).is_ok());
    assert!(MetaTrunkFrame::new_checked(&trunk[..8]).is_ok());
}

/// Error messages say what and where (for operators' drop counters).
#[test]
fn error_messages_are_readable() {
    assert_eq!(
        truncated(Structure::TrunkEntry, 14, 9, 6).to_string(),
        "truncated trunk entry: needs 9 bytes at offset 14, 6 present"
    );
    assert_eq!(
        WireError::IeTooLong {
            ie: IeType::CallToken,
            len: 256
        }
        .to_string(),
        "CALLTOKEN data is 256 bytes, at most 255 fit"
    );
    assert_eq!(
        CallNumber::new(0x8000),
        Err(WireError::CallNumberOutOfRange(0x8000))
    );
}
