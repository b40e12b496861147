//! One emulated PBX spread over several endpoints (shards), each on its own
//! thread, sharing one address.
//!
//! The kernel hands each shard's socket the datagrams that the reuseport
//! steering program picks by the sender's call number, which is not always
//! the shard that owns the call: a call we originated has our call number,
//! picked by us, and the peer's, picked by the peer. So every shard owns
//! the call numbers congruent to its index, and a shared table maps each
//! peer call number to the shard that owns its call; the driver forwards a
//! datagram that reached the wrong shard (`crate::driver`).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Which calls of a sharded PBX an endpoint owns.
#[derive(Debug, Clone)]
pub struct Shard {
    /// This shard's index, `0..count`.
    pub index: u16,
    /// How many shards share the address (1 to 255).
    pub count: u16,
    /// Owners of the peer call numbers, shared by every shard.
    pub owners: Arc<CallOwners>,
}

impl Shard {
    /// Shard `index` of `count` sharing `owners`.
    pub fn new(index: u16, count: u16, owners: Arc<CallOwners>) -> Self {
        let count = count.clamp(1, 255);
        Self {
            index: index % count,
            count,
            owners,
        }
    }

    /// The shard that owns our call number `local`.
    pub fn owner_of_local(&self, local: u16) -> u16 {
        local % self.count
    }

    /// Whether our call number `local` belongs to this shard.
    pub fn owns_local(&self, local: u16) -> bool {
        self.owner_of_local(local) == self.index
    }
}

/// The shard owning each peer call number (15 bits), or none.
///
/// Keyed by the peer's call number only: a sharded PBX talks to one peer
/// (its gateway, or the system under test). With several peers, two calls
/// may share a peer call number; the later one wins, and a datagram of the
/// other that lands on the wrong shard is counted there as media for an
/// unknown call.
#[derive(Debug)]
pub struct CallOwners {
    /// Shard index + 1; 0 for none.
    slots: Box<[AtomicU8]>,
}

impl Default for CallOwners {
    fn default() -> Self {
        Self {
            slots: (0..0x8000).map(|_| AtomicU8::new(0)).collect(),
        }
    }
}

impl CallOwners {
    /// The shard owning the call with peer call number `peer_call`.
    pub fn owner(&self, peer_call: u16) -> Option<u16> {
        let v = self.slots.get(usize::from(peer_call & 0x7fff))?;
        match v.load(Ordering::Relaxed) {
            0 => None,
            n => Some(u16::from(n) - 1),
        }
    }

    /// Marks `peer_call` as owned by shard `index`.
    pub fn claim(&self, peer_call: u16, index: u16) {
        if let (Some(v), Ok(n)) = (
            self.slots.get(usize::from(peer_call & 0x7fff)),
            u8::try_from(index + 1),
        ) {
            v.store(n, Ordering::Relaxed);
        }
    }

    /// Clears `peer_call` if shard `index` still owns it.
    pub fn release(&self, peer_call: u16, index: u16) {
        if let (Some(v), Ok(n)) = (
            self.slots.get(usize::from(peer_call & 0x7fff)),
            u8::try_from(index + 1),
        ) {
            let _ = v.compare_exchange(n, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_release_and_ownership_by_residue() {
        let owners = Arc::new(CallOwners::default());
        let s1 = Shard::new(1, 3, owners.clone());
        assert!(s1.owns_local(4) && !s1.owns_local(5));
        assert_eq!(owners.owner(700), None);
        owners.claim(700, 1);
        assert_eq!(owners.owner(700), Some(1));
        owners.release(700, 2); // not the owner: no effect
        assert_eq!(owners.owner(700), Some(1));
        owners.release(700, 1);
        assert_eq!(owners.owner(700), None);
        // The top bit (full-frame flag) is not part of the key.
        owners.claim(0x8000 | 5, 0);
        assert_eq!(owners.owner(5), Some(0));
    }
}
