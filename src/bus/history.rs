//! [`History`]: the bounded ring of recent publishes of one channel.
//!
//! Bounded by count (`history_size`), by age (`history_ttl`), by bytes per channel
//! (`history_bytes_per_channel`) and by bytes across all channels
//! (`history_bytes_total`, through the shared [`HistoryBudget`]). Offsets in the ring are
//! consecutive, so "is everything after offset N still here?" is one comparison with
//! the oldest entry, which is what exact recovery needs.
//!
//! Eviction is oldest first within a channel. Across channels, the largest lose first:
//! once the total passes seven eighths of its budget, the publish that crossed the mark
//! has the bus trim every channel above a common level, its oldest entries first, until
//! the total is back to three quarters (max-min fairness, see [`water_level`]). So a
//! flood into many channels evicts the flood's own history, and a quiet channel keeps
//! its history unless it holds more than the level, which is at least the budget's
//! three quarters shared equally by the channels that hold history. One reclaim runs
//! at a time, outside every channel lock; it frees an eighth of the budget or more, so
//! a flood pays for one scan of the channels per eighth of the budget it publishes.
//!
//! The budget itself is a hard bound, enforced by the channel being published to in
//! O(1) amortised: if a publish would still pass the total (reclaims lag behind a
//! burst), the channel evicts its own oldest entries until it fits; if it has none
//! left, the new publish is not retained (it is still delivered). The ring stays
//! consecutive either way, and a recovering client gets `recovered: false` /
//! `complete: false`, as for any eviction.

use super::delivery::Delivery;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Set while one publisher reclaims across channels; the others do not wait.
    reclaiming: AtomicBool,
}

/// Held by the one publisher that reclaims; lets the next one in when dropped.
pub(crate) struct Reclaim<'a>(&'a HistoryBudget);

impl Drop for Reclaim<'_> {
    fn drop(&mut self) {
        self.0.reclaiming.store(false, Ordering::Release);
    }
}

impl HistoryBudget {
    pub(crate) fn new(total: usize, per_channel: usize) -> Arc<Self> {
        Arc::new(HistoryBudget {
            used: AtomicUsize::new(0),
            total,
            per_channel,
            reclaiming: AtomicBool::new(false),
        })
    }

    /// Whether the total passed seven eighths of the budget: time to reclaim.
    pub(crate) fn pressed(&self) -> bool {
        self.total > 0 && self.used() > self.total - self.total / 8
    }

    /// The bytes a reclaim should free to bring the total back to three quarters of
    /// the budget, and the right to do it, unless another publisher is at it.
    pub(crate) fn begin_reclaim(&self) -> Option<(usize, Reclaim<'_>)> {
        if self.reclaiming.swap(true, Ordering::Acquire) {
            return None;
        }
        let guard = Reclaim(self);
        let target = self.total - self.total / 4;
        let need = self.used().checked_sub(target).filter(|n| *n > 0)?;
        Some((need, guard))
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

    /// Whether the bus's history passed its reclaim mark.
    pub(crate) fn pressed(&self) -> bool {
        self.budget.pressed()
    }

    /// Bytes of the retained texts.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Evicts the oldest entries until at most `level` bytes remain; returns the bytes
    /// freed.
    pub(crate) fn trim_to(&mut self, level: usize) -> usize {
        let before = self.bytes;
        while self.bytes > level && !self.entries.is_empty() {
            self.pop_front();
        }
        before - self.bytes
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

/// The level to which the largest channels are cut so that together they free at
/// least `need` bytes: the highest `L` with `sum(max(0, size - L)) >= need`, given the
/// sizes largest first. Channels at or below `L` lose nothing. 0 when even emptying
/// every channel would not free `need`.
pub(crate) fn water_level(sizes_desc: &[usize], need: usize) -> usize {
    let mut top_sum = 0usize;
    for (k, &size) in sizes_desc.iter().enumerate() {
        top_sum += size;
        let next = sizes_desc.get(k + 1).copied().unwrap_or(0);
        let count = k + 1;
        // Cutting the top `count` down to `next` frees this much.
        if top_sum - count * next >= need {
            return (top_sum - need) / count;
        }
    }
    0
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

    #[test]
    fn the_water_level_cuts_the_largest_first_and_frees_enough() {
        assert_eq!(water_level(&[100, 10, 10], 50), 50);
        // Cutting 100 to 10 frees 90 < 120: the three share the cut.
        assert_eq!(water_level(&[100, 40, 10], 120), 10);
        assert_eq!(water_level(&[100, 40, 10], 30), 70);
        assert_eq!(water_level(&[100, 40, 10], 150), 0);
        assert_eq!(water_level(&[100, 40, 10], 500), 0);
        assert_eq!(water_level(&[], 5), 0);
        for (sizes, need) in [
            (vec![9, 7, 7, 3, 1], 11),
            (vec![50; 8], 99),
            (vec![5, 4], 2),
        ] {
            let l = water_level(&sizes, need);
            let freed: usize = sizes.iter().map(|s| s.saturating_sub(l)).sum();
            let one_more: usize = sizes.iter().map(|s| s.saturating_sub(l + 1)).sum();
            assert!(freed >= need && one_more < need, "{sizes:?} {need} -> {l}");
        }
    }

    #[test]
    fn a_reclaim_starts_past_seven_eighths_and_runs_one_at_a_time() {
        let budget = HistoryBudget::new(800, 0);
        let mut h = History::new(1000, None, budget.clone());
        let now = Instant::now();
        let mut n = 0;
        while !budget.pressed() {
            n += 1;
            h.push(n, d(n), now);
        }
        assert!(budget.used() > 700);
        let (need, guard) = budget.begin_reclaim().unwrap();
        assert_eq!(need, budget.used() - 600);
        assert!(budget.begin_reclaim().is_none(), "one at a time");
        let freed = h.trim_to(h.bytes() - need);
        assert!(freed >= need && budget.used() <= 600);
        drop(guard);
        assert!(budget.begin_reclaim().is_none(), "nothing to free");
        assert!(!budget.reclaiming.load(Ordering::Relaxed));
    }
}
