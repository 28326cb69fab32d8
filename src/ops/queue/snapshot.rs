//! A read-only snapshot of the queue for the broker's metrics: tasks by state and
//! kind, the ready depth by kind and priority, the oldest waiting task's age, pending
//! approvals, consumers and the lifetime counters.
//!
//! Invariants: taking one never changes the queue, holds its lock for one pass over
//! the tasks in memory (no await, no allocation per task beyond the per-kind maps),
//! and names kinds only as they are: bounding the number of kinds a scrape shows is
//! the reader's business (the queue does not know how many a dashboard can take).

use super::core::Core;
use super::model::{now_ms, TaskState};
use std::collections::HashMap;

/// What [`Queue::snapshot`](super::Queue::snapshot) returns.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// Tasks in memory, by kind, then by state in the order of [`TaskState::ALL`].
    /// Final tasks are kept up to `max_terminal_in_memory`, so their counts are of
    /// those kept.
    pub tasks: HashMap<String, [u64; TaskState::ALL.len()]>,
    /// Tasks ready to lease (state `queued`), by kind, then by priority in the order
    /// of [`Priority::rank`](super::model::Priority::rank) (normal, core, critical).
    pub depth: HashMap<String, [u64; 3]>,
    /// Seconds since the oldest ready task was submitted; 0 when none is ready.
    pub oldest_waiting_secs: f64,
    /// Tasks waiting for an approval decision.
    pub approvals_pending: u64,
    /// Consumer sessions registered, and their slots in use and in all.
    pub consumers: u64,
    /// Slots of those consumers in use.
    pub slots_busy: u64,
    /// Slots of those consumers in all.
    pub slots_total: u64,
    /// Lifetime counters since the broker started.
    pub counters: QueueCounters,
}

/// The queue's lifetime counters (since this broker started).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounters {
    /// Tasks accepted (not counting duplicates).
    pub submitted: u64,
    /// Submits answered with an existing task (idempotency key).
    pub duplicates: u64,
    /// Submits refused (backpressure, bad input).
    pub rejected: u64,
    /// Leases granted.
    pub leases: u64,
    /// Leases that expired without a result.
    pub lease_expiries: u64,
    /// Attempts retried after a failure or expiry.
    pub retries: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks moved to the dead-letter queue.
    pub dead_letters: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Approval requests that expired undecided.
    pub approvals_expired: u64,
    /// Task events lost by observers that fell behind.
    pub events_dropped: u64,
}

impl Core {
    /// See [`QueueSnapshot`].
    pub(crate) fn snapshot(&self) -> QueueSnapshot {
        let mut s = QueueSnapshot::default();
        let now = now_ms();
        let mut oldest: Option<u64> = None;
        for l in self.tasks.values() {
            let state = Core::visible_state(l);
            let kind = &l.rec.spec.kind;
            let at = TaskState::ALL.iter().position(|x| *x == state).unwrap_or(0);
            entry(&mut s.tasks, kind)[at] += 1;
            match state {
                TaskState::Queued => {
                    entry(&mut s.depth, kind)[l.rec.spec.priority.rank()] += 1;
                    oldest = Some(oldest.map_or(l.rec.created_ms, |o| o.min(l.rec.created_ms)));
                }
                TaskState::WaitingApproval => s.approvals_pending += 1,
                _ => {}
            }
        }
        s.oldest_waiting_secs = oldest.map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
        s.consumers = self.consumers.len() as u64;
        for c in self.consumers.values() {
            s.slots_busy += c.held.len() as u64;
            s.slots_total += u64::from(c.slots);
        }
        let c = &self.counters;
        s.counters = QueueCounters {
            submitted: c.submitted,
            duplicates: c.duplicates,
            rejected: c.rejected,
            leases: c.leases,
            lease_expiries: c.expired,
            retries: c.retries,
            succeeded: c.succeeded,
            dead_letters: c.dead,
            cancelled: c.cancelled,
            approvals_expired: c.approvals_expired,
            events_dropped: self
                .hooks
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        s
    }
}

/// The counts of `kind`, allocating its name only the first time it is seen.
fn entry<'m, const N: usize>(
    map: &'m mut HashMap<String, [u64; N]>,
    kind: &str,
) -> &'m mut [u64; N] {
    if !map.contains_key(kind) {
        map.insert(kind.to_owned(), [0; N]);
    }
    map.get_mut(kind).expect("inserted above")
}
