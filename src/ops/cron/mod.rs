//! The cron operator (`op.cron.*`): publish a payload on a channel later (a one-shot
//! `delay_ms`) or on a cron rule in an explicit zone, on the authority of the
//! identity that scheduled it.
//!
//! Invariants: a schedule is acknowledged only once it is committed, and every
//! stored schedule is loaded again at open; the caller needed `publish` on the
//! address, and the payload passed the safety layer, before anything was stored;
//! firings go through the bus's publish path (the safety layer inspects each one);
//! missed firings follow the schedule's policy (`skip` or `run_once`), see `runner`.
//! Bounds: schedules per identity and in total, payload bytes, the minimum interval
//! of a rule, the longest delay (`[cron]`, `docs/OPERATORS.md`).
//!
//! # Layout
//! - `config`: the `[cron]` section.
//! - `access`: who may run each command (the operator's needs).
//! - `spec`: cron rules, zones, one-shot instants, the minimum interval.
//! - `model`: a schedule as stored and shown; the missed-run policy.
//! - `schema`: the table, its migrations (operator `cron`), its rows.
//! - `runner`: the schedules in firing order and the task that fires them.

mod access;
pub mod config;
mod model;
mod runner;
mod schema;
mod spec;
#[cfg(test)]
mod tests;

pub use config::CronConfig;
pub use model::Missed;
pub use runner::Clock;

use crate::address::Address;
use crate::auth::authority::{Need, Resource};
use crate::bus::Bus;
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use crate::store::{Store, StoreError, StoreOptions};
use access::{string, Cmd};
use model::Schedule;
use runner::{Live, Runner, State};
use serde_json::{json, Value};
use spec::{Rule, SpecError, Zone};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The cron operator. Cheap to clone; register it with
/// [`Operators::with`](crate::ops::Operators::with).
#[derive(Clone)]
pub struct Cron {
    inner: Arc<Inner>,
}

struct Inner {
    runner: Arc<Runner>,
    cfg: CronConfig,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn invalid(field: &str, why: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, why).with_details(json!({"field": field}))
}

impl From<SpecError> for WireError {
    fn from(e: SpecError) -> WireError {
        match e.limit {
            Some(limit) => WireError::new(ErrorCode::InvalidField, e.why)
                .with_details(json!({"field": e.field, "limit": limit})),
            None => invalid(e.field, e.why),
        }
    }
}

fn store_failed(e: StoreError) -> WireError {
    tracing::error!(error = %e, "cron: store failed");
    WireError::new(
        ErrorCode::Internal,
        "the schedule store could not commit; list your schedules and try again",
    )
}

impl Cron {
    /// Opens the store, loads every schedule and starts the runner on the system
    /// clock. Call inside a tokio runtime.
    ///
    /// # Errors
    /// The store could not be opened or read, or is newer than this build.
    pub fn open(bus: Bus, cfg: CronConfig, opts: StoreOptions) -> Result<Cron, StoreError> {
        Cron::open_with(bus, cfg, opts, Clock::system())
    }

    /// [`Cron::open`] on a given clock (tests start it at a fixed instant, on a paused
    /// tokio clock).
    ///
    /// # Errors
    /// As [`Cron::open`].
    pub fn open_with(
        bus: Bus,
        cfg: CronConfig,
        opts: StoreOptions,
        clock: Clock,
    ) -> Result<Cron, StoreError> {
        let opened = Store::open(cfg.db_path.as_deref(), opts, &[&schema::SCHEMA])?;
        let stored = schema::load(opened.conn())?;
        let store = opened.start()?;
        let mut state = State::default();
        for s in stored {
            match s.rule() {
                Ok(rule) => state.insert(Live { s, rule }),
                Err(e) => {
                    tracing::error!(id = %s.id, why = %e.why, "cron: a stored rule does not parse; left in place")
                }
            }
        }
        tracing::info!(schedules = state.all.len(), "cron: schedules loaded");
        let runner = Arc::new(Runner {
            state: Mutex::new(state),
            bus,
            store,
            clock,
            grace_ms: cfg.grace_ms,
            wake: Notify::new(),
        });
        let (stop, rx) = watch::channel(false);
        let r = runner.clone();
        let task = tokio::spawn(async move { r.run(rx).await });
        Ok(Cron {
            inner: Arc::new(Inner {
                runner,
                cfg,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The clock the runner reads.
    pub fn clock(&self) -> Clock {
        self.inner.runner.clock
    }

    async fn schedule(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        const FIELDS: &[&str] = &["address", "payload", "cron", "delay_ms", "tz", "missed"];
        let map = args
            .as_object()
            .ok_or_else(|| invalid("args", "arguments must be an object"))?;
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                k,
                format!("unknown field `{k}`; schedule takes {}", FIELDS.join(", ")),
            ));
        }
        let cfg = &self.inner.cfg;
        let address = Address::parse(string(args, "address")?)?;
        let payload = args.get("payload").cloned().ok_or_else(|| {
            WireError::new(
                ErrorCode::MissingField,
                "`payload` is required (what each firing publishes)",
            )
            .with_details(json!({"field": "payload"}))
        })?;
        let bytes = payload.to_string().len();
        if bytes > cfg.max_payload_bytes {
            return Err(invalid(
                "payload",
                format!(
                    "the payload is {bytes} bytes of JSON; at most {}",
                    cfg.max_payload_bytes
                ),
            )
            .with_details(
                json!({"field": "payload", "limit": "payload_bytes", "max": cfg.max_payload_bytes}),
            ));
        }
        let missed = match args.get("missed") {
            None | Some(Value::Null) => Missed::Skip,
            Some(Value::String(s)) => Missed::parse(s)
                .ok_or_else(|| invalid("missed", "`missed` is `skip` or `run_once`"))?,
            Some(_) => return Err(invalid("missed", "`missed` is `skip` or `run_once`")),
        };
        let now = self.inner.runner.clock.now_ms();
        let (rule, cron, tz, at_ms) = match (args.get("cron"), args.get("delay_ms")) {
            (Some(Value::String(expr)), None) => {
                let zone = Zone::parse(string(args, "tz").map_err(|_| {
                    invalid(
                        "tz",
                        "`tz` is required with `cron`: `UTC` or a fixed offset like `+02:00`",
                    )
                })?)?;
                (
                    Rule::cron(expr, zone)?,
                    Some(expr.clone()),
                    Some(zone.name()),
                    None,
                )
            }
            (None, Some(d)) => {
                if args.get("tz").is_some() {
                    return Err(invalid(
                        "tz",
                        "`tz` goes with `cron`; a `delay_ms` counts from now",
                    ));
                }
                let d = d.as_u64().filter(|d| *d <= cfg.max_delay_ms).ok_or_else(|| {
                    invalid("delay_ms", format!("`delay_ms` must be 0 to {} ms", cfg.max_delay_ms))
                        .with_details(json!({"field": "delay_ms", "limit": "max_delay_ms", "max": cfg.max_delay_ms}))
                })?;
                // A zero delay fires at the runner's next turn, one ms on.
                let at = now + d.max(1);
                (Rule::Once { at_ms: at }, None, None, Some(at))
            }
            (Some(_), None) => return Err(invalid("cron", "`cron` must be a string")),
            _ => {
                return Err(WireError::new(
                    ErrorCode::MissingField,
                    "give exactly one of `cron` (with `tz`) or `delay_ms`",
                )
                .with_details(json!({"field": "cron"})))
            }
        };
        let next_ms = if at_ms.is_some() {
            now + 1
        } else {
            // A rare rule's search is long (up to croner's year 5000): off the
            // async workers.
            let (probe, min) = (rule.clone(), cfg.min_interval_ms);
            tokio::task::spawn_blocking(move || probe.check(now, min))
                .await
                .map_err(|_| WireError::new(ErrorCode::Internal, "checking the rule failed"))??
        };
        let next_ms = at_ms.unwrap_or(next_ms);
        let owner = caller.identity.subject.clone();
        let id = format!("cron-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let s = {
            let mut st = self.inner.runner.lock();
            let (mine, total) = (st.count_of(&owner), st.all.len());
            let full = if mine >= cfg.max_per_identity {
                Some(("max_per_identity", cfg.max_per_identity))
            } else if total >= cfg.max_total {
                Some(("max_total", cfg.max_total))
            } else if st.payload_bytes + bytes > cfg.max_payload_bytes_total {
                Some(("max_payload_bytes_total", cfg.max_payload_bytes_total))
            } else {
                None
            };
            if let Some((limit, max)) = full {
                return Err(WireError::new(
                    ErrorCode::Overloaded,
                    format!("{owner} may not hold more schedules ([cron] {limit} = {max}); cancel one first"),
                )
                .with_details(json!({"limit": limit, "max": max})));
            }
            let s = Schedule {
                id,
                owner,
                address: address.to_string(),
                payload,
                cron,
                tz,
                at_ms,
                missed,
                created_ms: now,
                seq: st.next_seq,
                next_ms,
                runs: 0,
                skipped: 0,
                failures: 0,
                last_ms: None,
                last_error: None,
            };
            // Written under the lock, so that a firing's later row cannot be enqueued
            // before this one.
            self.inner.runner.store.write(schema::put(&s));
            st.insert(Live { s: s.clone(), rule });
            s
        };
        self.inner.runner.wake.notify_one();
        if let Err(e) = self.inner.runner.store.ack().wait().await {
            // Not durable, so not made: it must not fire from memory alone.
            self.inner.runner.lock().remove(&s.id);
            return Err(store_failed(e));
        }
        Ok(s.view())
    }

    fn list(&self, caller: &Caller) -> Value {
        let st = self.inner.runner.lock();
        let mut mine: Vec<&Schedule> = st
            .all
            .values()
            .map(|l| &l.s)
            .filter(|s| caller.is_admin() || s.owner == caller.identity.subject)
            .collect();
        mine.sort_by_key(|s| (s.next_ms, s.seq));
        json!({"schedules": mine.iter().map(|s| s.view()).collect::<Vec<_>>()})
    }

    async fn cancel(&self, args: &Value) -> Result<Value, WireError> {
        let id = string(args, "id")?;
        let gone = {
            let mut st = self.inner.runner.lock();
            let gone = st.remove(id);
            if gone.is_some() {
                self.inner.runner.store.write(schema::delete(id));
            }
            gone
        };
        let Some(live) = gone else {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no schedule {id}"),
            ));
        };
        self.inner
            .runner
            .store
            .ack()
            .wait()
            .await
            .map_err(store_failed)?;
        Ok(json!({"id": id, "cancelled": true, "runs": live.s.runs}))
    }

    /// Stops the runner and closes the store after every enqueued write.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let store = self.inner.runner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

impl Operator for Cron {
    fn namespace(&self) -> &str {
        "cron"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move {
            match Cmd::parse(name)? {
                Cmd::Schedule => self.schedule(caller, &args).await,
                Cmd::List => Ok(self.list(caller)),
                Cmd::Cancel => self.cancel(&args).await,
            }
        })
    }

    fn command_need(&self, _caller: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
        access::need(name, args)
    }

    fn resource<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Resource, WireError>> {
        Box::pin(async move {
            let st = self.inner.runner.lock();
            let live = st
                .all
                .get(key)
                .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no schedule {key}")))?;
            Ok(Resource {
                id: live.s.id.clone(),
                address: Address::parse(&live.s.address)?,
                owner: live.s.owner.clone(),
                holder: None,
            })
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown())
    }
}
