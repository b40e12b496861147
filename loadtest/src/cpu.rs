//! CPU and memory accounting from `/proc` (Linux).
//!
//! The bench needs to say where the CPU went: the gateway workers, the load
//! generator's endpoint threads, the bare forwarders, and the machine as a
//! whole (to see other processes' load). Everything here reads `/proc` and
//! returns `None` or nothing where it is missing (other systems, a
//! sandbox without `/proc`); nothing panics on odd contents.
//!
//! Thread names come from the kernel's `comm`, which is cut to 15 bytes:
//! match threads by name prefix (see [`CpuSnapshot::prefix_seconds_since`]),
//! e.g. [`GATEWAY_WORKER_PREFIX`], [`ENDPOINT_PREFIX`] or
//! [`FORWARDER_PREFIX`].
//!
//! ```
//! use iax2_loadtest::cpu::{CpuSnapshot, ENDPOINT_PREFIX};
//!
//! let before = CpuSnapshot::take();
//! // ... load ...
//! let after = CpuSnapshot::take();
//! let endpoint_secs = after.prefix_seconds_since(&before, ENDPOINT_PREFIX);
//! assert!(endpoint_secs >= 0.0);
//! ```

use std::path::Path;
use std::sync::OnceLock;

/// Name prefix of the gateway's worker threads (`iax2-worker-N`).
pub const GATEWAY_WORKER_PREFIX: &str = "iax2-worker";

/// Name prefix of the load generator's endpoint threads (`iax2-ep-PORT`
/// or `iax2-ep-PORT-SHARD`: thread names are cut at 15 bytes).
pub const ENDPOINT_PREFIX: &str = "iax2-ep-";

/// Name prefix of the bare forwarder's threads ([`crate::forwarder`]).
pub const FORWARDER_PREFIX: &str = "fwd-";

/// Clock ticks per second, the unit of the CPU times in `/proc`.
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value; it has no
        // memory-safety preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // -1 means unknown; 100 is the value on every common Linux.
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    })
}

/// CPU seconds of one thread of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name as the kernel keeps it (at most 15 bytes).
    pub name: String,
    /// User plus system CPU seconds since the thread started.
    pub seconds: f64,
}

/// CPU seconds of the whole machine, all cores together, since boot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineCpu {
    /// Seconds not idle (everything but idle and iowait).
    pub busy_seconds: f64,
    /// All seconds (busy plus idle).
    pub total_seconds: f64,
    /// Cores listed (`cpuN` lines).
    pub cores: u32,
}

impl MachineCpu {
    /// The busy share (0 to 1) of all cores between `earlier` and `self`;
    /// `None` when no time passed.
    pub fn busy_fraction_since(&self, earlier: &Self) -> Option<f64> {
        let total = self.total_seconds - earlier.total_seconds;
        let busy = self.busy_seconds - earlier.busy_seconds;
        (total > 0.0).then(|| (busy / total).clamp(0.0, 1.0))
    }
}

/// One reading of everything in this module.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    /// When it was taken.
    pub at: std::time::Instant,
    /// [`process_cpu_seconds`].
    pub process_seconds: Option<f64>,
    /// [`thread_cpu`].
    pub threads: Vec<ThreadCpu>,
    /// [`machine_cpu`].
    pub machine: Option<MachineCpu>,
    /// [`rss_bytes`].
    pub rss_bytes: Option<u64>,
}

impl CpuSnapshot {
    /// Reads the process, its threads and the machine now.
    pub fn take() -> Self {
        Self {
            at: std::time::Instant::now(),
            process_seconds: process_cpu_seconds(),
            threads: thread_cpu(),
            machine: machine_cpu(),
            rss_bytes: rss_bytes(),
        }
    }

    /// Wall-clock seconds from `earlier` to this snapshot.
    pub fn wall_seconds_since(&self, earlier: &Self) -> f64 {
        self.at.saturating_duration_since(earlier.at).as_secs_f64()
    }

    /// Process CPU seconds used between `earlier` and this snapshot.
    pub fn process_seconds_since(&self, earlier: &Self) -> Option<f64> {
        Some((self.process_seconds? - earlier.process_seconds?).max(0.0))
    }

    /// CPU seconds used between `earlier` and this snapshot by the threads
    /// whose name starts with `prefix` ([`prefix_seconds`]).
    pub fn prefix_seconds_since(&self, earlier: &Self, prefix: &str) -> f64 {
        prefix_seconds(&earlier.threads, &self.threads, prefix)
    }

    /// The machine's busy share (0 to 1) between `earlier` and this
    /// snapshot.
    pub fn machine_busy_since(&self, earlier: &Self) -> Option<f64> {
        self.machine?.busy_fraction_since(&earlier.machine?)
    }
}

/// CPU seconds that threads named `prefix...` used between two
/// [`thread_cpu`] readings. A thread is the same in both when its id and
/// name match; one that started in between counts from zero. A thread that
/// ended in between is missing from `after`, so its last stretch is lost:
/// take snapshots while the threads of interest still run.
pub fn prefix_seconds(before: &[ThreadCpu], after: &[ThreadCpu], prefix: &str) -> f64 {
    thread_deltas(before, after, prefix).sum()
}

/// The most CPU seconds one thread whose name starts with `prefix` used
/// between two readings: a thread near the wall time is a bottleneck.
pub fn busiest_thread_seconds(before: &[ThreadCpu], after: &[ThreadCpu], prefix: &str) -> f64 {
    thread_deltas(before, after, prefix).fold(0.0, f64::max)
}

/// CPU seconds each thread named `prefix...` used between two readings
/// (see [`prefix_seconds`] for how threads are matched).
fn thread_deltas<'a>(
    before: &'a [ThreadCpu],
    after: &'a [ThreadCpu],
    prefix: &'a str,
) -> impl Iterator<Item = f64> + 'a {
    after
        .iter()
        .filter(move |t| t.name.starts_with(prefix))
        .map(move |t| {
            let prev = before
                .iter()
                .find(|b| b.tid == t.tid && b.name == t.name)
                .map_or(0.0, |b| b.seconds);
            (t.seconds - prev).max(0.0)
        })
}

/// User plus system CPU seconds of this process (all its threads, the
/// ended ones included), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_task_stat(&stat, clock_ticks_per_second()).map(|(_, secs)| secs)
}

/// Every thread of this process with its CPU seconds, by thread id.
pub fn thread_cpu() -> Vec<ThreadCpu> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let ticks = clock_ticks_per_second();
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // The thread may have ended since the directory was listed.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, seconds)) = parse_task_stat(&stat, ticks) {
            out.push(ThreadCpu { tid, name, seconds });
        }
    }
    out.sort_by_key(|t| t.tid);
    out
}

/// The machine's CPU seconds from `/proc/stat`.
pub fn machine_cpu() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_stat(&stat, clock_ticks_per_second())
}

/// Resident set size of this process in bytes (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    read_vm_rss(Path::new("/proc/self/status"))
}

fn read_vm_rss(path: &Path) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(path).ok()?)
}

/// The name and user plus system CPU seconds in the text of a
/// `/proc/PID/stat` or `/proc/PID/task/TID/stat` file. The name may hold
/// spaces and parentheses, so it runs from the first `(` to the last `)`.
pub fn parse_task_stat(stat: &str, ticks_per_second: f64) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After the name: state (field 3) ... utime (14), stime (15).
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = if ticks_per_second > 0.0 {
        ticks_per_second
    } else {
        100.0
    };
    Some((name, (utime.saturating_add(stime)) as f64 / ticks))
}

/// The machine's CPU seconds in the text of `/proc/stat`.
pub fn parse_machine_stat(stat: &str, ticks_per_second: f64) -> Option<MachineCpu> {
    let mut lines = stat.lines();
    let first = lines.next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = first
        .split_whitespace()
        .map_while(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal; guest and
    // guest_nice are already inside user and nice.
    let total: u64 = v.iter().take(8).fold(0, |a, &b| a.saturating_add(b));
    let idle = v.get(3)?.saturating_add(v.get(4).copied().unwrap_or(0));
    let cores = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    let ticks = if ticks_per_second > 0.0 {
        ticks_per_second
    } else {
        100.0
    };
    Some(MachineCpu {
        busy_seconds: total.saturating_sub(idle) as f64 / ticks,
        total_seconds: total as f64 / ticks,
        cores: u32::try_from(cores).unwrap_or(u32::MAX),
    })
}

/// `VmRSS` in bytes from the text of `/proc/PID/status` (given in kB).
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let scale = match parts.next() {
        Some("kB") | None => 1024,
        Some(_) => return None,
    };
    value.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn busiest_and_summed_threads_by_prefix() {
        let t = |tid, name: &str, seconds| ThreadCpu {
            tid,
            name: name.to_owned(),
            seconds,
        };
        let before = vec![
            t(1, "iax2-ep-1-0", 1.0),
            t(2, "iax2-ep-1-1", 2.0),
            t(3, "other", 0.0),
        ];
        // Thread 4 started between the readings; thread 3 is not ours.
        let after = vec![
            t(1, "iax2-ep-1-0", 1.5),
            t(2, "iax2-ep-1-1", 2.9),
            t(3, "other", 5.0),
            t(4, "iax2-ep-1-2", 0.2),
        ];
        let busiest = busiest_thread_seconds(&before, &after, "iax2-ep-");
        assert!((busiest - 0.9).abs() < 1e-9, "{busiest}");
        let sum = prefix_seconds(&before, &after, "iax2-ep-");
        assert!((sum - 1.6).abs() < 1e-9, "{sum}");
        assert_eq!(busiest_thread_seconds(&before, &after, "none"), 0.0);
    }

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) name) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
        let (name, secs) = parse_task_stat(stat, 100.0).unwrap();
        assert_eq!(name, "my (odd) name");
        assert!((secs - 3.0).abs() < 1e-9, "{secs}");
        // A name that itself ends in ") R 1" must not shift the fields.
        let stat = "7 (a) R 1) S 1 2 3 4 5 6 7 8 9 10 7 3 0 0";
        assert_eq!(parse_task_stat(stat, 10.0).unwrap(), ("a) R 1".into(), 1.0));
        assert_eq!(parse_task_stat("7 (x) R 1 2", 100.0), None);
        assert_eq!(parse_task_stat("no parens at all", 100.0), None);
        assert_eq!(parse_task_stat(")(", 100.0), None);
        assert_eq!(parse_task_stat("", 100.0), None);
    }

    #[test]
    fn parses_machine_stat_and_rss() {
        let stat = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n\
                    cpu1 50 3 25 400 10 2 1 0 0 0\nintr 1 2 3\ncpufreq 9\n";
        let m = parse_machine_stat(stat, 100.0).unwrap();
        assert!((m.total_seconds - 9.8).abs() < 1e-9, "{m:?}");
        assert!((m.busy_seconds - 1.6).abs() < 1e-9, "{m:?}");
        assert_eq!(m.cores, 2);
        let later = MachineCpu {
            busy_seconds: 2.6,
            total_seconds: 11.8,
            cores: 2,
        };
        assert!((later.busy_fraction_since(&m).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(m.busy_fraction_since(&m), None);
        assert_eq!(parse_machine_stat("intr 1\n", 100.0), None);
        assert_eq!(parse_machine_stat("cpu  x y\n", 100.0), None);

        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("VmRSS: lots"), None);
        assert_eq!(parse_vm_rss(""), None);
    }

    #[test]
    fn reads_this_process() {
        if !Path::new("/proc/self/stat").exists() {
            return;
        }
        assert!(clock_ticks_per_second() > 0.0);
        assert!(process_cpu_seconds().is_some());
        assert!(rss_bytes().is_some_and(|b| b > 0));
        assert!(machine_cpu().is_some_and(|m| m.cores > 0 && m.total_seconds > 0.0));
        assert!(!thread_cpu().is_empty());
    }

    #[test]
    fn a_busy_thread_shows_under_its_prefix() {
        if !Path::new("/proc/self/task").exists() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, busy: bool| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if busy {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                        } else {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    x
                })
                .unwrap()
        };
        let busy = spawn("cputest-busy", true);
        let idle = spawn("cputest-idle", false);
        // Let both threads set their names before the first reading.
        std::thread::sleep(Duration::from_millis(20));
        let before = CpuSnapshot::take();
        // Long enough for several clock ticks of CPU even on a loaded
        // machine with another build running.
        let end = Instant::now() + Duration::from_millis(600);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = CpuSnapshot::take();
        stop.store(true, Ordering::Relaxed);
        busy.join().unwrap();
        idle.join().unwrap();

        let busy_secs = after.prefix_seconds_since(&before, "cputest-busy");
        let idle_secs = after.prefix_seconds_since(&before, "cputest-idle");
        assert!(busy_secs > 0.05, "busy {busy_secs}");
        assert!(busy_secs > idle_secs, "busy {busy_secs} idle {idle_secs}");
        let both = after.prefix_seconds_since(&before, "cputest-");
        assert!((both - busy_secs - idle_secs).abs() < 1e-9);
        assert_eq!(after.prefix_seconds_since(&before, "no-such-thread"), 0.0);
        let process = after.process_seconds_since(&before).unwrap();
        assert!(
            process + 0.05 >= busy_secs,
            "process {process} busy {busy_secs}"
        );
        assert!(after.wall_seconds_since(&before) >= 0.6);
        assert!(after.machine_busy_since(&before).is_some_and(|f| f > 0.0));
    }
}
