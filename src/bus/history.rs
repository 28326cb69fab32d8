//! [`History`]: the bounded ring of recent publishes of one channel.
//!
//! Bounded twice: by count (`history_size`) and by age (`history_ttl`). Offsets in the
//! ring are consecutive, so "is everything after offset N still here?" is one comparison
//! with the oldest entry, which is what exact recovery needs.

use super::delivery::Delivery;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The recent publishes of one channel, oldest first.
#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<(Instant, u64, Delivery)>,
    capacity: usize,
    ttl: Option<Duration>,
}

/// What a range read found.
#[derive(Debug)]
pub(crate) struct Range {
    /// The publishes, in offset order.
    pub(crate) messages: Vec<Delivery>,
    /// False when publishes that belong in the range were already evicted.
    pub(crate) complete: bool,
}

impl History {
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        History {
            entries: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            ttl,
        }
    }

    /// Appends the publish with `offset` (always the previous one + 1).
    pub(crate) fn push(&mut self, offset: u64, d: Delivery, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((now, offset, d));
    }

    /// Drops entries older than the TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        if let Some(ttl) = self.ttl {
            while let Some((at, _, _)) = self.entries.front() {
                if now.duration_since(*at) <= ttl {
                    break;
                }
                self.entries.pop_front();
            }
        }
    }

    /// Whether nothing is retained.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of retained publishes.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Publishes with offset > `since`, at most `limit`, oldest first. `top` is the
    /// channel's current offset, to tell whether anything after `since` is missing.
    pub(crate) fn after(&self, since: u64, limit: usize, top: u64) -> Range {
        let first = self.entries.front().map_or(top + 1, |e| e.1);
        let complete = since + 1 >= first || since >= top;
        let skip = (since + 1).saturating_sub(first) as usize;
        let messages = self
            .entries
            .iter()
            .skip(skip)
            .take(limit)
            .map(|e| e.2.clone())
            .collect();
        Range { messages, complete }
    }

    /// The last `limit` publishes, oldest first.
    pub(crate) fn last(&self, limit: usize) -> Vec<Delivery> {
        let skip = self.entries.len().saturating_sub(limit);
        self.entries
            .iter()
            .skip(skip)
            .map(|e| e.2.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Envelope, FrameType};

    fn d(n: u64) -> Delivery {
        let mut e = Envelope::new(FrameType::Message, serde_json::json!(n));
        e.offset = Some(n);
        Delivery::new(e)
    }

    fn offsets(v: &[Delivery]) -> Vec<u64> {
        v.iter().map(|d| d.envelope().offset.unwrap()).collect()
    }

    #[test]
    fn ring_keeps_the_newest_entries_and_reports_gaps() {
        let now = Instant::now();
        let mut h = History::new(3, None);
        for n in 1..=5 {
            h.push(n, d(n), now);
        }
        assert_eq!(offsets(&h.last(10)), vec![3, 4, 5]);
        let r = h.after(2, 10, 5);
        assert!(r.complete);
        assert_eq!(offsets(&r.messages), vec![3, 4, 5]);
        let r = h.after(1, 10, 5);
        assert!(!r.complete, "offset 2 was evicted");
        assert_eq!(offsets(&r.messages), vec![3, 4, 5]);
        let r = h.after(5, 10, 5);
        assert!(r.complete && r.messages.is_empty());
        assert_eq!(offsets(&h.after(3, 1, 5).messages), vec![4]);
    }

    #[test]
    fn empty_history_is_complete_only_when_nothing_was_published_after_since() {
        let h = History::new(3, None);
        assert!(h.after(0, 10, 0).complete);
        assert!(!h.after(0, 10, 2).complete);
    }

    #[test]
    fn ttl_expires_old_entries() {
        let t0 = Instant::now();
        let mut h = History::new(10, Some(Duration::from_secs(5)));
        h.push(1, d(1), t0);
        h.push(2, d(2), t0 + Duration::from_secs(4));
        h.expire(t0 + Duration::from_secs(6));
        assert_eq!(offsets(&h.last(10)), vec![2]);
        assert!(!h.after(0, 10, 2).complete);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0, None);
        h.push(1, d(1), Instant::now());
        assert!(h.is_empty());
    }
}
