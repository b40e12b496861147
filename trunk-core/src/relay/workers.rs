//! A set of worker indices, for handing a trunk frame to the workers that
//! own its entries. Fixed size, so building one never allocates.

/// Most workers a set can name (the configuration allows up to 256).
const CAPACITY: usize = 256;
const WORDS: usize = CAPACITY / 64;

/// A set of worker indices below 256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSet([u64; WORDS]);

impl WorkerSet {
    /// No worker.
    pub const EMPTY: Self = Self([0; WORDS]);

    /// Adds worker `index` (ignored past the capacity).
    pub fn insert(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }

    /// Whether worker `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The workers in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..CAPACITY).filter(|&i| self.contains(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_iter() {
        let mut s = WorkerSet::EMPTY;
        assert!(s.is_empty());
        for i in [0, 3, 63, 64, 255, 256, 1000] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 3, 63, 64, 255]);
        assert!(s.contains(64) && !s.contains(65) && !s.contains(256));
        assert!(!s.is_empty());
    }
}
