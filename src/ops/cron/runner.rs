//! The runner: the schedules in memory, ordered by their next firing, and the one task
//! that publishes each firing when it is due.
//!
//! Invariants: firings are published in the order of their instants, and of their
//! schedules' creation for one instant, by this one task; a firing is published
//! through [`Bus::publish`], the path every server publish takes, so the safety
//! layer inspects it for its address; a firing later than `grace_ms` is *missed*, and
//! its schedule's [`Missed`] policy decides (skip it, or fire once now), the same way
//! after downtime (the first pass after open) as after a stall. The row of a
//! schedule is rewritten after each firing without waiting for the commit: a crash
//! between the publish and that commit fires it again at the next start (within
//! grace), never loses it.
//!
//! Time is a [`Clock`]: wall-clock milliseconds read through tokio's clock, so that
//! tests on a paused tokio clock drive schedules deterministically.

use super::model::{Missed, Schedule};
use super::schema;
use super::spec::Rule;
use crate::address::Address;
use crate::bus::Bus;
use crate::frame::{Envelope, FrameType};
use crate::store::Store;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Wall-clock time as the scheduler sees it: a wall-clock reading taken once, moved
/// on by tokio's monotonic clock. A paused tokio clock pauses it; `advance` moves it.
/// (A long-running broker follows the monotonic clock, not later steps of the wall
/// clock: an NTP step is picked up at the next start.)
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    /// The system's wall clock, now.
    pub fn system() -> Clock {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock::starting_at(ms)
    }

    /// A clock that reads `ms` (Unix) now, for tests.
    pub fn starting_at(ms: u64) -> Clock {
        Clock {
            base_ms: ms,
            start: Instant::now(),
        }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> u64 {
        let run = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(run)
    }

    /// The tokio instant at which this clock reads `ms`.
    fn instant_at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms.saturating_sub(self.base_ms))
    }
}

/// A schedule and its parsed rule.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) s: Schedule,
    pub(crate) rule: Rule,
}

/// Every live schedule, and the order they fire in.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) all: HashMap<String, Live>,
    /// `(next_ms, seq, id)`.
    due: BTreeSet<(u64, u64, String)>,
    pub(crate) next_seq: u64,
    /// Bytes of every schedule's payload JSON, against `max_payload_bytes_total`.
    pub(crate) payload_bytes: usize,
}

impl State {
    /// Adds (or replaces) a schedule.
    pub(crate) fn insert(&mut self, live: Live) {
        self.remove(&live.s.id);
        self.next_seq = self.next_seq.max(live.s.seq + 1);
        self.due
            .insert((live.s.next_ms, live.s.seq, live.s.id.clone()));
        self.payload_bytes += live.s.payload.to_string().len();
        self.all.insert(live.s.id.clone(), live);
    }

    /// Removes a schedule.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Live> {
        let live = self.all.remove(id)?;
        self.payload_bytes = self
            .payload_bytes
            .saturating_sub(live.s.payload.to_string().len());
        self.due
            .remove(&(live.s.next_ms, live.s.seq, live.s.id.clone()));
        Some(live)
    }

    /// How many schedules `owner` has.
    pub(crate) fn count_of(&self, owner: &str) -> usize {
        self.all.values().filter(|l| l.s.owner == owner).count()
    }

    fn first_due(&self) -> Option<u64> {
        self.due.first().map(|(at, _, _)| *at)
    }
}

/// What the runner needs.
pub(crate) struct Runner {
    pub(crate) state: std::sync::Mutex<State>,
    pub(crate) bus: Bus,
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) grace_ms: u64,
    pub(crate) wake: Notify,
}

impl Runner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fires everything due at `now`, in order.
    fn fire_due(&self, now: u64) {
        let mut st = self.lock();
        while let Some((at, seq, id)) = st.due.first().cloned() {
            if at > now {
                break;
            }
            st.due.pop_first();
            let Some(mut live) = st.all.remove(&id) else {
                continue;
            };
            let late = now - at > self.grace_ms;
            if !late || live.s.missed == Missed::RunOnce {
                self.publish(&mut live.s, now);
            } else {
                live.s.skipped += 1;
                tracing::info!(%id, late_ms = now - at, "cron: missed firing skipped");
            }
            // On time: the rule's next instant after this one (no drift). Late: the
            // next after now (what was missed stays missed).
            match live.rule.next_after(if late { now } else { at }) {
                Some(next) => {
                    live.s.next_ms = next;
                    self.store.write(schema::put(&live.s));
                    st.due.insert((next, seq, id.clone()));
                    st.all.insert(id, live);
                }
                None => {
                    // Done (a one-shot): it leaves `all` for good.
                    st.payload_bytes = st
                        .payload_bytes
                        .saturating_sub(live.s.payload.to_string().len());
                    self.store.write(schema::delete(&id));
                }
            }
        }
    }

    /// Publishes one firing; a refusal (blocked by the safety layer, no such channel)
    /// is counted on the schedule, which stays.
    fn publish(&self, s: &mut Schedule, now: u64) {
        let mut env = Envelope::new(FrameType::Message, s.payload.clone());
        env.from = Some(format!("cron:{}", s.id));
        env.trace_id = Some(s.id.clone());
        let out = Address::parse(&s.address)
            .map_err(crate::error::WireError::from)
            .and_then(|a| self.bus.publish(&a, env));
        s.last_ms = Some(now);
        match out {
            Ok(_) => {
                s.runs += 1;
                s.last_error = None;
            }
            Err(e) => {
                tracing::warn!(id = %s.id, code = e.code.as_str(), "cron: firing refused");
                s.failures += 1;
                s.last_error = Some(format!("{}: {}", e.code.as_str(), e.message));
            }
        }
    }

    /// Runs until `stop` turns true.
    pub(crate) async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_ms();
            let first = self.lock().first_due();
            match first {
                Some(at) if at <= now => self.fire_due(now),
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(self.clock.instant_at(at)) => {}
                        _ = self.wake.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}
