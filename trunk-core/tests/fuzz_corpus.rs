//! The fuzz entry points of `trunk_core::fuzzing` under plain `cargo test`.
//!
//! The cargo-fuzz targets in `trunk-core/fuzz/` need libFuzzer and nightly
//! compiler flags; this test needs neither. For each entry point it
//!
//! - runs every file of the committed seed corpus
//!   `trunk-core/fuzz/corpus/<target>/` (and fails if that directory is
//!   empty, so it cannot pass on nothing), which also replays every crash
//!   input ever added there as a regression;
//! - runs proptest-generated inputs: random bytes, and seeds of the corpus
//!   mutated by bit flips, byte overwrites, truncations, insertions and
//!   removals.
//!
//! `FUZZ_CORPUS_CASES=<n>` changes the number of generated cases per target
//! and kind (default 2500). A failing generated case is shrunk by proptest
//! and printed as hex; save it into the target's corpus directory to keep
//! it as a regression.
//!
//! # Regenerating the seed corpus
//!
//! ```text
//! cargo test -p trunk-core --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```
//!
//! rewrites the seeds from `testdata/` and the hand-made trunk builder
//! programs below. Seed files are named by the FNV-1a 64 hash of their
//! content (16 hex digits); regeneration replaces exactly those files and
//! leaves any other file (e.g. `crash-*` regressions) in place.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use trunk_core::fuzzing;
use trunk_core::wire::{FrameRepr, FrameType, FullFrame, FullFrameRepr};

/// An entry point of `trunk_core::fuzzing`.
type EntryPoint = fn(&[u8]);

/// The fuzz targets: name (= corpus directory) and entry point.
const TARGETS: [(&str, EntryPoint); 4] = [
    ("datagram", fuzzing::datagram),
    ("ie_block", fuzzing::ie_block),
    ("trunk_builder", fuzzing::trunk_builder),
    ("rewrite", fuzzing::rewrite),
];

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every file of a target's committed corpus, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} missing: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 file name")
                .to_owned();
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("read seed {}: {e}", path.display()));
            (name, data)
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty: regenerate it (see this file's docs)",
        dir.display()
    );
    files
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn cases() -> u32 {
    std::env::var("FUZZ_CORPUS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500)
}

/// Runs `entry` over every seed of `target`, naming the seed that fails.
fn replay_corpus(target: &str, entry: EntryPoint) {
    let seeds = corpus(target);
    for (name, data) in &seeds {
        if catch_unwind(AssertUnwindSafe(|| entry(data))).is_err() {
            panic!(
                "{target}: seed {}/{name} violates an invariant (input {})",
                corpus_dir(target).display(),
                hex(data)
            );
        }
    }
}

/// Runs `strategy`'s inputs through `entry`; on failure reports the shrunk
/// input in hex.
fn run_generated<S>(target: &str, what: &str, strategy: S, entry: EntryPoint)
where
    S: Strategy<Value = Vec<u8>>,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |data| {
        catch_unwind(AssertUnwindSafe(|| entry(&data)))
            .map_err(|_| TestCaseError::fail("invariant violated (panic above)"))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => panic!(
            "{target} ({what}): {why}; minimal input ({} bytes): {}",
            input.len(),
            hex(&input)
        ),
        Err(TestError::Abort(why)) => panic!("{target} ({what}): aborted: {why}"),
    }
}

/// One edit of a seed. Positions are taken modulo the current length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Overwrite(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Set a 16-bit big-endian field to an interesting value (lengths,
    /// call numbers).
    Word(usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Overwrite(p, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Remove(p, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u16),
                Just(1),
                Just(0x7fff),
                Just(0x8000),
                Just(0xffff),
                0u16..600
            ]
        )
            .prop_map(|(p, v)| Mutation::Word(p, v)),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len();
        match m {
            Mutation::FlipBit(p, bit) if len > 0 => data[p % len] ^= 1 << bit,
            Mutation::Overwrite(p, v) if len > 0 => data[p % len] = *v,
            Mutation::Truncate(p) => data.truncate(p % (len + 1)),
            Mutation::Insert(p, bytes) => {
                let at = p % (len + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(p, n) if len > 0 => {
                let at = p % len;
                data.drain(at..(at + n).min(len));
            }
            Mutation::Word(p, v) if len >= 2 => {
                let at = p % (len - 1);
                data[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            Mutation::FlipBit(..)
            | Mutation::Overwrite(..)
            | Mutation::Remove(..)
            | Mutation::Word(..) => {}
        }
    }
    data
}

/// Seeds of `target`, each mutated by one to four edits.
fn mutated_seeds(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, d)| d).collect();
    (any::<prop::sample::Index>(), vec(mutation(), 1..5))
        .prop_map(move |(i, muts)| apply(seeds[i.index(seeds.len())].clone(), &muts))
}

fn check_target(target: &str, entry: EntryPoint) {
    replay_corpus(target, entry);
    run_generated(target, "random bytes", vec(any::<u8>(), 0..600), entry);
    run_generated(target, "mutated seeds", mutated_seeds(target), entry);
}

#[test]
fn datagram() {
    check_target(TARGETS[0].0, TARGETS[0].1);
}

#[test]
fn ie_block() {
    check_target(TARGETS[1].0, TARGETS[1].1);
}

#[test]
fn trunk_builder() {
    check_target(TARGETS[2].0, TARGETS[2].1);
}

#[test]
fn rewrite() {
    check_target(TARGETS[3].0, TARGETS[3].1);
}

/// The seeds must at least exercise what they are meant to: the datagram
/// corpus holds every frame kind of the captures, the IE corpus real IE
/// blocks, and the trunk builder seeds both layouts.
#[test]
fn seed_corpus_covers_the_captures() {
    let datagrams = corpus("datagram");
    let mut kinds = BTreeMap::new();
    for (name, data) in &datagrams {
        let repr = FrameRepr::parse(data)
            .unwrap_or_else(|e| panic!("datagram seed {name} no longer parses: {e}"));
        *kinds.entry(format!("{:?}", repr.kind())).or_insert(0usize) += 1;
    }
    for kind in ["Full", "Mini", "MetaTrunk"] {
        assert!(kinds.contains_key(kind), "no {kind} seed: {kinds:?}");
    }
    assert_eq!(
        corpus("rewrite").len(),
        datagrams.len(),
        "rewrite has one seed per datagram seed"
    );
    assert!(corpus("ie_block").len() >= 20);
    let layouts: Vec<u16> = corpus("trunk_builder")
        .iter()
        .filter_map(|(_, d)| d.get(2..4).map(|f| u16::from_le_bytes([f[0], f[1]]) & 1))
        .collect();
    assert!(layouts.contains(&0) && layouts.contains(&1));
}

// ---------------------------------------------------------------------------
// Seed corpus generation.

/// FNV-1a, 64 bits: names seed files by content.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A trunk builder program (the input format `fuzzing::trunk_builder`
/// reads): MTU and flags (bit 0 = trunk timestamps; all 16 bits are also the
/// trunk timestamp), then per entry call number, timestamp and payload
/// length (little-endian u16 each) and the payload.
struct Program(Vec<u8>);

impl Program {
    fn new(mtu: u16, flags: u16) -> Self {
        let mut v = mtu.to_le_bytes().to_vec();
        v.extend_from_slice(&flags.to_le_bytes());
        Self(v)
    }

    fn entry(mut self, call: u16, ts: u16, payload: &[u8]) -> Self {
        let len = u16::try_from(payload.len()).expect("short payload");
        for w in [call, ts, len] {
            self.0.extend_from_slice(&w.to_le_bytes());
        }
        self.0.extend_from_slice(payload);
        self
    }

    /// An entry whose length field claims more than follows (the payload is
    /// cut to what is left).
    fn claim(mut self, call: u16, ts: u16, len: u16, present: &[u8]) -> Self {
        for w in [call, ts, len] {
            self.0.extend_from_slice(&w.to_le_bytes());
        }
        self.0.extend_from_slice(present);
        self
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// Hand-made trunk builder seeds: both layouts, MTUs below, at and above
/// the header, empty frames, frames filled exactly and overfilled, entries
/// too large for the MTU, call numbers 0, 1, 0x7fff and with the top bit
/// set, timestamps around the 16-bit wrap, and short tails.
fn trunk_builder_seeds() -> Vec<Vec<u8>> {
    let ulaw = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| seed.wrapping_add((i as u8).wrapping_mul(37)))
            .collect()
    };
    let mut seeds = Vec::new();
    for flags in [0u16, 1] {
        let hdr: u16 = if flags & 1 == 0 { 4 } else { 6 };
        // MTU below, at and just above the 8-byte header.
        seeds.push(Program::new(0, flags).0);
        seeds.push(Program::new(7, flags).entry(5, 0, b"x").0);
        seeds.push(Program::new(8, flags).entry(5, 0, b"").0);
        seeds.push(Program::new(8 + hdr, flags).entry(5, 20, b"").0);
        // A typical trunk: three calls of 160-byte u-law at 1500 bytes.
        let mut p = Program::new(1500, flags | 0x0140);
        for (i, call) in [22286u16, 32293, 31969].into_iter().enumerate() {
            p = p.entry(call, 560 + 20 * i as u16, &ulaw(160, i as u8));
        }
        seeds.push(p.0);
        // The same call twice in one frame (as in the captures).
        seeds.push(
            Program::new(1500, flags)
                .entry(31969, 1840, &ulaw(160, 1))
                .entry(215, 2660, &ulaw(160, 2))
                .entry(31969, 1860, &ulaw(160, 3))
                .0,
        );
        // Filled exactly: 8 + 2 * (hdr + 160).
        seeds.push(
            Program::new(8 + 2 * (hdr + 160), flags)
                .entry(100, 0, &ulaw(160, 4))
                .entry(101, 0, &ulaw(160, 5))
                .0,
        );
        // Overfilled: the third entry does not fit and ends the frame.
        seeds.push(
            Program::new(8 + 2 * (hdr + 160) + 1, flags)
                .entry(100, 0, &ulaw(160, 4))
                .entry(101, 0, &ulaw(160, 5))
                .entry(102, 0, &ulaw(160, 6))
                .entry(103, 0, &ulaw(10, 7))
                .0,
        );
        // Many small entries until the MTU stops them.
        let mut p = Program::new(200, flags);
        for call in 1..=40u16 {
            p = p.entry(call, call.wrapping_mul(20), &ulaw(usize::from(call % 7), 9));
        }
        seeds.push(p.0);
        // An entry too large for the MTU at all, then one that fits.
        seeds.push(
            Program::new(100, flags)
                .entry(7, 0, &ulaw(300, 1))
                .entry(8, 0, &ulaw(20, 2))
                .0,
        );
        // Call number 0 is refused; 0x8001 masks to 1; 0x7fff is the largest.
        seeds.push(
            Program::new(1500, flags)
                .entry(0, 0, &ulaw(160, 1))
                .entry(0x8001, 0, &ulaw(33, 2))
                .entry(0x7fff, 0xffff, &ulaw(20, 3))
                .entry(0x8000, 1, &ulaw(20, 4))
                .0,
        );
        // Timestamps around the 16-bit wrap.
        seeds.push(
            Program::new(1500, flags)
                .entry(4, 0xffec, &ulaw(160, 1))
                .entry(4, 0x0000, &ulaw(160, 2))
                .entry(4, 0x0014, &ulaw(160, 3))
                .0,
        );
        // Empty payloads only.
        seeds.push(
            Program::new(64, flags)
                .entry(1, 1, b"")
                .entry(2, 2, b"")
                .entry(3, 3, b"")
                .0,
        );
        // Length field larger than the rest of the input; lengths >= 512
        // wrap modulo 512.
        seeds.push(Program::new(1500, flags).claim(9, 9, 400, &ulaw(50, 1)).0);
        seeds.push(Program::new(1500, flags).claim(9, 9, 512 + 3, b"abc").0);
        // Short tails: a partial entry header after a whole entry.
        seeds.push(
            Program::new(1500, flags)
                .entry(9, 9, b"abcd")
                .raw(&[1, 0, 2])
                .0,
        );
        // MTU at the 4096 wrap and at the largest value.
        seeds.push(
            Program::new(4096 + 300, flags)
                .entry(10, 0, &ulaw(160, 1))
                .0,
        );
        seeds.push(Program::new(0xffff, flags).entry(10, 0, &ulaw(511, 1)).0);
    }
    // Flags with other bits set (they select the trunk timestamp only).
    seeds.push(Program::new(1500, 0xfffe).entry(3, 3, b"odd flags").0);
    seeds.push(Program::new(1500, 0xffff).entry(3, 3, b"odd flags").0);
    // Truncated headers.
    seeds.push(vec![0xdc]);
    seeds.push(vec![0xdc, 0x05, 0x01]);
    seeds
}

/// Writes `seeds` into `corpus/<target>/`, named by content hash, after
/// deleting the hash-named files of an earlier generation.
fn write_seeds(target: &str, seeds: &[Vec<u8>]) -> (usize, usize) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("create corpus directory");
    for entry in std::fs::read_dir(&dir).expect("list corpus directory") {
        let path = entry.expect("directory entry").path();
        let generated = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if generated {
            std::fs::remove_file(&path).expect("remove old seed");
        }
    }
    let mut unique = BTreeMap::new();
    for seed in seeds {
        unique.insert(format!("{:016x}", fnv1a64(seed)), seed);
    }
    let mut bytes = 0;
    for (name, seed) in &unique {
        std::fs::write(dir.join(name), seed).expect("write seed");
        bytes += seed.len();
    }
    (unique.len(), bytes)
}

/// Rebuilds `trunk-core/fuzz/corpus/` from `testdata/` and the hand-made
/// trunk builder programs. Run on purpose only (see the file docs).
#[test]
#[ignore = "writes the committed seed corpus; run explicitly to regenerate"]
fn regenerate_seed_corpus() {
    let mut payloads: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for path in common::captures() {
        for d in common::read_udp(&path) {
            payloads.insert(fnv1a64(&d.payload), d.payload);
        }
    }
    let datagrams: Vec<Vec<u8>> = payloads.into_values().collect();

    // rewrite: 4 bytes of new call numbers (from the payload's hash, so the
    // seeds vary; some map to 0), then the datagram.
    let rewrites: Vec<Vec<u8>> = datagrams
        .iter()
        .map(|d| {
            let h = fnv1a64(d).to_le_bytes();
            let mut v = h[..4].to_vec();
            if h[4].is_multiple_of(16) {
                v[..2].copy_from_slice(&[0, 0]);
            }
            v.extend_from_slice(d);
            v
        })
        .collect();

    // ie_block: the IE payload of every IAX full frame in clear.
    let ie_blocks: Vec<Vec<u8>> = datagrams
        .iter()
        .filter_map(|d| FullFrameRepr::parse(d).ok())
        .filter(|f| f.frame_type == FrameType::Iax)
        .map(|f| f.to_vec()[FullFrame::<&[u8]>::HEADER_LEN..].to_vec())
        .collect();

    for (target, seeds) in [
        ("datagram", datagrams.clone()),
        ("rewrite", rewrites),
        ("ie_block", ie_blocks),
        ("trunk_builder", trunk_builder_seeds()),
    ] {
        let (files, bytes) = write_seeds(target, &seeds);
        println!("{target}: {files} seeds, {bytes} bytes");
    }
}
