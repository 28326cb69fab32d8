//! `/metrics`: the broker's Prometheus metrics, through `prometheus-client`, in the
//! Prometheus text format 0.0.4.
//!
//! Most numbers already live where they happen, as atomics: the bus's counters
//! ([`Bus::stats`]), the transport's ([`Counters`]), the queue's
//! ([`Queue::snapshot`]) and its store's ([`Queue::store_stats`]). A [`Collector`]
//! reads them at scrape time, so the publish path pays nothing for metrics it did not
//! already pay, and no layer below the transport imports the metrics library. Only
//! what has no home below is kept here: commands by name and result, and the two
//! histograms the telemetry observer fills from the queue's task events.
//!
//! Invariants:
//! - Names follow Prometheus conventions: counters end in `_total`, times are
//!   `_seconds`, gauges are plain; the names `/metrics` had before this module
//!   (`hivebus_messages_total`, `hivebus_connections`, ...) are kept.
//! - Label values come from bounded sets: roles, task states, priorities, error
//!   codes; task kinds are the [`TOP_KINDS`] largest by task count, the rest summed
//!   under `other`; command names are those of the first [`MAX_COMMAND_SERIES`]
//!   series, then `other`. No task or session id is ever a label.

use super::Counters;
use crate::bus::Bus;
use crate::ops::queue::{Queue, QueueSnapshot, TaskState};
use crate::store::Histogram as StoreHistogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The `Content-Type` of `/metrics`.
pub(super) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Task kinds shown by name in `kind` labels; the others are summed as `other`.
pub(crate) const TOP_KINDS: usize = 20;

/// Distinct (command, result) series kept; later ones count as command `other`.
pub(crate) const MAX_COMMAND_SERIES: usize = 256;

/// Buckets of `hivebus_approval_wait_seconds`: people answer in seconds to hours.
const WAIT_BOUNDS: [f64; 13] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// Buckets of `hivebus_task_duration_seconds`: agents run for seconds to hours.
const TASK_BOUNDS: [f64; 14] = [
    0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// The broker's metrics: a registry whose collector reads the live counters, plus
/// the few metrics that are recorded here.
pub(crate) struct Metrics {
    registry: Registry,
    /// Commands by name and result.
    pub(crate) commands: Arc<Commands>,
    /// Time from an approval request to its decision.
    pub(crate) approval_wait: Histogram,
    /// Time from a task's submission to its final state.
    pub(crate) task_duration: Histogram,
}

impl Metrics {
    /// Registers everything; `queue` adds the queue's and its store's metrics.
    pub(crate) fn new(bus: Bus, counters: Arc<Counters>, queue: Option<Queue>) -> Metrics {
        let mut registry = Registry::default();
        let commands = Arc::new(Commands::default());
        let approval_wait = Histogram::new(WAIT_BOUNDS);
        let task_duration = Histogram::new(TASK_BOUNDS);
        registry.register_with_unit(
            "hivebus_approval_wait",
            "Time from an approval request to its decision",
            Unit::Seconds,
            approval_wait.clone(),
        );
        registry.register_with_unit(
            "hivebus_task_duration",
            "Time from a task's submission to its final state",
            Unit::Seconds,
            task_duration.clone(),
        );
        registry.register_collector(Box::new(Live {
            bus,
            counters,
            queue,
            commands: commands.clone(),
        }));
        Metrics {
            registry,
            commands,
            approval_wait,
            task_duration,
        }
    }

    /// The exposition, in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Commands by name and result, bounded to [`MAX_COMMAND_SERIES`] series.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    series: Mutex<HashMap<(String, &'static str), u64>>,
}

impl Commands {
    /// Counts one command `name` answered with `result` (`ok` or an error code).
    /// A name the broker did not know is counted as `unknown`, so that a peer cannot
    /// mint series by inventing names.
    pub(crate) fn count(&self, name: &str, result: &'static str) {
        let name = if result == "unknown_command" {
            "unknown"
        } else {
            name
        };
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = series.get_mut(&(name.to_owned(), result)) {
            *n += 1;
            return;
        }
        let key = if series.len() < MAX_COMMAND_SERIES {
            name.to_owned()
        } else {
            "other".to_owned()
        };
        *series.entry((key, result)).or_default() += 1;
    }

    fn read(&self) -> Vec<((String, &'static str), u64)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = series.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    }
}

/// Reads the live counters at each scrape.
struct Live {
    bus: Bus,
    counters: Arc<Counters>,
    queue: Option<Queue>,
    commands: Arc<Commands>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

type Enc<'a, 'b> = &'a mut DescriptorEncoder<'b>;
type Res = Result<(), std::fmt::Error>;

fn counter(e: Enc<'_, '_>, name: &str, help: &str, v: u64) -> Res {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// A gauge; counts are whole numbers and exposed as such (`1`, not `1.0`).
fn gauge(
    e: Enc<'_, '_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: impl EncodeGaugeValue,
) -> Res {
    e.encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Collector for Live {
    fn encode(&self, mut e: DescriptorEncoder) -> Res {
        let s = self.bus.stats();
        let c = &self.counters;
        gauge(
            &mut e,
            "hivebus_connections",
            "Sessions attached now",
            None,
            s.connections as i64,
        )?;
        counter(
            &mut e,
            "hivebus_connections",
            "Sessions attached since start",
            s.connections_total,
        )?;
        let mut roles: HashMap<String, u64> = HashMap::new();
        for p in self.bus.presence() {
            *roles.entry(p.info.role).or_default() += 1;
        }
        let mut roles: Vec<_> = roles.into_iter().collect();
        roles.sort();
        let mut m = e.encode_descriptor(
            "hivebus_sessions",
            "Sessions attached now, by role",
            None,
            MetricType::Gauge,
        )?;
        for (role, n) in &roles {
            m.encode_family(&[("role", role.as_str())])?
                .encode_gauge(n)?;
        }
        gauge(&mut e, "hivebus_rooms", "Rooms now", None, s.rooms as i64)?;
        gauge(
            &mut e,
            "hivebus_channels",
            "Channels now",
            None,
            s.channels as i64,
        )?;
        gauge(
            &mut e,
            "hivebus_history",
            "Bytes of channel history held",
            Some(&Unit::Bytes),
            s.history_bytes as i64,
        )?;
        counter(&mut e, "hivebus_messages", "Publishes accepted", s.messages)?;
        counter(
            &mut e,
            "hivebus_deliveries",
            "Frames queued to subscribers",
            s.deliveries,
        )?;
        counter(
            &mut e,
            "hivebus_dropped",
            "Frames lost to the slow-consumer policy",
            s.dropped,
        )?;
        counter(
            &mut e,
            "hivebus_frames_in",
            "Frames received from sessions",
            load(&c.frames_in),
        )?;
        counter(
            &mut e,
            "hivebus_frames_out",
            "Frames written to sessions",
            load(&c.frames_out),
        )?;
        counter(
            &mut e,
            "hivebus_errors",
            "ERROR frames sent",
            load(&c.errors_out),
        )?;
        counter(
            &mut e,
            "hivebus_refused",
            "Connections refused at max_connections",
            load(&c.refused),
        )?;
        counter(
            &mut e,
            "hivebus_slow_consumers",
            "Sessions closed as slow consumers (4008)",
            load(&c.slow_consumers),
        )?;
        counter(
            &mut e,
            "hivebus_telemetry_dropped",
            "Telemetry activity frames skipped by the rate bound",
            load(&c.telemetry_dropped),
        )?;
        gauge(
            &mut e,
            "hivebus_uptime",
            "Time since the broker started",
            Some(&Unit::Seconds),
            s.uptime_secs as i64,
        )?;
        let mut m = e.encode_descriptor(
            "hivebus_commands",
            "Commands answered, by name and result (ok or the error code)",
            None,
            MetricType::Counter,
        )?;
        for ((name, result), n) in self.commands.read() {
            m.encode_family(&[("command", name.as_str()), ("result", result)])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        if let Some(q) = &self.queue {
            encode_queue(&mut e, &q.snapshot())?;
            let st = q.store_stats();
            histogram(
                &mut e,
                "hivebus_store_commit",
                "Time to apply and commit one store batch",
                Some(&Unit::Seconds),
                &st.commit_seconds,
            )?;
            histogram(
                &mut e,
                "hivebus_store_batch_size",
                "Operations per store batch (one transaction)",
                None,
                &st.batch_size,
            )?;
            counter(
                &mut e,
                "hivebus_store_failed_batches",
                "Store batches that failed and were rolled back",
                st.failed_batches,
            )?;
        }
        Ok(())
    }
}

fn histogram(
    e: Enc<'_, '_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &StoreHistogram,
) -> Res {
    e.encode_descriptor(name, help, unit, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

fn encode_queue(e: Enc<'_, '_>, q: &QueueSnapshot) -> Res {
    let kinds = top_kinds(q);
    let mut by_state: Vec<HashMap<&str, u64>> = vec![HashMap::new(); TaskState::ALL.len()];
    for (kind, counts) in &q.tasks {
        let label = kinds.label(kind);
        for (i, n) in counts.iter().enumerate() {
            if *n > 0 {
                *by_state[i].entry(label).or_default() += n;
            }
        }
    }
    let mut m = e.encode_descriptor(
        "hivebus_queue_tasks",
        "Tasks in memory, by state and kind",
        None,
        MetricType::Gauge,
    )?;
    for (i, state) in TaskState::ALL.iter().enumerate() {
        let mut rows: Vec<_> = by_state[i].iter().collect();
        rows.sort();
        for (kind, n) in rows {
            m.encode_family(&[("state", state.as_str()), ("kind", kind)])?
                .encode_gauge(n)?;
        }
    }
    let mut depth: HashMap<(&str, usize), u64> = HashMap::new();
    for (kind, lanes) in &q.depth {
        for (rank, n) in lanes.iter().enumerate() {
            if *n > 0 {
                *depth.entry((kinds.label(kind), rank)).or_default() += n;
            }
        }
    }
    let mut rows: Vec<_> = depth.into_iter().collect();
    rows.sort();
    let mut m = e.encode_descriptor(
        "hivebus_queue_depth",
        "Tasks ready to lease, by kind and priority",
        None,
        MetricType::Gauge,
    )?;
    for ((kind, rank), n) in rows {
        let priority = crate::ops::queue::Priority::from_rank(rank).as_str();
        m.encode_family(&[("kind", kind), ("priority", priority)])?
            .encode_gauge(&n)?;
    }
    gauge(
        e,
        "hivebus_queue_oldest_waiting",
        "Age of the oldest task ready to lease",
        Some(&Unit::Seconds),
        q.oldest_waiting_secs,
    )?;
    gauge(
        e,
        "hivebus_queue_approvals_pending",
        "Tasks waiting for an approval decision",
        None,
        q.approvals_pending as i64,
    )?;
    gauge(
        e,
        "hivebus_queue_consumers",
        "Consumer sessions registered with the queue",
        None,
        q.consumers as i64,
    )?;
    gauge(
        e,
        "hivebus_queue_slots_busy",
        "Consumer slots running a task",
        None,
        q.slots_busy as i64,
    )?;
    gauge(
        e,
        "hivebus_queue_slots",
        "Consumer slots in all",
        None,
        q.slots_total as i64,
    )?;
    let k = &q.counters;
    counter(e, "hivebus_queue_submitted", "Tasks accepted", k.submitted)?;
    counter(
        e,
        "hivebus_queue_duplicates",
        "Submits answered with an existing task",
        k.duplicates,
    )?;
    counter(e, "hivebus_queue_rejected", "Submits refused", k.rejected)?;
    counter(e, "hivebus_queue_leases", "Leases granted", k.leases)?;
    counter(
        e,
        "hivebus_queue_lease_expiries",
        "Leases that expired without a result",
        k.lease_expiries,
    )?;
    counter(e, "hivebus_queue_retries", "Attempts retried", k.retries)?;
    counter(
        e,
        "hivebus_queue_succeeded",
        "Tasks that succeeded",
        k.succeeded,
    )?;
    counter(
        e,
        "hivebus_queue_dead_letters",
        "Tasks moved to the dead-letter queue",
        k.dead_letters,
    )?;
    counter(e, "hivebus_queue_cancelled", "Tasks cancelled", k.cancelled)?;
    counter(
        e,
        "hivebus_queue_approvals_expired",
        "Approval requests that expired undecided",
        k.approvals_expired,
    )?;
    counter(
        e,
        "hivebus_queue_events_dropped",
        "Task events lost by observers that fell behind",
        k.events_dropped,
    )
}

/// The kinds shown by name: the [`TOP_KINDS`] with most tasks (ties by name).
struct TopKinds(Vec<String>);

impl TopKinds {
    fn label<'a>(&'a self, kind: &'a str) -> &'a str {
        if self.0.iter().any(|k| k == kind) {
            kind
        } else {
            "other"
        }
    }
}

fn top_kinds(q: &QueueSnapshot) -> TopKinds {
    let mut all: Vec<(u64, &String)> = q
        .tasks
        .iter()
        .map(|(k, counts)| (counts.iter().sum(), k))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    TopKinds(
        all.into_iter()
            .take(TOP_KINDS)
            .map(|(_, k)| k.clone())
            .collect(),
    )
}
