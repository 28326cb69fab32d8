//! [`History`]: the bounded ring of recent publishes of one channel.
//!
//! Bounded by count (`history_size`), by age (`history_ttl`), by bytes per channel
//! (`history_bytes_per_channel`) and by bytes across all channels
//! (`history_bytes_total`, through the shared [`HistoryBudget`]). Offsets in the ring are
//! consecutive, so "is everything after offset N still here?" is one comparison with
//! the oldest entry, which is what exact recovery needs.
//!
//! Eviction is oldest first within a channel. The global budget is enforced by the
//! channel being published to, in O(1) amortised: it evicts its own oldest entries
//! until the total fits; if it has none left, the new publish is not retained (it is
//! still delivered), so the total never exceeds the budget and the ring stays
//! consecutive. A recovering client then gets `recovered: false` / `complete: false`,
//! as for any eviction. A channel that a flood filled keeps what it holds until its
//! TTL or its removal; the budget bounds it meanwhile.

use super::delivery::Delivery;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bytes of history of every channel of one bus, against its budget.
#[derive(Debug, Default)]
pub(crate) struct HistoryBudget {
    used: AtomicUsize,
    /// 0: no limit.
    total: usize,
    /// 0: no limit.
    per_channel: usize,
}

impl HistoryBudget {
    pub(crate) fn new(total: usize, per_channel: usize) -> Arc<Self> {
        Arc::new(HistoryBudget {
            used: AtomicUsize::new(0),
            total,
            per_channel,
        })
    }

    /// Bytes retained now, all channels together.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn over(&self, adding: usize) -> bool {
        self.total > 0 && self.used() + adding > self.total
    }
}

/// The recent publishes of one channel, oldest first.
#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<(Instant, u64, Delivery)>,
    capacity: usize,
    ttl: Option<Duration>,
    /// Bytes of the retained texts.
    bytes: usize,
    budget: Arc<HistoryBudget>,
}

impl Drop for History {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
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
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>, budget: Arc<HistoryBudget>) -> Self {
        History {
            entries: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            ttl,
            bytes: 0,
            budget,
        }
    }

    /// Appends the publish with `offset` (always the previous one + 1), evicting the
    /// oldest entries the bounds require (see the module docs).
    pub(crate) fn push(&mut self, offset: u64, d: Delivery, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let len = d.text().len();
        if self.entries.len() == self.capacity {
            self.pop_front();
        }
        let per = self.budget.per_channel;
        while per > 0 && !self.entries.is_empty() && self.bytes + len > per {
            self.pop_front();
        }
        while self.budget.over(len) && !self.entries.is_empty() {
            self.pop_front();
        }
        if (per > 0 && len > per) || self.budget.over(len) {
            // Not retained; the ring is empty, so the next entry starts it afresh and
            // offsets stay consecutive.
            return;
        }
        self.bytes += len;
        self.budget.used.fetch_add(len, Ordering::Relaxed);
        self.entries.push_back((now, offset, d));
    }

    fn pop_front(&mut self) {
        if let Some((_, _, d)) = self.entries.pop_front() {
            let len = d.text().len();
            self.bytes -= len;
            self.budget.used.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Drops entries older than the TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        if let Some(ttl) = self.ttl {
            while let Some((at, _, _)) = self.entries.front() {
                if now.duration_since(*at) <= ttl {
                    break;
                }
                self.pop_front();
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
        let mut h = History::new(3, None, HistoryBudget::new(0, 0));
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
        let h = History::new(3, None, HistoryBudget::new(0, 0));
        assert!(h.after_t(0, 10, 0).complete);
        assert!(!h.after_t(0, 10, 2).complete);
    }

    #[test]
    fn ttl_expires_old_entries() {
        let t0 = Instant::now();
        let mut h = History::new(10, Some(Duration::from_secs(5)), HistoryBudget::new(0, 0));
        h.push(1, d(1), t0);
        h.push(2, d(2), t0 + Duration::from_secs(4));
        h.expire(t0 + Duration::from_secs(6));
        assert_eq!(offsets(&h.last(10, 5, usize::MAX).messages), vec![2]);
        assert!(!h.after_t(0, 10, 2).complete);
    }

    #[test]
    fn pages_stop_at_the_byte_budget_but_hold_at_least_one_message() {
        let now = Instant::now();
        let mut h = History::new(10, None, HistoryBudget::new(0, 0));
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
        let mut small = History::new(2, None, HistoryBudget::new(0, 0));
        small.push(4, d(4), now);
        small.push(5, d(5), now);
        assert!(!small.last(3, 5, usize::MAX).complete, "offset 3 is gone");
        assert!(small.last(2, 5, usize::MAX).complete);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0, None, HistoryBudget::new(0, 0));
        h.push(1, d(1), Instant::now());
        assert!(h.is_empty());
    }

    #[test]
    fn history_keeps_to_its_byte_budgets_and_says_what_it_lost() {
        let budget = HistoryBudget::new(0, 100);
        let mut h = History::new(1000, None, budget.clone());
        let now = Instant::now();
        for n in 1..=20 {
            h.push(n, d(n), now);
        }
        assert!(h.bytes <= 100 && budget.used() == h.bytes, "{}", h.bytes);
        assert!(
            !h.after_t(0, 100, 20).complete,
            "evicted publishes are reported"
        );
        assert!(h.after_t(19, 100, 20).complete);
        // All channels together: the one being written evicts its own, then keeps none.
        let shared = HistoryBudget::new(150, 0);
        let mut a = History::new(1000, None, shared.clone());
        let mut b = History::new(1000, None, shared.clone());
        for n in 1..=50 {
            a.push(n, d(n), now);
        }
        assert!(shared.used() <= 150);
        let before = shared.used();
        b.push(1, d(1), now);
        assert!(b.is_empty(), "not retained: every byte is a's");
        assert_eq!(shared.used(), before);
        drop(a);
        assert_eq!(shared.used(), b.bytes);
        b.push(2, d(2), now);
        assert_eq!(b.len(), 1, "room again once another channel let go");
    }
}
