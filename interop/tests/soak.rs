//! A short soak of the real binary: two `iax2-gateway run` processes
//! carry about 100 calls for 90 s, each call holding 5 to 15 s and a new
//! one starting as one ends (`loadtest soak`, whose 30-minute run at 800
//! calls is in BENCHMARKS.md). Every call must set up and complete, calls
//! must start and end all through the run, and once the PBXs have
//! released every call both gateways' tables must empty (no stuck call).
//! Resident memory is printed, not checked: a 90 s run says little about
//! it. No assertion is on time or speed.
//!
//! Optimised builds only, like the loopback load test: with debug builds
//! the two gateways and the emulated PBXs would keep a shared 2-core
//! machine busy for the whole 90 s.

use std::time::Duration;

use iax2_interop::process::gateway_binary;
use iax2_loadtest::load::soak::{soak, SoakOptions};

const CALLS: usize = 100;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "load test: run with --release (scripts/test does)"
)]
fn a_short_soak_leaves_no_call_behind() {
    let opts = SoakOptions {
        gateway_bin: gateway_binary(),
        calls: CALLS,
        duration: Duration::from_secs(90),
        hold_min: Duration::from_secs(5),
        hold_max: Duration::from_secs(15),
        sample_every: Duration::from_secs(5),
        seed: 7,
        ..SoakOptions::default()
    };
    let r = soak(&opts).expect("the soak runs");
    println!("{}", r.table());

    assert_eq!(r.stopped_early, None);
    // No stuck call: both tables empty within the grace, nothing left at
    // the PBXs.
    let l = &r.leftovers;
    assert_eq!((l.table_a, l.table_b), (0, 0), "{:#?}", l.entries);
    assert_eq!((l.pbx_a, l.pbx_b), (0, 0));
    // Every call set up, was held and hung up by PBX A.
    let c = &r.calls;
    assert_eq!(
        (c.setup_failures, c.dropped, c.failed_at_b),
        (0, 0, 0),
        "{:#?}",
        c.failure_details
    );
    assert_eq!(c.completed, c.started);
    assert_eq!(c.answered, c.started);
    assert_eq!(c.answered_by_b, c.started);
    // Calls kept coming and going: many times the concurrency in all,
    // and more completed between every two samples once the first calls
    // could have ended (the longest hold).
    assert!(c.completed > 5 * CALLS as u64, "{}", c.completed);
    assert!(c.max_up <= CALLS as u64 && c.max_up >= CALLS as u64 * 9 / 10);
    let churning: Vec<_> = r
        .samples
        .iter()
        .filter(|s| s.t_s > opts.hold_max.as_secs_f64() && s.t_s <= 90.0)
        .collect();
    assert!(churning.len() > 5, "{} samples", churning.len());
    for w in churning.windows(2) {
        assert!(
            w[1].completed > w[0].completed && w[1].started > w[0].started,
            "no call ended or started between {} s and {} s",
            w[0].t_s,
            w[1].t_s
        );
    }
    // The gateways' memory was sampled all along.
    assert!(r.samples.iter().all(|s| s.rss_a_kib > 0 && s.rss_b_kib > 0));
    assert!(r.rss_a.warmup_kib > 0 && r.rss_b.warmup_kib > 0);
}
