//! The queue's contract with operators that cooperate with it: what it tells them
//! (every step of every task, as [`TaskEvent`]s) and what it asks them (whether a
//! leased task may take an action, through [`ActionGate`]s). An approvals or
//! governance operator builds on these without the queue importing it; the broker
//! assembly wires them together (`docs/OPERATORS.md`).
//!
//! Invariants:
//! - **Events never hold up the queue.** Each observer has a bounded channel, filled
//!   with `try_send` under the queue's lock; an observer that falls behind loses
//!   events, counted in `stats.counters.events_dropped`, and sees the gap in
//!   [`TaskEvent::seq`] (consecutive for every observer of all frame types that lost
//!   nothing). An observer may ask for some frame types only; for a frame no observer
//!   wants, nothing is built.
//! - **Events are in stream order**: for one task, the order its frames were
//!   published on its channel; across tasks, the order the queue took its steps.
//!   Content is what the stream carried, which the safety layer inspected on arrival.
//! - **Gates are asked outside the queue's lock**, once per action request, and may
//!   take their time (a durable rule lookup, a person); the lease stays held and the
//!   task `waiting_approval` meanwhile. Their verdicts combine deny > ask > allow;
//!   with no gate, every action asks a person, as before gates existed.

use super::model::TaskState;
use crate::frame::FrameType;
use crate::ops::BoxFuture;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// One step of a task, as published on its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// Position in the queue's event sequence, from 1; a gap means this observer
    /// lost events (it fell behind its channel's capacity).
    pub seq: u64,
    /// The task id.
    pub task: String,
    /// The task's trace id.
    pub trace_id: String,
    /// The subject that submitted it.
    pub owner: String,
    /// Its BIP (the room `bip-<n>`).
    pub bip_id: u64,
    /// Its kind (the channel).
    pub kind: String,
    /// Its state after this step.
    pub state: TaskState,
    /// Its attempt number at this step.
    pub attempt: u32,
    /// The stream frame's type: TASK (submitted), SYSTEM (leased, requeued, ...),
    /// EVENT (progress), APPROVAL (asked or decided), RESULT.
    pub frame: FrameType,
    /// The stream frame's payload.
    pub payload: Value,
}

/// What a leased task asks to do (the payload of its APPROVAL request), with who and
/// where it is, for a gate to decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// The task id.
    pub task: String,
    /// The task's trace id.
    pub trace_id: String,
    /// The subject that submitted the task.
    pub owner: String,
    /// Its BIP.
    pub bip_id: u64,
    /// Its kind.
    pub kind: String,
    /// The consumer session holding the lease.
    pub consumer: String,
    /// The attempt asking.
    pub attempt: u32,
    /// The request as the consumer sent it, without `task` and `lease`: the action
    /// (e.g. `{"command": "rm -rf build", "cwd": "..."}`) and its reason.
    pub action: Value,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it; `by` names the rule or policy, `reason` says why.
    Allow {
        /// The rule that allowed it.
        by: String,
        /// Why.
        reason: String,
    },
    /// Refuse it.
    Deny {
        /// The rule that denied it.
        by: String,
        /// Why.
        reason: String,
    },
    /// A person decides (`op.queue.approve` or an APPROVAL decision frame).
    Ask,
}

impl Verdict {
    /// Combines two verdicts: deny > ask > allow (the first deny or allow is kept).
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (d @ Verdict::Deny { .. }, _) | (_, d @ Verdict::Deny { .. }) => d,
            (Verdict::Ask, _) | (_, Verdict::Ask) => Verdict::Ask,
            (a, _) => a,
        }
    }
}

/// Decides on a leased task's actions before a person is asked.
pub trait ActionGate: Send + Sync + 'static {
    /// The gate's verdict on `action`.
    fn check<'a>(&'a self, action: &'a ActionRequest) -> BoxFuture<'a, Verdict>;

    /// How long `action` waits for a person when the verdicts leave it to one (the
    /// shortest of the gates' answers applies); `None`: the queue's default.
    fn ask_timeout(&self, _action: &ActionRequest) -> Option<std::time::Duration> {
        None
    }
}

/// The observers and gates registered with one queue.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Each observer, and the stream frame types it wants (`None`: all).
    observers: Vec<(mpsc::Sender<TaskEvent>, Option<Vec<FrameType>>)>,
    seq: u64,
    pub(crate) dropped: Arc<AtomicU64>,
    gates: Arc<RwLock<Vec<Arc<dyn ActionGate>>>>,
}

impl Hooks {
    /// A new observer with room for `capacity` events, of the stream frame types in
    /// `only` (all when `None`).
    pub(crate) fn observe(
        &mut self,
        capacity: usize,
        only: Option<Vec<FrameType>>,
    ) -> mpsc::Receiver<TaskEvent> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.observers.push((tx, only));
        rx
    }

    /// Whether anyone listens to frames of `kind`: events are built only then.
    pub(crate) fn observed(&self, kind: FrameType) -> bool {
        self.observers
            .iter()
            .any(|(_, only)| only.as_ref().is_none_or(|k| k.contains(&kind)))
    }

    /// Hands `make()` to every observer of `kind` without waiting; forgets observers
    /// that hung up, counts events lost to full channels. `seq` counts every event
    /// built, so an observer of some types sees gaps for the others: it compares
    /// `seq` only to detect loss when it observes everything.
    pub(crate) fn emit(&mut self, kind: FrameType, make: impl FnOnce(u64) -> TaskEvent) {
        self.seq += 1;
        let ev = make(self.seq);
        let dropped = &self.dropped;
        self.observers.retain(|(tx, only)| {
            if only.as_ref().is_some_and(|k| !k.contains(&kind)) {
                return !tx.is_closed();
            }
            match tx.try_send(ev.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// The gates, shared so that they can be asked without the queue's lock.
    pub(crate) fn gates(&self) -> Arc<RwLock<Vec<Arc<dyn ActionGate>>>> {
        self.gates.clone()
    }
}

/// Asks every gate about `action` and combines their verdicts; [`Verdict::Ask`] when
/// there is none.
pub(crate) async fn decide(
    gates: &RwLock<Vec<Arc<dyn ActionGate>>>,
    action: &ActionRequest,
) -> Verdict {
    let list: Vec<Arc<dyn ActionGate>> = gates.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut verdict: Option<Verdict> = None;
    for g in list {
        let v = g.check(action).await;
        verdict = Some(match verdict {
            None => v,
            Some(so_far) => so_far.and(v),
        });
    }
    verdict.unwrap_or(Verdict::Ask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(by: &str) -> Verdict {
        Verdict::Allow {
            by: by.into(),
            reason: String::new(),
        }
    }

    fn deny(by: &str) -> Verdict {
        Verdict::Deny {
            by: by.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn verdicts_combine_deny_over_ask_over_allow() {
        assert_eq!(allow("a").and(allow("b")), allow("a"));
        assert_eq!(allow("a").and(Verdict::Ask), Verdict::Ask);
        assert_eq!(Verdict::Ask.and(deny("d")), deny("d"));
        assert_eq!(deny("d").and(allow("a")), deny("d"));
        assert_eq!(deny("d").and(deny("e")), deny("d"));
    }

    #[tokio::test]
    async fn an_observer_that_falls_behind_loses_events_and_sees_the_gap() {
        let mut h = Hooks::default();
        let mut rx = h.observe(2, None);
        let ev = |seq| TaskEvent {
            seq,
            task: "t".into(),
            trace_id: "t".into(),
            owner: "o".into(),
            bip_id: 1,
            kind: "k".into(),
            state: TaskState::Queued,
            attempt: 0,
            frame: FrameType::Task,
            payload: Value::Null,
        };
        for _ in 0..3 {
            h.emit(FrameType::Task, ev);
        }
        assert_eq!(h.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.recv().await.unwrap().seq, 1);
        assert_eq!(rx.recv().await.unwrap().seq, 2);
        h.emit(FrameType::Task, ev);
        assert_eq!(rx.recv().await.unwrap().seq, 4, "3 was lost");
        drop(rx);
        h.emit(FrameType::Task, ev);
        assert!(
            !h.observed(FrameType::Task),
            "a closed observer is forgotten"
        );
        // An observer of approvals only: nothing is built for other frames.
        let _approvals = h.observe(2, Some(vec![FrameType::Approval]));
        assert!(h.observed(FrameType::Approval) && !h.observed(FrameType::Event));
    }
}
