//! Property tests over generated frames of every kind.
//!
//! For each repr (`FullFrameRepr` with IE or raw payloads, `MiniFrameRepr`,
//! `VideoMiniFrameRepr`, `MetaFrameRepr`, `MetaTrunkFrameRepr` in both entry
//! layouts) the properties are:
//!
//! 1. emit then parse gives back the same repr (kind-specific `parse` and
//!    `FrameRepr::parse`);
//! 2. emit writes exactly `buffer_len()` bytes and nothing past them;
//! 3. emit into a too-small buffer returns `BufferTooSmall` (never panics);
//! 4. the zero-copy view over the emitted bytes reports the repr's fields;
//! 5. `classify` / `FrameRepr::parse` see the emitted bytes as the right
//!    kind.
//!
//! Plus: `TrunkFrameBuilder` output equals `MetaTrunkFrameRepr::emit` of the
//! same entries, and greedy packing under a random MTU never passes the MTU
//! and loses no entry; typed IE constructors round-trip through the typed
//! accessors. Sizes are capped so a debug run stays fast.
#![allow(clippy::wildcard_enum_match_arm)]

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use trunk_core::wire::{
    classify, ApparentAddr, AuthMethods, CallNumber, Encryption, FamilyOrder, Frame, FrameKind,
    FrameRepr, FrameType, FullFrame, FullFramePayload, FullFrameRepr, IaxDateTime, Ie, IeBlock,
    IeList, IeLookup, IeType, MediaFormat, MetaCommand, MetaFrame, MetaFrameRepr, MetaTrunkFrame,
    MetaTrunkFrameRepr, MiniFrame, MiniFrameRepr, SeqNo, Subclass, Timestamp15, Timestamp16,
    TrunkEntryRepr, TrunkFrameBuilder, TrunkLayout, TrunkPushError, VideoMiniFrame,
    VideoMiniFrameRepr, WireError,
};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn call_number() -> impl Strategy<Value = CallNumber> {
    prop_oneof![
        1 => Just(0u16),
        1 => Just(0x7fffu16),
        8 => 0u16..=0x7fff,
    ]
    .prop_map(|n| CallNumber::new(n).expect("15 bits"))
}

/// A call number a mini frame or trunk builder can carry (not 0).
fn nonzero_call_number() -> impl Strategy<Value = CallNumber> {
    prop_oneof![1 => Just(0x7fffu16), 9 => 1u16..=0x7fff]
        .prop_map(|n| CallNumber::new(n).expect("15 bits"))
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

/// Known IE types (weighted) and any other byte.
fn ie_type() -> impl Strategy<Value = IeType> {
    prop_oneof![
        3 => select(IeType::KNOWN.to_vec()),
        1 => any::<u8>().prop_map(IeType::from),
    ]
}

/// An IE with raw data: mostly short, sometimes at the 255-byte limit.
fn raw_ie() -> impl Strategy<Value = Ie> {
    let data = prop_oneof![
        8 => bytes(12),
        1 => vec(any::<u8>(), 250..=255),
    ];
    (ie_type(), data).prop_map(|(t, d)| Ie::new(t, d).expect("at most 255 bytes"))
}

fn media_format() -> impl Strategy<Value = MediaFormat> {
    any::<u64>().prop_map(MediaFormat::from_bits)
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, flow, scope)| SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope
            ))
        ),
    ]
}

fn apparent_addr() -> impl Strategy<Value = ApparentAddr> {
    (socket_addr(), any::<bool>()).prop_map(|(addr, little)| ApparentAddr {
        addr,
        family_order: if little {
            FamilyOrder::Little
        } else {
            FamilyOrder::Big
        },
    })
}

/// A DATETIME whose fields survive the packed encoding (each within its bit
/// width, even seconds).
fn datetime() -> impl Strategy<Value = IaxDateTime> {
    (0u16..128, 0u8..16, 0u8..32, 0u8..32, 0u8..64, 0u8..32).prop_map(
        |(y, month, day, hour, minute, half_seconds)| IaxDateTime {
            year: 2000 + y,
            month,
            day,
            hour,
            minute,
            second: half_seconds * 2,
        },
    )
}

/// An IE built by one of `Ie`'s typed constructors.
fn typed_ie() -> impl Strategy<Value = Ie> {
    prop_oneof![
        Just(Ie::version()),
        media_format().prop_map(Ie::format),
        media_format().prop_map(Ie::format2),
        media_format().prop_map(Ie::capability),
        media_format().prop_map(Ie::capability2),
        any::<u16>().prop_map(|b| Ie::auth_methods(AuthMethods::from_bits(b))),
        any::<u16>().prop_map(|b| Ie::encryption(Encryption::from_bits(b))),
        apparent_addr().prop_map(Ie::apparent_addr),
        datetime().prop_map(Ie::datetime),
        call_number().prop_map(Ie::callno),
        bytes(255).prop_map(|t| Ie::calltoken(&t).expect("at most 255 bytes")),
        (select(IeType::KNOWN.to_vec()), any::<u8>()).prop_map(|(t, v)| Ie::u8(t, v)),
        (select(IeType::KNOWN.to_vec()), any::<u16>()).prop_map(|(t, v)| Ie::u16(t, v)),
        (select(IeType::KNOWN.to_vec()), any::<u32>()).prop_map(|(t, v)| Ie::u32(t, v)),
        ("[ -~]{0,40}", select(IeType::KNOWN.to_vec()))
            .prop_map(|(s, t)| Ie::string(t, &s).expect("short")),
        ie_type().prop_map(Ie::empty),
    ]
}

/// A random IE list of raw and typed IEs, known and unknown types.
fn ie_list() -> impl Strategy<Value = IeList> {
    vec(prop_oneof![raw_ie(), typed_ie()], 0..8).prop_map(|ies| ies.into_iter().collect())
}

/// Any frame type but IAX (whose payload is IEs), unknown codes included.
fn non_iax_frame_type() -> impl Strategy<Value = FrameType> {
    prop_oneof![
        3 => select(FrameType::KNOWN.to_vec()),
        1 => any::<u8>().prop_map(FrameType::from),
    ]
    .prop_filter("IAX frames carry IEs", |t| *t != FrameType::Iax)
}

fn full_frame() -> impl Strategy<Value = FullFrameRepr> {
    let header = (
        call_number(),
        call_number(),
        any::<bool>(),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    );
    let body = prop_oneof![
        ie_list().prop_map(|ies| (FrameType::Iax, FullFramePayload::Ies(ies))),
        (non_iax_frame_type(), bytes(300)).prop_map(|(t, p)| (t, FullFramePayload::Raw(p))),
    ];
    (header, body).prop_map(
        |((source, dest, retransmission, timestamp, o, i, subclass), (frame_type, payload))| {
            FullFrameRepr {
                source_call_number: source,
                dest_call_number: dest,
                retransmission,
                timestamp,
                oseqno: SeqNo(o),
                iseqno: SeqNo(i),
                frame_type,
                subclass: Subclass(subclass),
                payload,
            }
        },
    )
}

fn mini_frame() -> impl Strategy<Value = MiniFrameRepr> {
    (nonzero_call_number(), any::<u16>(), bytes(320)).prop_map(|(c, ts, payload)| MiniFrameRepr {
        source_call_number: c,
        timestamp: Timestamp16(ts),
        payload,
    })
}

fn video_mini_frame() -> impl Strategy<Value = VideoMiniFrameRepr> {
    (call_number(), any::<bool>(), any::<u16>(), bytes(300)).prop_map(|(c, marker, ts, payload)| {
        VideoMiniFrameRepr {
            source_call_number: c,
            marker,
            timestamp: Timestamp15::new(ts),
            payload,
        }
    })
}

/// A meta frame of a command other than trunk, top bit clear.
fn meta_frame() -> impl Strategy<Value = MetaFrameRepr> {
    (
        (0u8..0x80).prop_filter("0x01 is a trunk frame", |c| *c != 0x01),
        any::<u8>(),
        bytes(64),
    )
        .prop_map(|(command, command_data, payload)| MetaFrameRepr {
            meta_command: MetaCommand::from(command),
            command_data,
            payload,
        })
}

fn trunk_entry(timestamps: bool) -> impl Strategy<Value = TrunkEntryRepr> {
    (call_number(), any::<bool>(), any::<u16>(), bytes(48)).prop_map(
        move |(call_number, flag, ts, payload)| TrunkEntryRepr {
            call_number,
            flag,
            timestamp: timestamps.then_some(Timestamp16(ts)),
            payload,
        },
    )
}

/// A meta trunk frame of either layout (command data 0, 1, or any byte,
/// whose bit 0 picks the layout) with 0..80 entries.
fn trunk_frame() -> impl Strategy<Value = MetaTrunkFrameRepr> {
    let command_data = prop_oneof![Just(0u8), Just(1u8), any::<u8>()];
    (command_data, any::<u32>()).prop_flat_map(|(command_data, trunk_timestamp)| {
        let timestamps = command_data & 1 != 0;
        vec(trunk_entry(timestamps), 0..80).prop_map(move |entries| MetaTrunkFrameRepr {
            command_data,
            trunk_timestamp,
            entries,
        })
    })
}

fn layout() -> impl Strategy<Value = TrunkLayout> {
    prop_oneof![
        Just(TrunkLayout::NoTimestamps),
        Just(TrunkLayout::Timestamps)
    ]
}

/// Entries a `TrunkFrameBuilder` can carry: non-zero call, flag clear.
fn builder_entries() -> impl Strategy<Value = Vec<(CallNumber, Timestamp16, Vec<u8>)>> {
    vec(
        (
            nonzero_call_number(),
            any::<u16>().prop_map(Timestamp16),
            bytes(200),
        ),
        0..40,
    )
}

// ---------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------

const FILL: u8 = 0xa5;
const SLACK: usize = 8;

/// Properties 2 and 3 for any emitter: writes exactly `len` bytes, nothing
/// past them, and refuses a buffer of `cut` (< `len`) bytes.
fn check_emit(
    len: usize,
    cut: Index,
    emit: impl Fn(&mut [u8]) -> trunk_core::wire::Result<usize>,
) -> Result<Vec<u8>, TestCaseError> {
    let mut buf = vec![FILL; len + SLACK];
    let n = emit(&mut buf).map_err(|e| TestCaseError::fail(format!("emit failed: {e}")))?;
    prop_assert_eq!(n, len, "emit length == buffer_len");
    prop_assert!(buf[n..].iter().all(|&b| b == FILL), "wrote past the frame");
    buf.truncate(n);
    let short = cut.index(len);
    let mut small = vec![0u8; short];
    prop_assert_eq!(
        emit(&mut small),
        Err(WireError::BufferTooSmall {
            needed: len,
            got: short
        })
    );
    Ok(buf)
}

/// Property 5 plus the generic half of 1: the datagram classifies as `kind`
/// and `FrameRepr::parse` gives `expected` back.
fn check_classified(
    bytes: &[u8],
    kind: FrameKind,
    expected: &FrameRepr,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(classify(bytes), Ok(kind));
    let frame = Frame::parse(bytes).map_err(|e| TestCaseError::fail(format!("view: {e}")))?;
    prop_assert_eq!(frame.kind(), kind);
    let repr = FrameRepr::parse(bytes).map_err(|e| TestCaseError::fail(format!("repr: {e}")))?;
    prop_assert_eq!(&repr, expected);
    prop_assert_eq!(repr.kind(), kind);
    prop_assert_eq!(repr.buffer_len(), bytes.len());
    let again = repr.to_vec();
    prop_assert_eq!(again.as_deref(), Ok(bytes));
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn full_frame_round_trip(repr in full_frame(), cut in any::<Index>()) {
        let bytes = check_emit(repr.buffer_len(), cut, |b| repr.emit(b))?;
        prop_assert_eq!(&repr.to_vec(), &bytes);
        prop_assert_eq!(FullFrameRepr::parse(&bytes), Ok(repr.clone()));

        let view = FullFrame::new_checked(&bytes[..]).expect("emitted full frame");
        prop_assert_eq!(view.source_call_number(), repr.source_call_number);
        prop_assert_eq!(view.dest_call_number(), repr.dest_call_number);
        prop_assert_eq!(view.is_retransmission(), repr.retransmission);
        prop_assert_eq!(view.timestamp(), repr.timestamp);
        prop_assert_eq!(view.oseqno(), repr.oseqno);
        prop_assert_eq!(view.iseqno(), repr.iseqno);
        prop_assert_eq!(view.frame_type(), repr.frame_type);
        prop_assert_eq!(view.subclass(), repr.subclass);
        prop_assert_eq!(view.iax_subclass(), repr.iax_subclass());
        prop_assert_eq!(view.control_subclass(), repr.control_subclass());
        match &repr.payload {
            FullFramePayload::Ies(ies) => {
                let seen: Vec<Ie> = view
                    .ies()
                    .map(|ie| ie.map(Ie::from))
                    .collect::<Result<_, _>>()
                    .expect("emitted IEs are whole");
                prop_assert_eq!(&seen, &ies.iter().cloned().collect::<Vec<_>>());
                let block = IeBlock::new_checked(view.payload()).expect("whole IEs");
                prop_assert_eq!(block.as_bytes().len(), ies.buffer_len());
            }
            FullFramePayload::Raw(raw) => prop_assert_eq!(view.payload(), &raw[..]),
        }
        check_classified(&bytes, FrameKind::Full, &FrameRepr::Full(repr))?;
    }

    #[test]
    fn mini_frame_round_trip(repr in mini_frame(), cut in any::<Index>()) {
        let bytes = check_emit(repr.buffer_len(), cut, |b| repr.emit(b))?;
        prop_assert_eq!(MiniFrameRepr::parse(&bytes), Ok(repr.clone()));
        let view = MiniFrame::new_checked(&bytes[..]).expect("emitted mini frame");
        prop_assert_eq!(view.source_call_number(), repr.source_call_number);
        prop_assert_eq!(view.timestamp(), repr.timestamp);
        prop_assert_eq!(view.payload(), &repr.payload[..]);
        check_classified(&bytes, FrameKind::Mini, &FrameRepr::Mini(repr))?;
    }

    #[test]
    fn video_mini_frame_round_trip(repr in video_mini_frame(), cut in any::<Index>()) {
        let bytes = check_emit(repr.buffer_len(), cut, |b| repr.emit(b))?;
        prop_assert_eq!(VideoMiniFrameRepr::parse(&bytes), Ok(repr.clone()));
        let view = VideoMiniFrame::new_checked(&bytes[..]).expect("emitted video mini frame");
        prop_assert_eq!(view.source_call_number(), repr.source_call_number);
        prop_assert_eq!(view.marker(), repr.marker);
        prop_assert_eq!(view.timestamp(), repr.timestamp);
        prop_assert_eq!(view.payload(), &repr.payload[..]);
        check_classified(&bytes, FrameKind::VideoMini, &FrameRepr::VideoMini(repr))?;
    }

    #[test]
    fn meta_frame_round_trip(repr in meta_frame(), cut in any::<Index>()) {
        let bytes = check_emit(repr.buffer_len(), cut, |b| repr.emit(b))?;
        prop_assert_eq!(MetaFrameRepr::parse(&bytes), Ok(repr.clone()));
        let view = MetaFrame::new_checked(&bytes[..]).expect("emitted meta frame");
        prop_assert_eq!(view.meta_command(), repr.meta_command);
        prop_assert_eq!(view.command_data(), repr.command_data);
        prop_assert_eq!(view.payload(), &repr.payload[..]);
        check_classified(&bytes, FrameKind::Meta, &FrameRepr::Meta(repr))?;
    }

    #[test]
    fn meta_trunk_frame_round_trip(repr in trunk_frame(), cut in any::<Index>()) {
        let bytes = check_emit(repr.buffer_len(), cut, |b| repr.emit(b))?;
        prop_assert_eq!(MetaTrunkFrameRepr::parse(&bytes), Ok(repr.clone()));

        let view = MetaTrunkFrame::new_checked(&bytes[..]).expect("emitted trunk frame");
        prop_assert_eq!(view.command_data(), repr.command_data);
        prop_assert_eq!(view.layout(), repr.layout());
        prop_assert_eq!(view.trunk_timestamp(), repr.trunk_timestamp);
        prop_assert_eq!(view.entry_bytes().len(), bytes.len() - MetaTrunkFrame::<&[u8]>::HEADER_LEN);
        let mut offset = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
        let mut seen = 0;
        for (entry, want) in view.entries().zip(&repr.entries) {
            let entry = entry.expect("emitted entries are whole");
            prop_assert_eq!(entry.call_number, want.call_number);
            prop_assert_eq!(entry.flag, want.flag);
            prop_assert_eq!(entry.timestamp, want.timestamp);
            prop_assert_eq!(entry.payload, &want.payload[..]);
            prop_assert_eq!(entry.location.offset, offset);
            prop_assert_eq!(entry.location.layout, repr.layout());
            prop_assert_eq!(&bytes[entry.location.payload_range()], &want.payload[..]);
            prop_assert_eq!(view.entry_at(offset), Some(Ok(entry)));
            offset = entry.location.end();
            seen += 1;
        }
        prop_assert_eq!(seen, repr.entries.len());
        prop_assert_eq!(view.entries().count(), repr.entries.len());
        prop_assert_eq!(offset, bytes.len());
        prop_assert_eq!(view.entry_at(offset), None);
        check_classified(&bytes, FrameKind::MetaTrunk, &FrameRepr::MetaTrunk(repr))?;
    }

    /// Every entry of a trunk frame becomes the mini frame its fields say,
    /// in place.
    #[test]
    fn trunk_entries_become_mini_frames(
        repr in trunk_frame(),
        new_call in nonzero_call_number(),
    ) {
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut bytes).expect("sized buffer");
        let locations: Vec<_> = MetaTrunkFrame::new_checked(&bytes[..])
            .expect("emitted trunk frame")
            .entries()
            .map(|e| e.expect("whole").location)
            .collect();
        let mut frame = MetaTrunkFrame::new_checked(&mut bytes[..]).expect("emitted trunk frame");
        let mut ranges = Vec::new();
        for (loc, want) in locations.iter().zip(&repr.entries) {
            let ts = want.timestamp.unwrap_or(Timestamp16(0x1234));
            ranges.push(frame.entry_to_mini_frame(*loc, new_call, ts).expect("converts"));
        }
        for (range, want) in ranges.into_iter().zip(&repr.entries) {
            let mini = MiniFrameRepr::parse(&bytes[range]).expect("a mini frame");
            prop_assert_eq!(mini.source_call_number, new_call);
            prop_assert_eq!(mini.timestamp, want.timestamp.unwrap_or(Timestamp16(0x1234)));
            prop_assert_eq!(&mini.payload, &want.payload);
        }
    }

    /// `TrunkFrameBuilder` writes the same bytes as `MetaTrunkFrameRepr::emit`
    /// of the same entries, with an MTU of exactly the frame's length.
    #[test]
    fn builder_matches_repr_emit(
        layout in layout(),
        trunk_timestamp in any::<u32>(),
        entries in builder_entries(),
    ) {
        let repr = MetaTrunkFrameRepr {
            command_data: layout.command_data(),
            trunk_timestamp,
            entries: entries
                .iter()
                .map(|(call_number, ts, payload)| TrunkEntryRepr {
                    call_number: *call_number,
                    flag: false,
                    timestamp: (layout == TrunkLayout::Timestamps).then_some(*ts),
                    payload: payload.clone(),
                })
                .collect(),
        };
        let len = repr.buffer_len();
        let mut expected = vec![0u8; len];
        repr.emit(&mut expected).expect("sized buffer");

        let mut buf = vec![FILL; len + SLACK];
        let mut builder =
            TrunkFrameBuilder::new(&mut buf, len, layout, trunk_timestamp).expect("header fits");
        for (call, ts, payload) in &entries {
            prop_assert_eq!(builder.push(*call, *ts, payload), Ok(()));
        }
        prop_assert_eq!(builder.entry_count(), entries.len());
        prop_assert_eq!(builder.as_bytes(), &expected[..]);
        prop_assert!(!builder.fits(0), "the MTU is reached exactly");
        let n = builder.finish();
        prop_assert_eq!(&buf[..n], &expected[..]);
        prop_assert!(buf[n..].iter().all(|&b| b == FILL));
    }

    /// Greedy packing under any MTU: every frame stays within the MTU, a
    /// `Full` entry goes first into the next frame, `TooLarge` only when the
    /// entry cannot fit an empty frame, and no entry is lost or reordered.
    #[test]
    fn builder_packs_within_any_mtu(
        layout in layout(),
        mtu in 8usize..700,
        entries in builder_entries(),
    ) {
        let header = layout.entry_header_len();
        let mut buf = vec![0u8; 1024];
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut packed = Vec::new();
        let mut builder = TrunkFrameBuilder::new(&mut buf, mtu, layout, 0).expect("header fits");
        for (call, ts, payload) in &entries {
            let fits = builder.fits(payload.len());
            let pushed = builder.push(*call, *ts, payload);
            prop_assert_eq!(fits, pushed.is_ok(), "fits agrees with push");
            match pushed {
                Ok(()) => packed.push((*call, payload.clone())),
                Err(TrunkPushError::Full { entry_len, limit }) => {
                    prop_assert_eq!(limit, mtu);
                    prop_assert!(builder.len() + entry_len > mtu);
                    prop_assert!(!builder.is_empty());
                    frames.push(builder.as_bytes().to_vec());
                    builder.reset(0);
                    prop_assert_eq!(builder.push(*call, *ts, payload), Ok(()));
                    packed.push((*call, payload.clone()));
                }
                Err(TrunkPushError::TooLarge { entry_len, limit }) => {
                    prop_assert_eq!(entry_len, header + payload.len());
                    prop_assert!(8 + entry_len > limit);
                }
                Err(TrunkPushError::ZeroCallNumber) => {
                    prop_assert!(false, "non-zero call numbers only");
                }
            }
            prop_assert!(builder.len() <= mtu);
        }
        if !builder.is_empty() {
            frames.push(builder.as_bytes().to_vec());
        }
        let mut unpacked = Vec::new();
        for frame in &frames {
            prop_assert!(frame.len() <= mtu);
            let repr = MetaTrunkFrameRepr::parse(frame).expect("builder output parses");
            prop_assert_eq!(repr.layout(), layout);
            unpacked.extend(repr.entries.into_iter().map(|e| (e.call_number, e.payload)));
        }
        prop_assert_eq!(unpacked, packed);
    }

    /// A list of random IEs (known and unknown types, 0..=255 bytes) parses
    /// back to itself.
    #[test]
    fn ie_list_round_trip(ies in ie_list(), cut in any::<Index>()) {
        let len = ies.buffer_len();
        if len > 0 {
            let bytes = check_emit(len, cut, |b| ies.emit(b))?;
            prop_assert_eq!(IeList::parse(&bytes), Ok(ies.clone()));
            prop_assert_eq!(IeBlock::new_checked(&bytes).map(|b| b.iter().count()), Ok(ies.len()));
        } else {
            prop_assert_eq!(ies.emit(&mut []), Ok(0));
        }
    }

    /// Values written with `Ie`'s typed constructors read back through the
    /// typed accessors of `IeLookup`.
    #[test]
    fn typed_ies_read_back(
        format in media_format(),
        caps in media_format(),
        auth in any::<u16>(),
        enc in any::<u16>(),
        addr in apparent_addr(),
        dt in datetime(),
        callno in call_number(),
        token in bytes(255),
        called in "[ -~]{0,60}",
        refresh in any::<u16>(),
        cause_code in any::<u8>(),
    ) {
        let list = IeList::new()
            .with(Ie::version())
            .with(Ie::string(IeType::CalledNumber, &called).expect("short"))
            .with(Ie::format(format))
            .with(Ie::format2(format))
            .with(Ie::capability(caps))
            .with(Ie::capability2(caps))
            .with(Ie::auth_methods(AuthMethods::from_bits(auth)))
            .with(Ie::encryption(Encryption::from_bits(enc)))
            .with(Ie::apparent_addr(addr))
            .with(Ie::datetime(dt))
            .with(Ie::callno(callno))
            .with(Ie::calltoken(&token).expect("at most 255"))
            .with(Ie::u16(IeType::Refresh, refresh))
            .with(Ie::u8(IeType::CauseCode, cause_code));
        let mut bytes = vec![0u8; list.buffer_len()];
        list.emit(&mut bytes).expect("sized buffer");
        let block = IeBlock::new_checked(&bytes).expect("whole IEs");
        for ies in [&block as &dyn IeLookup, &list] {
            prop_assert_eq!(ies.version(), Ok(Some(2)));
            prop_assert_eq!(ies.called_number(), Ok(Some(called.as_str())));
            prop_assert_eq!(ies.format(), Ok(Some(format)));
            prop_assert_eq!(ies.capability(), Ok(Some(caps)));
            prop_assert_eq!(ies.auth_methods(), Ok(Some(AuthMethods::from_bits(auth))));
            prop_assert_eq!(ies.encryption(), Ok(Some(Encryption::from_bits(enc))));
            prop_assert_eq!(ies.apparent_addr(), Ok(Some(addr)));
            prop_assert_eq!(ies.datetime(), Ok(Some(dt)));
            prop_assert_eq!(ies.callno(), Ok(Some(callno)));
            prop_assert_eq!(ies.calltoken(), Some(&token[..]));
            prop_assert_eq!(ies.refresh(), Ok(Some(refresh)));
            prop_assert_eq!(ies.causecode(), Ok(Some(cause_code)));
        }
        // Without the 64-bit IEs the 32-bit ones give the low half.
        let narrow = IeList::new().with(Ie::format(format)).with(Ie::capability(caps));
        prop_assert_eq!(
            narrow.format(),
            Ok(Some(MediaFormat::from_bits(u64::from(format.low_bits()))))
        );
        prop_assert_eq!(
            narrow.capability(),
            Ok(Some(MediaFormat::from_bits(u64::from(caps.low_bits()))))
        );
    }
}
