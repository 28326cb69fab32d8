//! The window of a session's recent envelope ids, so that a frame sent twice (a client
//! that retries after a lost REPLY) is applied once and the repeat is `duplicate_id`.
//!
//! Invariant: at most `cap` ids are remembered; an id is remembered only once its frame
//! was applied, so a refused frame may be sent again with the same id.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// The last `cap` envelope ids of a session.
///
/// A ring of `cap` ids, each with its hash, and a hash table of ring slots. Forgetting
/// the oldest id compares slot numbers rather than strings (its string is cold by then),
/// and once the ring is full a new id is copied into the slot it frees: no allocation
/// per frame. (Before, two `String`s per id in a `VecDeque` and a SipHash `HashSet`:
/// `Dedup::insert` was 4-5 % of the server's CPU per publish.) The hasher is hashbrown's
/// default, foldhash, seeded per process.
pub(super) struct Dedup {
    /// `(hash, id)` in arrival order; once full, `head` is the oldest.
    ring: Vec<(u64, String)>,
    head: usize,
    /// Indices into `ring`, keyed by the hash of their id.
    slots: HashTable<u32>,
    hasher: DefaultHashBuilder,
    cap: usize,
}

impl Dedup {
    pub(super) fn new(cap: usize) -> Self {
        // Empty until the first id: idle sessions allocate nothing. Slots are `u32`.
        Dedup {
            ring: Vec::new(),
            head: 0,
            slots: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            cap: cap.min(u32::MAX as usize),
        }
    }

    /// Whether `id` is among the last `cap` ids of applied frames.
    pub(super) fn contains(&self, id: &str) -> bool {
        let ring = &self.ring;
        let hash = self.hasher.hash_one(id);
        self.slots
            .find(hash, |&s| ring[s as usize].1 == id)
            .is_some()
    }

    /// Remembers the id of an applied frame, forgetting the oldest beyond `cap`.
    pub(super) fn insert(&mut self, id: &str) {
        if self.cap == 0 || self.contains(id) {
            return;
        }
        let hash = self.hasher.hash_one(id);
        let slot = if self.ring.len() < self.cap {
            self.ring.push((hash, id.to_owned()));
            self.ring.len() - 1
        } else {
            let slot = self.head;
            self.head = (slot + 1) % self.cap;
            let (old_hash, old) = &mut self.ring[slot];
            if let Ok(entry) = self.slots.find_entry(*old_hash, |&s| s as usize == slot) {
                entry.remove();
            }
            *old_hash = hash;
            old.clear();
            old.push_str(id);
            slot
        };
        let ring = &self.ring;
        // `slot < cap <= u32::MAX`.
        self.slots
            .insert_unique(hash, slot as u32, |&s| ring[s as usize].0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_forgets_ids_older_than_its_window() {
        let mut d = Dedup::new(2);
        d.insert("a");
        assert!(d.contains("a"));
        d.insert("b");
        d.insert("c");
        assert!(!d.contains("a"), "a fell out of the window");
        assert!(d.contains("b") && d.contains("c"));
    }

    #[test]
    fn dedup_keeps_at_most_cap_ids_and_none_at_zero() {
        let mut d = Dedup::new(3);
        for i in 0..10 {
            d.insert(&i.to_string());
            d.insert(&i.to_string());
        }
        assert_eq!((d.ring.len(), d.slots.len()), (3, 3));
        assert!(d.contains("9") && d.contains("7") && !d.contains("6"));
        let mut off = Dedup::new(0);
        off.insert("a");
        assert!(!off.contains("a"));
    }
}
