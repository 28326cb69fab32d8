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
    /// True when the byte budget cut the page: more of the range is retained.
    pub(crate) more: bool,
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

    /// Publishes with offset > `since`, at most `limit` and about `budget` bytes of
    /// JSON (at least one), oldest first. `top` is the channel's current offset, to
    /// tell whether anything after `since` is missing.
    pub(crate) fn after(&self, since: u64, limit: usize, top: u64, budget: usize) -> Range {
        let first = self.entries.front().map_or(top + 1, |e| e.1);
        let complete = since + 1 >= first || since >= top;
        let skip = (since + 1).saturating_sub(first) as usize;
        let (messages, cut) = take_within(self.entries.iter().skip(skip), limit, budget);
        Range {
            messages,
            complete,
            more: cut,
        }
    }

    /// The last `limit` publishes (about `budget` bytes at most, at least one), oldest
    /// first. Complete when history still holds the last `min(limit, top)` publishes.
    pub(crate) fn last(&self, limit: usize, top: u64, budget: usize) -> Range {
        let (mut messages, cut) = take_within(self.entries.iter().rev(), limit, budget);
        messages.reverse();
        let wanted = top.min(limit as u64) as usize;
        Range {
            messages,
            complete: self.entries.len() >= wanted,
            more: cut,
        }
    }
}

/// Takes up to `limit` entries and about `budget` bytes (always at least one entry);
/// true when the budget, not the limit or the end, stopped it.
fn take_within<'a>(
    entries: impl Iterator<Item = &'a (Instant, u64, Delivery)>,
    limit: usize,
    budget: usize,
) -> (Vec<Delivery>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    for e in entries {
        if out.len() == limit {
            return (out, false);
        }
        let len = e.2.text().len();
        if !out.is_empty() && bytes + len > budget {
            return (out, true);
        }
        bytes += len;
        out.push(e.2.clone());
    }
    (out, false)
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

    impl History {
        fn after_t(&self, since: u64, limit: usize, top: u64) -> Range {
            self.after(since, limit, top, usize::MAX)
        }
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
        assert_eq!(offsets(&h.last(10, 5, usize::MAX).messages), vec![3, 4, 5]);
        let r = h.after_t(2, 10, 5);
        assert!(r.complete);
        assert_eq!(offsets(&r.messages), vec![3, 4, 5]);
        let r = h.after_t(1, 10, 5);
        assert!(!r.complete, "offset 2 was evicted");
        assert_eq!(offsets(&r.messages), vec![3, 4, 5]);
        let r = h.after_t(5, 10, 5);
        assert!(r.complete && r.messages.is_empty());
        assert_eq!(offsets(&h.after_t(3, 1, 5).messages), vec![4]);
    }

    #[test]
    fn empty_history_is_complete_only_when_nothing_was_published_after_since() {
        let h = History::new(3, None);
        assert!(h.after_t(0, 10, 0).complete);
        assert!(!h.after_t(0, 10, 2).complete);
    }

    #[test]
    fn ttl_expires_old_entries() {
        let t0 = Instant::now();
        let mut h = History::new(10, Some(Duration::from_secs(5)));
        h.push(1, d(1), t0);
        h.push(2, d(2), t0 + Duration::from_secs(4));
        h.expire(t0 + Duration::from_secs(6));
        assert_eq!(offsets(&h.last(10, 5, usize::MAX).messages), vec![2]);
        assert!(!h.after_t(0, 10, 2).complete);
    }

    #[test]
    fn pages_stop_at_the_byte_budget_but_hold_at_least_one_message() {
        let now = Instant::now();
        let mut h = History::new(10, None);
        for n in 1..=5 {
            h.push(n, d(n), now);
        }
        let one = d(1).text().len();
        let r = h.after(0, 10, 5, one * 2);
        assert_eq!(offsets(&r.messages), vec![1, 2]);
        assert!(r.complete && r.more);
        let r = h.after(0, 10, 5, 1);
        assert_eq!(offsets(&r.messages), vec![1]);
        let r = h.last(10, 5, one * 2);
        assert_eq!(offsets(&r.messages), vec![4, 5]);
        assert!(r.complete && r.more);
        let r = h.last(3, 5, usize::MAX);
        assert!(r.complete && !r.more);
        let mut small = History::new(2, None);
        small.push(4, d(4), now);
        small.push(5, d(5), now);
        assert!(!small.last(3, 5, usize::MAX).complete, "offset 3 is gone");
        assert!(small.last(2, 5, usize::MAX).complete);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0, None);
        h.push(1, d(1), Instant::now());
        assert!(h.is_empty());
    }
}
