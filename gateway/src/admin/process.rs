//! The standard process metrics, read from `/proc/self` at scrape time.

use std::fs;

/// What `/proc` says of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessStats {
    /// User plus system CPU, seconds.
    pub(crate) cpu_seconds: f64,
    /// Resident set size, bytes.
    pub(crate) resident_bytes: u64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
    /// The soft descriptor limit.
    pub(crate) max_fds: u64,
    /// Start time, seconds since the Unix epoch.
    pub(crate) start_time: f64,
}

/// Reads them; a field that cannot be read stays 0 (not every system has
/// `/proc`).
pub(crate) fn read() -> ProcessStats {
    let mut s = ProcessStats::default();
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which may hold spaces, in parens.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // f[0] is field 3 (state): utime is field 14, stime 15,
            // starttime 22, rss 24.
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(u), Some(st)) = (field(14), field(15)) {
                s.cpu_seconds = (u + st) as f64 / ticks;
            }
            if let Some(rss) = field(24) {
                s.resident_bytes = rss * page;
            }
            if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                s.start_time = boot + start as f64 / ticks;
            }
        }
    }
    s.open_fds = fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
        s.max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    s
}

/// The boot time, seconds since the Unix epoch (`btime` of /proc/stat).
fn boot_time() -> Option<f64> {
    fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = read();
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.open_fds >= 3 && s.max_fds >= s.open_fds, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        assert!(
            s.start_time > now - 3600.0 && s.start_time <= now + 1.0,
            "{s:?}"
        );
    }
}
