//! What the writer thread measures about its own work, for the broker's metrics:
//! commit latency and batch size as fixed-bucket histograms, and failed batches.
//!
//! Invariants: recording is a handful of relaxed atomic adds on the writer thread,
//! once per batch (never per write); reading never blocks the writer. A snapshot's
//! counts may be a batch apart from each other, never torn within one counter.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-latency buckets, in seconds: 100 us (page cache) to
/// 2.5 s (a stalled disk).
const COMMIT_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Upper bounds of the batch-size buckets, in operations per transaction.
const BATCH_BOUNDS: [f64; 10] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0,
];

/// A histogram of fixed buckets, filled with atomics.
#[derive(Debug)]
struct Buckets<const N: usize> {
    bounds: &'static [f64; N],
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    counts: [AtomicU64; 13],
    /// Sum of the observations, in `unit`s.
    sum: AtomicU64,
    unit: f64,
}

impl<const N: usize> Buckets<N> {
    fn new(bounds: &'static [f64; N], unit: f64) -> Self {
        Buckets {
            bounds,
            counts: Default::default(),
            sum: AtomicU64::new(0),
            unit,
        }
    }

    fn observe(&self, v: f64) {
        let at = self.bounds.iter().position(|b| v <= *b).unwrap_or(N);
        self.counts[at].fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((v / self.unit).round() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(N + 1);
        for (i, bound) in self.bounds.iter().chain([f64::INFINITY].iter()).enumerate() {
            running += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        Histogram {
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.unit,
            count: running,
            buckets,
        }
    }
}

/// A histogram as read: cumulative counts per upper bound (the last is `+Inf`), as
/// Prometheus exposes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// (upper bound, observations at or below it), ascending, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

/// The writer's measurements; shared between the writer and [`Store`](super::Store)
/// handles.
#[derive(Debug)]
pub(super) struct WriterStats {
    commit: Buckets<12>,
    batch: Buckets<10>,
    failed: AtomicU64,
    last_failed: AtomicBool,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commit: Buckets::new(&COMMIT_BOUNDS, 1e-9),
            batch: Buckets::new(&BATCH_BOUNDS, 1.0),
            failed: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
        }
    }
}

impl WriterStats {
    /// Records one batch of `ops` operations that took `took` to apply and commit.
    pub(super) fn batch(&self, ops: usize, took: Duration, ok: bool) {
        self.commit.observe(took.as_secs_f64());
        self.batch.observe(ops as f64);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.last_failed.store(!ok, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> StoreStats {
        StoreStats {
            commit_seconds: self.commit.snapshot(),
            batch_size: self.batch.snapshot(),
            failed_batches: self.failed.load(Ordering::Relaxed),
            last_batch_failed: self.last_failed.load(Ordering::Relaxed),
        }
    }
}

/// What [`Store::stats`](super::Store::stats) returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Time to apply and commit one batch (one transaction), in seconds.
    pub commit_seconds: Histogram,
    /// Operations (writes, acknowledgements, reads) per batch.
    pub batch_size: Histogram,
    /// Batches that failed and were rolled back.
    pub failed_batches: u64,
    /// Whether the latest batch failed: the database is not taking writes now.
    pub last_batch_failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let s = WriterStats::default();
        s.batch(1, Duration::from_micros(80), true);
        s.batch(3, Duration::from_millis(3), true);
        s.batch(5000, Duration::from_secs(9), false);
        let snap = s.snapshot();
        let c = &snap.commit_seconds;
        assert_eq!(c.count, 3);
        assert_eq!(c.buckets[0], (0.0001, 1));
        assert_eq!(c.buckets[5], (0.005, 2));
        assert_eq!(c.buckets.last(), Some(&(f64::INFINITY, 3)));
        assert!((c.sum - 9.00308).abs() < 1e-6, "{}", c.sum);
        assert_eq!(snap.batch_size.buckets[2], (4.0, 2));
        assert_eq!(snap.batch_size.sum, 5004.0);
        assert_eq!((snap.failed_batches, snap.last_batch_failed), (1, true));
    }
}
