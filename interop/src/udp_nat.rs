//! A NAT in user space on loopback, for tests that need one without
//! network namespaces: every source address that sends to its inside
//! socket gets a mapping of its own (an outside socket on a fresh port)
//! towards one fixed destination, as a port-translating NAT gives each
//! 5-tuple an entry. A mapping can be "poisoned" (everything through it
//! is lost, as with a stale conntrack entry left from a WAN outage) and
//! its traffic counted.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One mapping: an inside source and its outside socket.
#[derive(Debug)]
struct Mapping {
    outside: UdpSocket,
    poisoned: AtomicBool,
    /// Datagrams carried each way, and lost to poisoning.
    out: AtomicU64,
    back: AtomicU64,
    lost: AtomicU64,
}

/// A running NAT; stops when dropped.
#[derive(Debug)]
pub struct UdpNat {
    inside: SocketAddr,
    mappings: Arc<Mutex<HashMap<SocketAddr, Arc<Mapping>>>>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const READ_TIMEOUT: Duration = Duration::from_millis(20);

impl UdpNat {
    /// A NAT whose inside socket forwards to `dest`.
    pub fn start(dest: SocketAddr) -> Self {
        let inside = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the NAT's inside");
        inside
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let nat = Self {
            inside: inside.local_addr().expect("address"),
            mappings: Arc::new(Mutex::new(HashMap::new())),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::new(Mutex::new(Vec::new())),
        };
        let (mappings, stop, threads) = (
            Arc::clone(&nat.mappings),
            Arc::clone(&nat.stop),
            Arc::clone(&nat.threads),
        );
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 65_535];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = inside.recv_from(&mut buf) else {
                    continue;
                };
                let mapping = {
                    let mut m = mappings.lock().expect("mappings");
                    Arc::clone(m.entry(from).or_insert_with(|| {
                        let mapping = new_mapping();
                        let reply = inside.try_clone().expect("clone the inside socket");
                        let back = Arc::clone(&mapping);
                        let stop = Arc::clone(&stop);
                        threads
                            .lock()
                            .expect("threads")
                            .push(thread::spawn(move || {
                                carry_back(&back, &reply, from, &stop);
                            }));
                        mapping
                    }))
                };
                if mapping.poisoned.load(Ordering::Relaxed) {
                    mapping.lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if mapping.outside.send_to(&buf[..n], dest).is_ok() {
                    mapping.out.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        nat.threads.lock().expect("threads").push(handle);
        nat
    }

    /// Where the inside sends to reach the destination.
    pub fn inside(&self) -> SocketAddr {
        self.inside
    }

    /// The outside address of each mapping, by inside source.
    pub fn mappings(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let m = self.mappings.lock().expect("mappings");
        let mut v: Vec<_> = m
            .iter()
            .filter_map(|(inside, map)| Some((*inside, map.outside.local_addr().ok()?)))
            .collect();
        v.sort();
        v
    }

    /// Poisons every mapping there is now: their traffic is lost both
    /// ways from here on. New sources still get working mappings.
    pub fn poison_all(&self) -> usize {
        let m = self.mappings.lock().expect("mappings");
        for map in m.values() {
            map.poisoned.store(true, Ordering::Relaxed);
        }
        m.len()
    }

    /// Datagrams lost to poisoned mappings.
    pub fn lost(&self) -> u64 {
        let m = self.mappings.lock().expect("mappings");
        m.values().map(|map| map.lost.load(Ordering::Relaxed)).sum()
    }
}

fn new_mapping() -> Arc<Mapping> {
    let outside = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a NAT mapping");
    outside
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    Arc::new(Mapping {
        outside,
        poisoned: AtomicBool::new(false),
        out: AtomicU64::new(0),
        back: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    })
}

/// Carries what comes back on a mapping's outside socket to its source.
fn carry_back(mapping: &Mapping, inside: &UdpSocket, to: SocketAddr, stop: &AtomicBool) {
    let mut buf = [0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = mapping.outside.recv_from(&mut buf) else {
            continue;
        };
        if mapping.poisoned.load(Ordering::Relaxed) {
            mapping.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if inside.send_to(&buf[..n], to).is_ok() {
            mapping.back.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for UdpNat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads"));
        for t in threads {
            let _ = t.join();
        }
    }
}
