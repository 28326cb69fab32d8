//! Ready queues: one per kind, three FIFO lanes per kind (critical, core, normal), and
//! the aging rule that keeps a flood of high-priority tasks from starving the rest.
//!
//! Aging: a task's effective rank is its priority's rank plus one per `aging` waited
//! since it became ready, capped at critical. Each lane is FIFO, so its head is its
//! oldest task; picking compares only the three heads: highest effective rank first,
//! then the oldest (lowest submission `seq`). A normal task therefore waits at most
//! `2 * aging` before it ranks with critical tasks, and then it is older than every
//! critical task that arrived after it: a flood cannot postpone it forever.

use super::model::Priority;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// One waiting task in a lane.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    /// Task id.
    pub(crate) id: String,
    /// Submission order.
    pub(crate) seq: u64,
    /// When it became ready (submit, retry or requeue).
    pub(crate) since: Instant,
}

/// The three lanes of one kind.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    lanes: [VecDeque<Ready>; 3],
}

impl Lanes {
    /// Tasks waiting.
    pub(crate) fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many tasks would be picked before a task just pushed at `p` (ignoring aging).
    pub(crate) fn position_of_new(&self, p: Priority) -> usize {
        self.lanes[p.rank()..]
            .iter()
            .map(VecDeque::len)
            .sum::<usize>()
    }

    fn push(&mut self, p: Priority, r: Ready) {
        self.lanes[p.rank()].push_back(r);
    }

    /// The lane to pop next under the aging rule.
    fn best(&self, now: Instant, aging: Duration) -> Option<usize> {
        let mut best: Option<(usize, u64, usize)> = None; // (effective, seq, lane)
        for (lane, q) in self.lanes.iter().enumerate() {
            let Some(head) = q.front() else { continue };
            let waited = now.saturating_duration_since(head.since);
            let boost = if aging.is_zero() {
                0
            } else {
                (waited.as_nanos() / aging.as_nanos()).min(2) as usize
            };
            let eff = (lane + boost).min(2);
            let better = match best {
                None => true,
                Some((e, s, _)) => eff > e || (eff == e && head.seq < s),
            };
            if better {
                best = Some((eff, head.seq, lane));
            }
        }
        best.map(|b| b.2)
    }

    fn remove(&mut self, id: &str) -> bool {
        for q in &mut self.lanes {
            if let Some(i) = q.iter().position(|r| r.id == id) {
                q.remove(i);
                return true;
            }
        }
        false
    }
}

/// All ready queues, by kind.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    kinds: HashMap<String, Lanes>,
    aging: Duration,
}

impl Scheduler {
    /// Empty, with the aging period.
    pub(crate) fn new(aging: Duration) -> Self {
        Scheduler {
            kinds: HashMap::new(),
            aging,
        }
    }

    /// Makes a task ready.
    pub(crate) fn push(&mut self, kind: &str, p: Priority, r: Ready) {
        self.kinds.entry(kind.to_owned()).or_default().push(p, r);
    }

    /// Takes the next task of `kind` under the aging rule.
    pub(crate) fn pop(&mut self, kind: &str, now: Instant) -> Option<Ready> {
        let lanes = self.kinds.get_mut(kind)?;
        let lane = lanes.best(now, self.aging)?;
        lanes.lanes[lane].pop_front()
    }

    /// Takes the best task among `kinds`: highest effective rank, then oldest.
    pub(crate) fn pop_any(&mut self, kinds: &[String], now: Instant) -> Option<Ready> {
        let mut best: Option<(usize, u64, &str)> = None;
        for k in kinds {
            let Some(lanes) = self.kinds.get(k) else {
                continue;
            };
            let Some(lane) = lanes.best(now, self.aging) else {
                continue;
            };
            let head = &lanes.lanes[lane][0];
            let waited = now.saturating_duration_since(head.since);
            let boost = if self.aging.is_zero() {
                0
            } else {
                (waited.as_nanos() / self.aging.as_nanos()).min(2) as usize
            };
            let eff = (lane + boost).min(2);
            if best.is_none_or(|(e, s, _)| eff > e || (eff == e && head.seq < s)) {
                best = Some((eff, head.seq, k));
            }
        }
        let kind = best?.2.to_owned();
        self.pop(&kind, now)
    }

    /// Removes a task (cancel); false when it was not waiting.
    pub(crate) fn remove(&mut self, kind: &str, id: &str) -> bool {
        self.kinds.get_mut(kind).is_some_and(|l| l.remove(id))
    }

    /// Tasks of `kind` waiting.
    pub(crate) fn depth(&self, kind: &str) -> usize {
        self.kinds.get(kind).map_or(0, Lanes::len)
    }

    /// Where a new task of `kind` at `p` would stand.
    pub(crate) fn position_of_new(&self, kind: &str, p: Priority) -> usize {
        self.kinds.get(kind).map_or(0, |l| l.position_of_new(p))
    }

    /// Whether anything of `kind` waits.
    pub(crate) fn has(&self, kind: &str) -> bool {
        self.kinds.get(kind).is_some_and(|l| !l.is_empty())
    }

    /// Depth per kind, for `stats`.
    pub(crate) fn depths(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .kinds
            .iter()
            .map(|(k, l)| (k.clone(), l.len()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, seq: u64, since: Instant) -> Ready {
        Ready {
            id: id.into(),
            seq,
            since,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn priority_first_then_fifo_then_aging_lifts_the_old() {
        let mut s = Scheduler::new(Duration::from_secs(10));
        let t0 = Instant::now();
        s.push("k", Priority::Normal, r("n1", 1, t0));
        s.push("k", Priority::Critical, r("c1", 2, t0));
        s.push("k", Priority::Core, r("o1", 3, t0));
        s.push("k", Priority::Critical, r("c2", 4, t0));
        let order: Vec<String> = (0..4).map(|_| s.pop("k", t0).unwrap().id).collect();
        assert_eq!(order, ["c1", "c2", "o1", "n1"]);
        // A normal task that waited 2 * aging beats critical tasks that came later.
        s.push("k", Priority::Normal, r("old", 5, t0));
        let later = t0 + Duration::from_secs(20);
        s.push("k", Priority::Critical, r("c3", 6, later));
        assert_eq!(s.pop("k", later).unwrap().id, "old");
        // After only one period it ranks as core: still behind critical.
        s.push("k", Priority::Normal, r("n2", 7, later));
        s.push("k", Priority::Critical, r("c4", 8, later));
        let t = later + Duration::from_secs(10);
        assert_eq!(s.pop("k", t).unwrap().id, "c3");
        assert_eq!(s.pop("k", t).unwrap().id, "c4");
        assert_eq!(s.pop("k", t).unwrap().id, "n2");
        assert!(s.pop("k", t).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn pop_any_compares_heads_across_kinds_and_remove_works() {
        let mut s = Scheduler::new(Duration::from_secs(10));
        let t0 = Instant::now();
        s.push("a", Priority::Normal, r("a1", 1, t0));
        s.push("b", Priority::Core, r("b1", 2, t0));
        s.push("a", Priority::Normal, r("a2", 3, t0));
        let kinds = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(s.pop_any(&kinds, t0).unwrap().id, "b1");
        assert!(s.remove("a", "a1"));
        assert!(!s.remove("a", "a1"));
        assert_eq!(s.depth("a"), 1);
        assert_eq!(s.position_of_new("a", Priority::Normal), 1);
        assert_eq!(s.position_of_new("a", Priority::Critical), 0);
    }
}
