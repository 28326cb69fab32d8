//! Lease expiries and backoff ends: one heap of deadlines, fired by the queue's
//! timer task (see `mod.rs`), and the SYSTEM notices that tell a consumer it lost a
//! lease.
//!
//! An entry carries the task's timer generation; re-arming a task bumps it, so stale
//! entries are skipped when they come due instead of being searched for and removed.

use super::core::{Core, LeaseState};
use super::model::TaskState;
use crate::frame::{Envelope, FrameType};
use serde_json::json;
use std::cmp::Reverse;
use tokio::time::Instant;

impl Core {
    pub(crate) fn arm(&mut self, id: &str, at: Instant) {
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        live.timer_gen += 1;
        let earlier = self.timers.peek().is_none_or(|r| at < r.0 .0);
        self.timers
            .push(Reverse((at, live.timer_gen, id.to_owned())));
        if earlier {
            // The timer task sleeps until the earliest deadline; wake it to re-plan.
            self.wake.notify_one();
        }
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|r| r.0 .0)
    }

    /// Fires every timer due at `now`: approval requests to warn about or expire,
    /// expired leases and finished backoffs.
    pub(crate) fn fire_due(&mut self, now: Instant) {
        let mut woke = false;
        while let Some(Reverse((at, gen, id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(live) = self.tasks.get_mut(&id) else {
                continue;
            };
            if live.timer_gen != gen {
                continue;
            }
            if live.pending.is_some() && self.approval_due(&id, now) {
                continue;
            }
            let Some(live) = self.tasks.get_mut(&id) else {
                continue;
            };
            if let Some(lease) = &live.lease {
                if lease.expires > now {
                    // Renewed since this entry was armed: re-arm at the new expiry.
                    let exp = lease.expires;
                    self.timers.push(Reverse((exp, gen, id)));
                    continue;
                }
                self.counters.expired += 1;
                let lease = lease.clone();
                self.tell_consumer(&lease, "lease_expired", &id);
                self.attempt_failed(&id, "lease expired", json!({"code": "lease_expired"}));
                woke = true;
            } else if live.rec.state == TaskState::Queued && live.not_before.is_some() {
                live.not_before = None;
                self.make_ready(&id);
                woke = true;
            }
        }
        if woke {
            self.dispatch();
        }
    }

    /// Sends a SYSTEM notice about a lease to its consumer.
    pub(crate) fn tell_consumer(&self, lease: &LeaseState, event: &str, task: &str) {
        let env = Envelope::new(
            FrameType::System,
            json!({"event": event, "task": task, "lease": lease.id}),
        );
        let _ = self
            .bus
            .send_private(std::slice::from_ref(&lease.consumer), env);
    }
}
