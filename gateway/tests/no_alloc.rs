//! Once warm, relaying voice through a gateway pair allocates nothing, on
//! any thread: receive batches, relay, trunk ticks and send batches all
//! reuse the buffers they were built with.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{voice, Pair};

/// Counts allocations on every thread (the gateway's workers included).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic counter that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn relaying_voice_allocates_nothing_once_warm() {
    let pair = Pair::start();
    pair.set_up_call();
    let addr_a = pair.gw_a.local_addr();
    // Built before counting: the test's own frames are not the gateway's.
    let frames: Vec<Vec<u8>> = (0..400).map(voice).collect();
    let mut buf = [0u8; 4096];
    let mut relay = |frames: &[Vec<u8>]| {
        for f in frames {
            pair.pbx_a.send_to(f, addr_a).unwrap();
        }
        for _ in frames {
            pair.pbx_b.recv_from(&mut buf).unwrap();
        }
    };
    // Warm up: first trunk frames, first ticks, lazily built state.
    relay(&frames[..200]);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    relay(&frames[200..]);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(during, 0, "allocations while relaying 200 voice frames");
    let a = pair.gw_a.stop();
    assert_eq!(a.tx_trunk_entries, 400);
}
