//! The `[cron]` section: where schedules are kept and every bound on them. Each bound
//! is counted in schedules AND bytes (`docs/OPERATORS.md`).

use serde::Deserialize;
use std::path::PathBuf;

/// Configuration of the `op.cron.*` operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CronConfig {
    /// The SQLite file; the broker defaults it to `.hive/cron.db`. `None` here (and in
    /// tests) is an in-memory database.
    pub db_path: Option<PathBuf>,
    /// Most schedules one identity (subject) may have at once.
    pub max_per_identity: usize,
    /// Most schedules in the broker.
    pub max_total: usize,
    /// Largest payload, in bytes of its JSON text.
    pub max_payload_bytes: usize,
    /// Most bytes of payload JSON held by all schedules together (they are kept in
    /// memory).
    pub max_payload_bytes_total: usize,
    /// Shortest time between two firings of a recurring schedule, in ms (checked over
    /// its next firings when it is made: `*/1 * * * * *` is refused at 60 000).
    pub min_interval_ms: u64,
    /// Longest one-shot `delay_ms`.
    pub max_delay_ms: u64,
    /// How late a firing may be and still count as on time, in ms. Later than this
    /// (the broker was down, the machine slept) it is *missed*, and the schedule's
    /// `missed` policy decides.
    pub grace_ms: u64,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            db_path: None,
            max_per_identity: 100,
            max_total: 10_000,
            max_payload_bytes: 64 * 1024,
            max_payload_bytes_total: 64 * 1024 * 1024,
            min_interval_ms: 60_000,
            max_delay_ms: 366 * 24 * 3600 * 1000,
            grace_ms: 60_000,
        }
    }
}
