//! Every knob of the queue, with its default and bound: leases, retries, backpressure,
//! aging, idempotency window, durability. Loaded from the `[queue]` TOML table by the
//! broker; tests build it in code.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Per-kind settings; every field falls back to the queue-wide default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindConfig {
    /// Attempts before dead-lettering.
    pub max_attempts: Option<u32>,
    /// Lease length in ms.
    pub lease_ms: Option<u64>,
    /// Backoff base in ms.
    pub backoff_base_ms: Option<u64>,
    /// Backoff cap in ms.
    pub backoff_cap_ms: Option<u64>,
    /// Backpressure soft threshold (waiting tasks of this kind).
    pub soft_limit: Option<usize>,
    /// Backpressure hard threshold.
    pub hard_limit: Option<usize>,
}

/// Queue configuration. See `docs/QUEUE.md` for what each limit protects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// SQLite file; `None` keeps everything in memory (tests of pure logic only).
    pub db_path: Option<PathBuf>,
    /// Directory of the ndjson trace logs; `None` disables them.
    pub logs_dir: Option<PathBuf>,
    /// Whether the broker writes trace logs (to `logs_dir`, by default `.hive/logs`).
    pub logs: bool,
    /// A trace log is rotated (`.1`, oldest dropped past `log_keep`) past this size.
    pub log_max_bytes: u64,
    /// Rotated files kept per trace.
    pub log_keep: u32,
    /// `synchronous=FULL` (default) or `NORMAL` (faster, may lose the last commits on
    /// power loss, never on a process crash).
    pub synchronous_full: bool,
    /// Most operations in one SQLite transaction (group commit).
    pub max_batch: usize,
    /// Default attempts before dead-lettering (1..=100).
    pub max_attempts: u32,
    /// Default lease (visibility timeout) in ms.
    pub lease_ms: u64,
    /// How long an approval request waits for a decision before it expires, in ms
    /// (the broker sets it from `[approval] timeout_secs`). The lease is held
    /// meanwhile; on expiry the consumer is told `expired` and the task works on.
    pub approval_timeout_ms: u64,
    /// How long before that expiry the consumer and the stream are warned, in ms
    /// (0: no warning).
    pub approval_warn_ms: u64,
    /// Backoff base in ms: attempt n waits up to `base * 2^(n-1)`.
    pub backoff_base_ms: u64,
    /// Backoff cap in ms.
    pub backoff_cap_ms: u64,
    /// Full jitter on (default). Off gives the exact upper bound, for tests and demos.
    pub jitter: bool,
    /// A waiting task gains one priority level per `aging_ms` waited.
    pub aging_ms: u64,
    /// A repeated idempotency key within this window returns the original task.
    pub idempotency_window_ms: u64,
    /// Most idempotency keys remembered; past it the oldest are forgotten before the
    /// window ends (memory bound: about 100 bytes per key).
    pub max_keys: usize,
    /// Waiting tasks of one kind above which submits get a hint.
    pub soft_limit: usize,
    /// Waiting tasks of one kind above which submits are refused.
    pub hard_limit: usize,
    /// What a refused submitter is told to wait, in ms.
    pub retry_after_ms: u64,
    /// Frames kept in one task's stored stream; later frames are published but not
    /// stored (counted in `stream_dropped`).
    pub max_stream: usize,
    /// Terminal tasks kept in memory (oldest leave first; they stay in SQLite).
    pub max_terminal_in_memory: usize,
    /// Slots a consumer gets when its HELLO names none; and the most it may ask.
    pub default_slots: u32,
    /// The most slots one consumer may declare.
    pub max_slots: u32,
    /// Per-kind overrides.
    pub kinds: HashMap<String, KindConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            db_path: None,
            logs_dir: None,
            logs: true,
            log_max_bytes: 4 << 20,
            log_keep: 3,
            synchronous_full: true,
            max_batch: 4096,
            max_attempts: 5,
            lease_ms: 30_000,
            approval_timeout_ms: 15 * 60_000,
            approval_warn_ms: 60_000,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            jitter: true,
            aging_ms: 30_000,
            idempotency_window_ms: 24 * 3_600_000,
            max_keys: 2_000_000,
            soft_limit: 10_000,
            hard_limit: 50_000,
            retry_after_ms: 1_000,
            max_stream: 10_000,
            max_terminal_in_memory: 10_000,
            default_slots: 1,
            max_slots: 1024,
            kinds: HashMap::new(),
        }
    }
}

/// The effective settings of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Lease length.
    pub lease: Duration,
    /// Backoff base.
    pub base: Duration,
    /// Backoff cap.
    pub cap: Duration,
    /// Soft threshold.
    pub soft: usize,
    /// Hard threshold.
    pub hard: usize,
}

impl QueueConfig {
    /// The settings for `kind`, overrides applied.
    pub fn for_kind(&self, kind: &str) -> Effective {
        let k = self.kinds.get(kind).cloned().unwrap_or_default();
        Effective {
            max_attempts: k.max_attempts.unwrap_or(self.max_attempts).clamp(1, 100),
            lease: Duration::from_millis(k.lease_ms.unwrap_or(self.lease_ms).max(10)),
            base: Duration::from_millis(k.backoff_base_ms.unwrap_or(self.backoff_base_ms)),
            cap: Duration::from_millis(k.backoff_cap_ms.unwrap_or(self.backoff_cap_ms)),
            soft: k.soft_limit.unwrap_or(self.soft_limit),
            hard: k.hard_limit.unwrap_or(self.hard_limit),
        }
    }
}
