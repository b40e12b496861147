//! The relay's hot operations allocate nothing.
//!
//! A counting global allocator records every allocation made on this test's
//! thread while the media-path operations run over buffers allocated
//! beforehand: classifying a datagram, rewriting call numbers in place,
//! reading the IEs a relay looks at, packing a trunk frame with
//! `TrunkFrameBuilder`, iterating its entries and splitting it into mini
//! frames in place.

use trunk_core::wire::{
    classify, CallNumber, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeBlock, IeList, IeLookup,
    IeType, MediaFormat, MetaTrunkFrame, MiniFrame, SeqNo, Timestamp16, TrunkFrameBuilder,
    TrunkLayout,
};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).expect("15-bit literal")
}

#[test]
fn media_path_operations_do_not_allocate() {
    // Buffers and inputs are made up front, as a worker would at start-up.
    let new = FullFrameRepr::iax(
        cn(17001),
        cn(0),
        6,
        SeqNo(0),
        SeqNo(0),
        IaxSubclass::New,
        IeList::new()
            .with(Ie::version())
            .with(Ie::string(IeType::CalledNumber, "2001").expect("short"))
            .with(Ie::format(MediaFormat::ULAW))
            .with(Ie::calltoken(b"").expect("empty")),
    )
    .to_vec();
    let mut full = new.clone();
    let mut mini = vec![0x42, 0x69, 0x09, 0x29];
    mini.extend_from_slice(&[0xd5; 160]);
    let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 160]).collect();
    let mut trunk = vec![0u8; 9000];

    let n = allocations_during(|| {
        // Signalling: classify, read what routing needs, rewrite in place.
        assert!(classify(&full).is_ok());
        let mut f = FullFrame::new_checked(&mut full[..]).expect("valid NEW");
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
        let ies = IeBlock::new_checked(f.payload()).expect("valid IEs");
        assert_eq!(ies.called_number(), Ok(Some("2001")));
        assert_eq!(ies.format(), Ok(Some(MediaFormat::ULAW)));
        assert_eq!(ies.calltoken(), Some(&[][..]));
        f.rewrite_call_numbers(cn(4242), cn(0));

        // Voice: a mini frame rewritten in place.
        let mut m = MiniFrame::new_checked(&mut mini[..]).expect("valid mini");
        m.set_source_call_number(cn(777)).expect("non-zero");

        // Trunking: pack 50 G.711 entries, then split them in place.
        for layout in [TrunkLayout::Timestamps, TrunkLayout::NoTimestamps] {
            let mut builder =
                TrunkFrameBuilder::new(&mut trunk, 9000, layout, 20).expect("room for header");
            for (i, p) in payloads.iter().enumerate() {
                builder
                    .push(cn(1000 + i as u16), Timestamp16(560), p)
                    .expect("fits 9000 bytes");
            }
            let len = builder.finish();
            let mut frame = MetaTrunkFrame::new_checked(&mut trunk[..len]).expect("valid trunk");
            assert_eq!(frame.entries().filter(Result::is_ok).count(), 50);
            let mut offset = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
            let mut split = 0;
            while let Some(entry) = frame.entry_at(offset) {
                let loc = entry.expect("whole entry").location;
                offset = loc.end();
                frame
                    .entry_to_mini_frame(loc, cn(2000), Timestamp16(560))
                    .expect("non-zero call number");
                split += 1;
            }
            assert_eq!(split, 50);
        }
    });
    assert_eq!(n, 0, "the media path allocated {n} times");

    // The counter works: an owned parse does allocate.
    let n = allocations_during(|| {
        let repr = FullFrameRepr::parse(&new).expect("valid NEW");
        assert_eq!(repr.iax_subclass(), Some(IaxSubclass::New));
    });
    assert!(n > 0, "the counting allocator saw nothing");
}
