//! The engine: where a channel's publishes get their order (offset, epoch) and are kept
//! (history). The bus keeps everything local around it: subscribers, outboxes, the
//! fan-out, presence of its own sessions.
//!
//! [`MemoryEngine`] is the engine of one process: each channel's [`ChannelLog`] is an
//! offset counter, a random epoch and a [`History`] ring, and lives under the
//! channel's lock, so that taking an offset, keeping the publish and fanning it out
//! are one step (the invariant recovery rests on, see `channel`). Its history counts
//! against the bus's [`HistoryBudget`].
//!
//! An engine shared by several nodes (Redis, issue 14) takes its offsets over the
//! network; `docs/ARCHITECTURE.md` ("the engine seam") says how that fits: the engine
//! orders, every node fans out what the engine hands it. That engine adds an
//! asynchronous path beside this one; the memory engine keeps the synchronous one,
//! which is why [`ChannelLog`] is what a channel holds rather than a future.

use super::delivery::Delivery;
use super::history::{History, HistoryBudget, Range};
use crate::address::Address;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes the log of each channel the bus creates.
pub(crate) trait Engine: Send + Sync + 'static {
    /// The engine's name, for `status`.
    fn name(&self) -> &'static str;

    /// The log of a channel being created at `addr`: a new epoch, offset 0, nothing
    /// kept.
    fn open(&self, addr: &Address) -> Box<dyn ChannelLog>;
}

/// One channel's order and history. Called under the channel's lock, so every
/// method is short and never waits.
pub(crate) trait ChannelLog: Send {
    /// The channel's epoch: offsets compare only within one.
    fn epoch(&self) -> &str;

    /// The last offset taken (0 before the first publish).
    fn top(&self) -> u64;

    /// Takes the next offset (the last + 1).
    fn next_offset(&mut self) -> u64;

    /// Keeps the publish given `offset` (the one just taken), evicting what the
    /// bounds require; expired entries go first.
    fn keep(&mut self, offset: u64, d: &Delivery, now: Instant);

    /// Drops what is past its age.
    fn expire(&mut self, now: Instant);

    /// Publishes after `since`, at most `limit` and about `budget` bytes.
    fn after(&self, since: u64, limit: usize, budget: usize) -> Range;

    /// The newest `limit` publishes, about `budget` bytes at most.
    fn last(&self, limit: usize, budget: usize) -> Range;

    /// Publishes kept.
    fn len(&self) -> usize;

    /// Whether nothing is kept.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes kept in this process (0 for an engine that keeps history elsewhere).
    fn bytes(&self) -> usize;

    /// Evicts the oldest until at most `level` bytes remain; returns the bytes freed.
    fn trim_to(&mut self, level: usize) -> usize;

    /// Whether the bus's history budget passed its reclaim mark.
    fn pressed(&self) -> bool;
}

/// The engine of one process. See the module docs.
pub(crate) struct MemoryEngine {
    history_size: usize,
    ttl: Option<Duration>,
    budget: Arc<HistoryBudget>,
}

impl MemoryEngine {
    /// Channels keeping `history_size` publishes for `ttl`, within `budget`.
    pub(crate) fn new(
        history_size: usize,
        ttl: Option<Duration>,
        budget: Arc<HistoryBudget>,
    ) -> Self {
        MemoryEngine {
            history_size,
            ttl,
            budget,
        }
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn open(&self, _addr: &Address) -> Box<dyn ChannelLog> {
        Box::new(MemoryLog {
            epoch: format!("e-{:08x}", fastrand::u32(..)),
            offset: 0,
            history: History::new(self.history_size, self.ttl, self.budget.clone()),
        })
    }
}

/// A channel's log in the memory engine.
struct MemoryLog {
    epoch: String,
    offset: u64,
    history: History,
}

impl ChannelLog for MemoryLog {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn top(&self) -> u64 {
        self.offset
    }

    fn next_offset(&mut self) -> u64 {
        self.offset += 1;
        self.offset
    }

    fn keep(&mut self, offset: u64, d: &Delivery, now: Instant) {
        self.history.expire(now);
        self.history.push(offset, d.clone(), now);
    }

    fn expire(&mut self, now: Instant) {
        self.history.expire(now);
    }

    fn after(&self, since: u64, limit: usize, budget: usize) -> Range {
        self.history.after(since, limit, self.offset, budget)
    }

    fn last(&self, limit: usize, budget: usize) -> Range {
        self.history.last(limit, self.offset, budget)
    }

    fn len(&self) -> usize {
        self.history.len()
    }

    fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    fn bytes(&self) -> usize {
        self.history.bytes()
    }

    fn trim_to(&mut self, level: usize) -> usize {
        self.history.trim_to(level)
    }

    fn pressed(&self) -> bool {
        self.history.pressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Envelope, FrameType};

    #[test]
    fn a_memory_log_orders_keeps_and_reads_back() {
        let engine = MemoryEngine::new(2, None, HistoryBudget::new(0, 0));
        let addr = Address::new("r", "c").unwrap();
        let (mut a, b) = (engine.open(&addr), engine.open(&addr));
        assert_ne!(a.epoch(), b.epoch(), "each channel made is a new epoch");
        let now = Instant::now();
        for _ in 0..3 {
            let n = a.next_offset();
            let mut e = Envelope::new(FrameType::Message, serde_json::json!(n));
            e.offset = Some(n);
            a.keep(n, &Delivery::new(e), now);
        }
        assert_eq!((a.top(), a.len()), (3, 2));
        let r = a.after(0, 10, usize::MAX);
        assert!(!r.complete, "offset 1 was evicted by the ring of 2");
        assert_eq!(r.messages.len(), 2);
        assert!(a.last(1, usize::MAX).complete);
        assert!(a.bytes() > 0 && !a.pressed());
        assert!(a.trim_to(0) > 0 && a.is_empty());
    }
}
