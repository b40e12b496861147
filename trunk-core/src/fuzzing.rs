//! Fuzz entry points and the invariants they check.
//!
//! Each function takes arbitrary bytes, drives a part of the codec and
//! asserts what must hold for *every* input; a violated invariant panics,
//! which is the finding. The cargo-fuzz targets in `trunk-core/fuzz` call
//! these functions, and `tests/fuzz_corpus.rs` runs them under plain
//! `cargo test` over the committed seed corpus and random inputs.

use crate::wire::{
    classify, CallNumber, Frame, FrameRepr, FullFrame, IeBlock, IeList, IeLookup, MetaTrunkFrame,
    MetaTrunkFrameRepr, MiniFrame, MiniFrameRepr, Timestamp16, TrunkFrameBuilder, TrunkLayout,
    TrunkPushError,
};

/// Any datagram: classification, views, accessors and strict reprs.
///
/// Invariants: nothing panics; the view and the classification agree; a
/// repr that parses re-emits exactly the input and `buffer_len` equals the
/// emitted length; iterated IEs and trunk entries stay inside the datagram
/// and never overlap.
#[allow(clippy::wildcard_enum_match_arm)]
pub fn datagram(data: &[u8]) {
    let kind = classify(data);
    if let Ok(frame) = Frame::parse(data) {
        assert_eq!(kind.as_ref().ok(), Some(&frame.kind()));
        exercise_view(data, &frame);
    }
    if let Ok(repr) = FrameRepr::parse(data) {
        assert_eq!(kind.ok(), Some(repr.kind()));
        assert_eq!(repr.buffer_len(), data.len(), "buffer_len of {repr:?}");
        let out = repr.to_vec().expect("a parsed repr emits"); // invariant under test
        assert_eq!(out, data, "re-emit differs for {repr:?}");
        assert!(Frame::parse(data).is_ok(), "repr parsed but view did not");
    }
}

fn exercise_view(data: &[u8], frame: &Frame<'_>) {
    match frame {
        Frame::Full(f) => {
            let _ = (f.source_call_number(), f.dest_call_number(), f.timestamp());
            let _ = (
                f.oseqno(),
                f.iseqno(),
                f.iax_subclass(),
                f.control_subclass(),
            );
            assert_eq!(
                f.payload().len() + FullFrame::<&[u8]>::HEADER_LEN,
                data.len()
            );
            let mut consumed = 0;
            for ie in f.ies() {
                match ie {
                    Ok(ie) => consumed += 2 + ie.data.len(),
                    Err(_) => break,
                }
            }
            assert!(consumed <= f.payload().len());
            if let Ok(block) = IeBlock::new_checked(f.payload()) {
                exercise_lookup(&block);
            }
        }
        Frame::Mini(m) => {
            let _ = (m.source_call_number(), m.timestamp());
            assert_eq!(
                m.payload().len() + MiniFrame::<&[u8]>::HEADER_LEN,
                data.len()
            );
        }
        Frame::VideoMini(v) => {
            let _ = (v.source_call_number(), v.timestamp(), v.marker());
            assert_eq!(v.payload().len() + 6, data.len());
        }
        Frame::MetaTrunk(t) => {
            let _ = (t.trunk_timestamp(), t.layout());
            let mut next = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
            for entry in t.entries() {
                let Ok(entry) = entry else { break };
                // Entries are contiguous and inside the datagram.
                assert_eq!(entry.location.offset, next);
                let range = entry.location.payload_range();
                assert!(range.end <= data.len());
                assert_eq!(&data[range], entry.payload);
                next = entry.location.end();
            }
            assert!(next <= data.len());
        }
        Frame::Meta(m) => {
            let _ = (m.meta_command(), m.command_data(), m.payload());
        }
    }
}

fn exercise_lookup<L: IeLookup>(ies: &L) {
    let _ = ies.called_number();
    let _ = ies.calling_number();
    let _ = ies.calling_name();
    let _ = ies.username();
    let _ = ies.format();
    let _ = ies.capability();
    let _ = ies.version();
    let _ = ies.auth_methods();
    let _ = ies.challenge();
    let _ = ies.md5_result();
    let _ = ies.rsa_result();
    let _ = ies.apparent_addr();
    let _ = ies.refresh();
    let _ = ies.callno();
    let _ = ies.cause();
    let _ = ies.causecode();
    let _ = ies.calltoken();
    let _ = ies.datetime();
    let _ = ies.encryption();
    let _ = ies.receiver_report();
}

/// An IE block: the strict owned parse and the checked borrowed block agree,
/// and a parsed list re-emits exactly the input.
pub fn ie_block(data: &[u8]) {
    let list = IeList::parse(data);
    let block = IeBlock::new_checked(data);
    assert_eq!(list.is_ok(), block.is_ok());
    if let (Ok(list), Ok(block)) = (list, block) {
        assert_eq!(list.buffer_len(), data.len());
        let mut out = vec![0u8; data.len()];
        assert_eq!(list.emit(&mut out), Ok(data.len()));
        assert_eq!(out, data);
        assert_eq!(list.len(), block.iter().count());
        exercise_lookup(&list);
        exercise_lookup(&block);
        // Typed accessors agree between the two forms.
        assert_eq!(list.called_number(), block.called_number());
        assert_eq!(list.format(), block.format());
        assert_eq!(list.apparent_addr(), block.apparent_addr());
    }
}

/// Reads a little-endian u16 from the front of `data`, advancing it.
fn take_u16(data: &mut &[u8]) -> Option<u16> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    *data = rest;
    Some(u16::from_le_bytes(*head))
}

/// The trunk frame builder, driven by the input: every packed frame stays
/// within the MTU, parses back to exactly the pushed entries, and splits in
/// place into mini frames that carry the same call numbers, timestamps and
/// payloads.
pub fn trunk_builder(mut data: &[u8]) {
    let Some(mtu) = take_u16(&mut data) else {
        return;
    };
    let Some(flags) = take_u16(&mut data) else {
        return;
    };
    let layout = if flags & 1 == 0 {
        TrunkLayout::NoTimestamps
    } else {
        TrunkLayout::Timestamps
    };
    let mtu = usize::from(mtu % 4096);
    let mut buf = vec![0u8; 4096];
    let Ok(mut builder) = TrunkFrameBuilder::new(&mut buf, mtu, layout, u32::from(flags)) else {
        assert!(mtu < MetaTrunkFrame::<&[u8]>::HEADER_LEN);
        return;
    };
    let mut pushed: Vec<(CallNumber, Timestamp16, Vec<u8>)> = Vec::new();
    while let (Some(call), Some(ts), Some(len)) = (
        take_u16(&mut data),
        take_u16(&mut data),
        take_u16(&mut data),
    ) {
        let call = CallNumber::new(call & 0x7fff).expect("masked to 15 bits"); // invariant
        let len = usize::from(len % 512).min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        match builder.push(call, Timestamp16(ts), payload) {
            Ok(()) => pushed.push((call, Timestamp16(ts), payload.to_vec())),
            Err(TrunkPushError::Full { .. }) => break,
            Err(TrunkPushError::TooLarge { entry_len, limit }) => {
                assert!(entry_len + MetaTrunkFrame::<&[u8]>::HEADER_LEN > limit);
            }
            Err(TrunkPushError::ZeroCallNumber) => assert_eq!(call, CallNumber::UNKNOWN),
        }
    }
    assert_eq!(builder.entry_count(), pushed.len());
    let len = builder.finish();
    assert!(len <= mtu);
    let frame = &mut buf[..len];
    let repr = MetaTrunkFrameRepr::parse(frame).expect("a built trunk frame parses"); // invariant
    assert_eq!(repr.layout(), layout);
    assert_eq!(repr.entries.len(), pushed.len());
    for (entry, (call, ts, payload)) in repr.entries.iter().zip(&pushed) {
        assert_eq!(entry.call_number, *call);
        assert_eq!(entry.payload, *payload);
        match layout {
            TrunkLayout::Timestamps => assert_eq!(entry.timestamp, Some(*ts)),
            TrunkLayout::NoTimestamps => assert_eq!(entry.timestamp, None),
        }
    }
    split_in_place(frame, &pushed);
}

/// Splits a trunk frame into mini frames in place and checks each.
fn split_in_place(frame: &mut [u8], expected: &[(CallNumber, Timestamp16, Vec<u8>)]) {
    let mut view = MetaTrunkFrame::new_checked(frame).expect("checked above"); // invariant
    let mut offset = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
    for (call, ts, payload) in expected {
        let location = view
            .entry_at(offset)
            .expect("entry present")
            .expect("entry whole") // invariant: parsed above
            .location;
        offset = location.end();
        let range = view
            .entry_to_mini_frame(location, *call, *ts)
            .expect("call numbers in the frame are non-zero"); // invariant
        let mini =
            MiniFrameRepr::parse(&view.as_bytes()[range]).expect("split entry is a mini frame"); // invariant
        assert_eq!(mini.source_call_number, *call);
        assert_eq!(mini.timestamp, *ts);
        assert_eq!(mini.payload, *payload);
    }
    let _ = &mut view;
}

/// In-place call number rewriting: only the call number bytes change, the
/// F and R bits stay, and the new values read back.
pub fn rewrite(data: &[u8]) {
    let Some((head, frame)) = data.split_first_chunk::<4>() else {
        return;
    };
    let source = CallNumber::new(u16::from_le_bytes([head[0], head[1]]) & 0x7fff)
        .expect("masked to 15 bits"); // invariant
    let dest = CallNumber::new(u16::from_le_bytes([head[2], head[3]]) & 0x7fff)
        .expect("masked to 15 bits"); // invariant
    let mut buf = frame.to_vec();
    if let Ok(mut full) = FullFrame::new_checked(&mut buf[..]) {
        let retransmission = full.is_retransmission();
        full.rewrite_call_numbers(source, dest);
        assert_eq!(full.source_call_number(), source);
        assert_eq!(full.dest_call_number(), dest);
        assert_eq!(full.is_retransmission(), retransmission);
        assert_eq!(buf[0] & 0x80, 0x80);
        assert_eq!(&buf[4..], &frame[4..]);
    } else if let Ok(mut mini) = MiniFrame::new_checked(&mut buf[..]) {
        match mini.set_source_call_number(source) {
            Ok(()) => {
                assert_eq!(mini.source_call_number(), source);
                assert_eq!(&buf[2..], &frame[2..]);
            }
            Err(_) => {
                assert_eq!(source, CallNumber::UNKNOWN);
                assert_eq!(buf, frame);
            }
        }
    }
}

/// The relay's datagram entry point, driven by a byte program.
///
/// The input is a sequence of records `[control, len, len bytes]`. The
/// control byte's low two bits pick the source (a PBX peer, a timestamped
/// trunk gateway, a no-timestamp trunk gateway, or an address inside a
/// dynamic peer's permit range); bit 2 advances the clock by
/// `(control >> 3) * 100` ms and runs the timers first.
///
/// Invariants: nothing panics; the call table's cross-references hold
/// after the program; and once every timer has run (ten minutes later)
/// the table is empty: no input leaves a call stuck.
pub fn relay(mut data: &[u8]) {
    use crate::relay::{Relay, RelayWorker};
    use crate::time::Instant;
    use crate::transmit::VecTransmit;
    use iax2_config::{Config, Peer, PeerHost, PeerKind, PeerName, Route, Timeouts, TrunkSettings};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    let sa = |s: &str| -> SocketAddr { s.parse().expect("literal address") };
    let name = |s: &str| PeerName::new(s).expect("literal name");
    let sources = [
        sa("10.0.0.1:4569"),
        sa("10.0.0.2:4569"),
        sa("10.0.0.3:4569"),
        sa("10.1.2.3:4569"),
    ];
    let peer = |n: &str, host, kind, trunk| Peer {
        trunk,
        ..Peer::new(name(n), host, kind)
    };
    let mut dynamic = peer("roamer", PeerHost::Dynamic, PeerKind::Pbx, None);
    dynamic.permit = vec!["10.1.0.0/16".parse().expect("literal range")];
    // Gateway registration both ways: "gw" is registered with, "nat-gw"
    // registers here (its REGREQs can come from any source).
    let secret = iax2_config::Secret::new("fuzz-secret");
    let mut gw = peer(
        "gw",
        PeerHost::Static(sources[1]),
        PeerKind::Gateway,
        Some(TrunkSettings::default()),
    );
    gw.register = Some(name("fuzz-a"));
    gw.secret.clone_from(&secret);
    let mut registrant = peer("nat-gw", PeerHost::Dynamic, PeerKind::Gateway, None);
    registrant.secret = secret;
    let no_ts = TrunkSettings {
        timestamps: false,
        ..TrunkSettings::default()
    };
    let config = Config {
        listen: sa("10.0.0.9:4569"),
        workers: core::num::NonZeroUsize::MIN,
        udp_gso: true,
        peers: vec![
            peer("pbx", PeerHost::Static(sources[0]), PeerKind::Pbx, None),
            gw,
            peer(
                "ast",
                PeerHost::Static(sources[2]),
                PeerKind::Pbx,
                Some(no_ts),
            ),
            dynamic,
            registrant,
        ],
        routes: vec![
            Route {
                from: Some(name("gw")),
                prefix: None,
                to: name("pbx"),
            },
            Route {
                from: None,
                prefix: None,
                to: name("gw"),
            },
        ],
        timeouts: Timeouts::default(),
        admin: Default::default(),
        log: Default::default(),
    };
    let mut now = Instant::from_millis(1);
    let relay = Arc::new(Relay::new(&config, now, 7));
    let mut worker = RelayWorker::new(Arc::clone(&relay), 0);
    let mut out = VecTransmit::new();
    let mut buf = [0u8; 300];
    while let [control, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        data = tail;
        if control & 0x04 != 0 {
            now += Duration::from_millis(u64::from(control >> 3) * 100);
            worker.handle_timeout(now, &mut out);
        }
        let from = sources[usize::from(control & 0x03)];
        buf[..len].copy_from_slice(datagram);
        worker.handle_datagram(now, from, &mut buf[..len], &mut out);
        for (_, sent) in out.take() {
            assert!(sent.len() <= crate::transmit::MAX_DATAGRAM);
        }
    }
    if let Err(e) = relay.check_invariants() {
        panic!("relay invariant broken: {e}");
    }
    // Every call timer is at most a few minutes long: two late passes
    // (expiry, then the quarantine) must empty the table.
    for _ in 0..2 {
        now += Duration::from_secs(600);
        worker.handle_timeout(now, &mut out);
        out.take();
    }
    assert_eq!(relay.active_calls(), 0, "calls left in the table");
    if let Err(e) = relay.check_invariants() {
        panic!("relay invariant broken after the timers: {e}");
    }
}
