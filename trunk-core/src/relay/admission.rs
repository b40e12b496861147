//! Admission control: what one source address may open, how fast, and how
//! many control frames one call leg may send.
//!
//! The per-source table is fixed in size, allocated once with the relay:
//! [`SETS`] sets of [`WAYS`] entries (65 536 entries of 40 bytes, 2.5 MiB),
//! so no number of source addresses grows it. An address hashes (keyed by
//! the relay's seed, so a sender cannot aim at one set) to a set; a new
//! address takes a free entry there, or the least recently refilled one
//! that holds no table entry. An entry that holds table entries is never
//! evicted, so counts are exact; when a set has no such room, the NEW is
//! refused as over the source limit. Each set has its own lock, taken only
//! on the NEW path and when a call is freed.

use std::net::IpAddr;

use parking_lot::Mutex;

use super::callno::SplitMix64;

/// Sets in the per-source table.
pub(crate) const SETS: usize = 4096;
/// Entries per set.
pub(crate) const WAYS: usize = 16;

/// A token bucket in thousandths of a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    milli: u32,
    /// Relay-clock milliseconds of the last refill.
    at_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub(crate) fn full(burst: u32, now_ms: u64) -> Self {
        Self {
            milli: burst.saturating_mul(1000),
            at_ms: now_ms,
        }
    }

    /// Refills at `rate` tokens per second up to `burst`, then takes one
    /// token if there is one.
    pub(crate) fn take(&mut self, rate: u32, burst: u32, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        let cap = u64::from(burst.saturating_mul(1000));
        let refill = elapsed.saturating_mul(u64::from(rate));
        let level = (u64::from(self.milli) + refill).min(cap);
        self.at_ms = self.at_ms.max(now_ms);
        if level >= 1000 {
            self.milli = u32::try_from(level - 1000).unwrap_or(u32::MAX);
            true
        } else {
            self.milli = u32::try_from(level).unwrap_or(u32::MAX);
            false
        }
    }
}

/// One source address's entry.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// The address (IPv4 as its IPv6-mapped form) as two words.
    key: [u64; 2],
    in_use: bool,
    /// Table entries this address opened that are still in the table.
    calls: u32,
    /// Of those, the ones still waiting for the far side's first reply
    /// (at most the table's 32 765, so 16 bits keep the entry at 40 bytes).
    unanswered: u16,
    bucket: Bucket,
}

/// Why a source may not open an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over its rate of NEWs.
    Rate,
    /// It holds its share of table entries or of unanswered entries, or
    /// its set had no room.
    Entries,
}

/// The limits that apply to one source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceLimits {
    pub(crate) max_entries: u32,
    pub(crate) max_unanswered: u32,
    pub(crate) rate: u32,
    pub(crate) burst: u32,
}

/// The per-source table (see the module comment).
#[derive(Debug)]
pub(crate) struct Sources {
    sets: Box<[Mutex<[Entry; WAYS]>]>,
    seed: [u64; 2],
}

pub(crate) fn key_of(ip: IpAddr) -> [u64; 2] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    #[allow(clippy::cast_possible_truncation)]
    [(bits >> 64) as u64, bits as u64]
}

impl Sources {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = SplitMix64(seed ^ 0x5eed_ad31_5510_0000);
        Self {
            sets: (0..SETS)
                .map(|_| Mutex::new([Entry::default(); WAYS]))
                .collect(),
            seed: [rng.next(), rng.next()],
        }
    }

    fn set_of(&self, key: [u64; 2]) -> &Mutex<[Entry; WAYS]> {
        let mut h = SplitMix64(key[0] ^ self.seed[0]).next();
        h = SplitMix64(h ^ key[1] ^ self.seed[1]).next();
        let i = usize::try_from(h % SETS as u64).unwrap_or(0);
        &self.sets[i]
    }

    /// Takes one of `ip`'s NEW tokens, making an entry for it if needed.
    pub(crate) fn take_token(
        &self,
        ip: IpAddr,
        limits: SourceLimits,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.with_entry(ip, limits, now_ms, |entry| {
            if entry.bucket.take(limits.rate, limits.burst, now_ms) {
                Ok(())
            } else {
                Err(Refusal::Rate)
            }
        })
    }

    /// Counts a table entry for `ip`, waiting for its first reply, unless
    /// the address holds its share of entries or of unanswered ones.
    pub(crate) fn reserve(
        &self,
        ip: IpAddr,
        limits: SourceLimits,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.with_entry(ip, limits, now_ms, |entry| {
            if entry.calls >= limits.max_entries
                || u32::from(entry.unanswered) >= limits.max_unanswered
            {
                return Err(Refusal::Entries);
            }
            entry.calls += 1;
            entry.unanswered = entry.unanswered.saturating_add(1);
            Ok(())
        })
    }

    /// Runs `f` on `ip`'s entry, made if needed, under its set's lock.
    fn with_entry(
        &self,
        ip: IpAddr,
        limits: SourceLimits,
        now_ms: u64,
        f: impl FnOnce(&mut Entry) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let key = key_of(ip);
        let mut set = self.set_of(key).lock();
        f(find_or_make(&mut set, key, limits, now_ms).ok_or(Refusal::Entries)?)
    }

    /// Notes that an entry of `ip` had its first reply.
    pub(crate) fn replied(&self, ip: IpAddr) {
        self.update(ip, |e| e.unanswered = e.unanswered.saturating_sub(1));
    }

    /// Gives back a table entry counted by [`reserve`](Self::reserve);
    /// `unanswered` if it never had its first reply.
    pub(crate) fn release(&self, ip: IpAddr, unanswered: bool) {
        self.update(ip, |e| {
            e.calls = e.calls.saturating_sub(1);
            if unanswered {
                e.unanswered = e.unanswered.saturating_sub(1);
            }
        });
    }

    fn update(&self, ip: IpAddr, f: impl FnOnce(&mut Entry)) {
        let key = key_of(ip);
        let mut set = self.set_of(key).lock();
        if let Some(e) = set.iter_mut().find(|e| e.in_use && e.key == key) {
            f(e);
        }
    }

    /// Table entries counted for `ip`.
    pub(crate) fn entries_of(&self, ip: IpAddr) -> u32 {
        let key = key_of(ip);
        let set = self.set_of(key).lock();
        set.iter()
            .find(|e| e.in_use && e.key == key)
            .map_or(0, |e| e.calls)
    }

    /// Every address holding table entries: its key, its entries and how
    /// many of them wait for a first reply. For the table's invariant
    /// check, not the packet path.
    pub(crate) fn holding(&self) -> Vec<([u64; 2], u32, u16)> {
        self.sets
            .iter()
            .flat_map(|s| {
                s.lock()
                    .iter()
                    .filter(|e| e.in_use && (e.calls > 0 || e.unanswered > 0))
                    .map(|e| (e.key, e.calls, e.unanswered))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Addresses with an entry, at most `SETS * WAYS`. Takes each set's
    /// lock in turn: for scrapes and tests, not the packet path.
    pub(crate) fn tracked(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.lock().iter().filter(|e| e.in_use).count())
            .sum()
    }
}

/// `key`'s entry in `set`, or a new one in a free way or in place of the
/// idle entry (no table entries) refilled longest ago.
fn find_or_make(
    set: &mut [Entry; WAYS],
    key: [u64; 2],
    limits: SourceLimits,
    now_ms: u64,
) -> Option<&mut Entry> {
    let i = match set.iter().position(|e| e.in_use && e.key == key) {
        Some(i) => i,
        None => {
            let i = set.iter().position(|e| !e.in_use).or_else(|| {
                set.iter()
                    .enumerate()
                    .filter(|(_, e)| e.calls == 0)
                    .min_by_key(|(_, e)| e.bucket.at_ms)
                    .map(|(i, _)| i)
            })?;
            set[i] = Entry {
                key,
                in_use: true,
                calls: 0,
                unanswered: 0,
                bucket: Bucket::full(limits.burst, now_ms),
            };
            i
        }
    };
    set.get_mut(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_rate_up_to_burst() {
        let mut b = Bucket::full(3, 0);
        assert!((0..3).all(|_| b.take(10, 3, 0)));
        assert!(!b.take(10, 3, 0));
        assert!(!b.take(10, 3, 99));
        assert!(b.take(10, 3, 100));
        assert!(!b.take(10, 3, 100));
        // Long idle: back to the burst, no more.
        assert!((0..3).all(|_| b.take(10, 3, 1_000_000)));
        assert!(!b.take(10, 3, 1_000_000));
    }

    #[test]
    fn the_table_is_as_large_as_documented() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        assert_eq!(SETS * WAYS, 65_536);
        let s = Sources::new(3);
        let l = SourceLimits {
            max_entries: 1,
            max_unanswered: 1,
            rate: 1,
            burst: 1,
        };
        // Addresses holding entries are never evicted; idle ones are.
        for n in 0..200_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(n));
            let _ = s.take_token(ip, l, u64::from(n));
            if n < 1000 {
                assert_eq!(s.reserve(ip, l, u64::from(n)), Ok(()));
            }
        }
        assert!(s.tracked() <= SETS * WAYS);
        for n in 0..1000u32 {
            assert_eq!(s.entries_of(IpAddr::V4(std::net::Ipv4Addr::from(n))), 1);
        }
    }

    #[test]
    fn entries_are_counted_and_released() {
        let s = Sources::new(1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let l = SourceLimits {
            max_entries: 3,
            max_unanswered: 2,
            rate: 1,
            burst: 1,
        };
        assert_eq!(s.reserve(ip, l, 0), Ok(()));
        assert_eq!(s.reserve(ip, l, 0), Ok(()));
        // Two wait for a reply: the unanswered share is full.
        assert_eq!(s.reserve(ip, l, 0), Err(Refusal::Entries));
        s.replied(ip);
        assert_eq!(s.reserve(ip, l, 0), Ok(()));
        // Three entries: the entry share is full.
        assert_eq!(s.reserve(ip, l, 0), Err(Refusal::Entries));
        s.release(ip, false);
        s.release(ip, true);
        assert_eq!(s.entries_of(ip), 1);
        // One entry, waiting: one more may wait.
        assert_eq!(s.reserve(ip, l, 0), Ok(()));
        assert_eq!(s.reserve(ip, l, 0), Err(Refusal::Entries));
        s.release(ip, true);
        assert_eq!(s.take_token(ip, l, 0), Ok(()));
        assert_eq!(s.take_token(ip, l, 0), Err(Refusal::Rate));
    }
}
