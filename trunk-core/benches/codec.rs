//! Criterion micro-benchmarks of the wire codec's hot operations.
//!
//! Run: `cargo bench -p trunk-core --bench codec`. Each group has a
//! baseline measured in the same run (a plain copy of the same bytes), so
//! results can be read as ratios on any machine. BENCHMARKS.md records them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trunk_core::wire::{
    CallNumber, FrameRepr, FullFrame, FullFrameRepr, IaxSubclass, Ie, IeBlock, IeList, IeLookup,
    IeType, MediaFormat, MetaTrunkFrame, MiniFrame, SeqNo, Timestamp16, TrunkFrameBuilder,
    TrunkLayout,
};

/// A NEW as Asterisk 22 sends it (IE order of the captures' README).
fn asterisk_new() -> Vec<u8> {
    let cn = |n| CallNumber::new(n).expect("15-bit literal");
    let ies: IeList = [
        Ie::version(),
        Ie::string(IeType::CalledNumber, "600").expect("short"),
        Ie::string(IeType::CodecPrefs, "D").expect("short"),
        Ie::u8(IeType::CallingPres, 67),
        Ie::u8(IeType::CallingTon, 0),
        Ie::u16(IeType::CallingTns, 0),
        Ie::u32(IeType::CallingAni2, 0),
        Ie::string(IeType::Language, "en").expect("short"),
        Ie::string(IeType::Username, "siteA").expect("short"),
        Ie::format(MediaFormat::ULAW),
        Ie::format2(MediaFormat::ULAW),
        Ie::capability(MediaFormat::ULAW),
        Ie::capability2(MediaFormat::ULAW),
        Ie::u16(IeType::AdsiCpe, 2),
        Ie::u32(IeType::DateTime, 897_289_909),
        Ie::calltoken(b"1795802023?9f5f77cd796b332f0d73461623fb7d16ec442b63").expect("short"),
    ]
    .into_iter()
    .collect();
    FullFrameRepr::iax(
        cn(22286),
        cn(0),
        6,
        SeqNo(0),
        SeqNo(0),
        IaxSubclass::New,
        ies,
    )
    .to_vec()
}

fn parse_full_frame(c: &mut Criterion) {
    let new = asterisk_new();
    let mut g = c.benchmark_group("parse_full_frame_with_ies");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_copy", |b| {
        let mut out = vec![0u8; new.len()];
        b.iter(|| out.copy_from_slice(black_box(&new)));
    });
    g.bench_function("view_and_route_ies", |b| {
        // What a relay reads of a NEW: header, then called number and format.
        b.iter(|| {
            let f = FullFrame::new_checked(black_box(&new[..])).expect("valid NEW");
            let ies = IeBlock::new_checked(f.payload()).expect("valid IEs");
            black_box((
                f.source_call_number(),
                f.iax_subclass(),
                ies.called_number().ok().flatten().map(str::len),
                ies.format().ok().flatten(),
            ))
        });
    });
    g.bench_function("repr_parse", |b| {
        b.iter(|| FrameRepr::parse(black_box(&new)).expect("valid NEW"));
    });
    g.finish();
}

fn rewrite_mini(c: &mut Criterion) {
    let mut mini = [0u8; 4 + 160];
    mini[..4].copy_from_slice(&[0x42, 0x69, 0x09, 0x29]);
    let mut g = c.benchmark_group("rewrite_mini_frame_call_number");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_write_2_bytes", |b| {
        b.iter(|| {
            black_box(&mut mini[..])[0..2].copy_from_slice(&black_box(0x1234u16).to_be_bytes())
        });
    });
    g.bench_function("checked_view_rewrite", |b| {
        b.iter(|| {
            let mut m = MiniFrame::new_checked(black_box(&mut mini[..])).expect("valid mini");
            m.set_source_call_number(black_box(CallNumber::new(0x1234).expect("15-bit")))
                .expect("non-zero");
        });
    });
    g.finish();
}

const ENTRIES: usize = 50;
const G711_PAYLOAD: usize = 160;

fn payloads() -> Vec<Vec<u8>> {
    (0..ENTRIES)
        .map(|i| vec![(i as u8).wrapping_mul(7); G711_PAYLOAD])
        .collect()
}

fn pack_trunk(c: &mut Criterion) {
    let payloads = payloads();
    let mut buf = vec![0u8; 9000];
    let mut g = c.benchmark_group("pack_trunk_frame_50_g711");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("baseline_copy_payloads", |b| {
        b.iter(|| {
            let mut pos = 8;
            for p in &payloads {
                buf[pos..pos + p.len()].copy_from_slice(black_box(p));
                pos += p.len() + 6;
            }
            black_box(pos)
        });
    });
    for (name, layout) in [
        ("timestamps", TrunkLayout::Timestamps),
        ("no_timestamps", TrunkLayout::NoTimestamps),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut tb = TrunkFrameBuilder::new(&mut buf, 9000, layout, black_box(20))
                    .expect("buffer holds the header");
                for (i, p) in payloads.iter().enumerate() {
                    let call = CallNumber::new(1000 + i as u16).expect("15-bit");
                    tb.push(call, Timestamp16(560), black_box(p))
                        .expect("fits 9000");
                }
                tb.finish()
            });
        });
    }
    g.finish();
}

fn build_trunk(layout: TrunkLayout) -> Vec<u8> {
    let mut buf = vec![0u8; 9000];
    let mut tb = TrunkFrameBuilder::new(&mut buf, 9000, layout, 20).expect("buffer");
    for (i, p) in payloads().iter().enumerate() {
        let call = CallNumber::new(1000 + i as u16).expect("15-bit");
        tb.push(call, Timestamp16(560), p).expect("fits");
    }
    let len = tb.finish();
    buf.truncate(len);
    buf
}

fn split_trunk(c: &mut Criterion) {
    let mut g = c.benchmark_group("split_trunk_frame_50_g711");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    let frame = build_trunk(TrunkLayout::Timestamps);
    g.bench_function("baseline_copy_frame", |b| {
        let mut out = vec![0u8; frame.len()];
        b.iter(|| out.copy_from_slice(black_box(&frame)));
    });
    g.bench_function("iterate_entries", |b| {
        b.iter(|| {
            let f = MetaTrunkFrame::new_checked(black_box(&frame[..])).expect("valid trunk");
            f.entries()
                .filter_map(Result::ok)
                .map(|e| e.payload.len())
                .sum::<usize>()
        });
    });
    for (name, layout) in [
        (
            "restore_and_split_in_place_timestamps",
            TrunkLayout::Timestamps,
        ),
        (
            "restore_and_split_in_place_no_timestamps",
            TrunkLayout::NoTimestamps,
        ),
    ] {
        let frame = build_trunk(layout);
        // Splitting destroys the frame, so each iteration restores it first
        // with the same copy that `baseline_copy_frame` measures alone.
        let mut buf = frame.clone();
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(&frame));
                let mut f = MetaTrunkFrame::new_checked(&mut buf[..]).expect("valid trunk");
                let mut offset = MetaTrunkFrame::<&[u8]>::HEADER_LEN;
                let mut bytes = 0;
                while let Some(Ok(entry)) = f.entry_at(offset) {
                    let loc = entry.location;
                    let ts = entry.timestamp.unwrap_or(Timestamp16(560));
                    let call = CallNumber::new(entry.call_number.get() ^ 0x2000).expect("15-bit");
                    offset = loc.end();
                    bytes += f
                        .entry_to_mini_frame(loc, call, ts)
                        .expect("non-zero")
                        .len();
                }
                black_box(bytes)
            });
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    parse_full_frame,
    rewrite_mini,
    pack_trunk,
    split_trunk
);
criterion_main!(benches);
