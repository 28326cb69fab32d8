//! What every target shares: the clock and the stamped payload, the per-subscriber
//! [`Recorder`] (count and latency histogram inside the measurement window), the
//! publisher's flow control ([`Flow`]: a window of un-acked publishes, a cap on
//! undelivered ones, or a fixed rate), and `/proc` readers for server CPU and RSS.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Stamps are offset by this so that they always have 15 digits (no leading zero in
/// JSON, and a payload of fixed length whatever the time).
const STAMP_BASE: u64 = 100_000_000_000_000;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call, plus [`STAMP_BASE`]. Monotonic; shared by
/// publishers and subscribers of this process, so `deliver - publish` is a latency.
pub(crate) fn now_ns() -> u64 {
    let e = EPOCH.get_or_init(Instant::now);
    STAMP_BASE + e.elapsed().as_nanos() as u64
}

/// A payload of exactly `size` bytes (at least 40): `{"p":"xx..","t":<stamp>}`, with the
/// keys in the order serde_json prints them, so that hivebus re-serializes it unchanged.
pub(crate) fn payload(size: usize, stamp: u64) -> String {
    // `{"p":"` 6 + `","t":` 6 + 15 digits + `}` 1 = 28 bytes around the padding.
    let pad = size.saturating_sub(28).max(1);
    let mut s = String::with_capacity(size);
    s.push_str("{\"p\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\",\"t\":");
    s.push_str(&stamp.to_string());
    s.push('}');
    s
}

/// The stamp of a delivered frame: the digits after the last `"t":`.
pub(crate) fn stamp_of(frame: &[u8]) -> Option<u64> {
    let key = b"\"t\":";
    let at = frame.windows(4).rposition(|w| w == key)? + 4;
    let digits = frame.get(at..at + 15)?;
    let mut v = 0u64;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    Some(v)
}

/// State shared by the publisher and all subscribers of one run.
#[derive(Default)]
pub(crate) struct Shared {
    /// Deliveries received so far (all subscribers, whole run).
    pub(crate) delivered: AtomicU64,
    /// Publishes sent so far (all publishers).
    pub(crate) sent: AtomicU64,
    /// Publishes acknowledged so far (all publishers).
    pub(crate) acked: AtomicU64,
    /// Set by the publisher while it waits; the next delivery or ack wakes it.
    pub(crate) waiting: AtomicBool,
    pub(crate) wake: Notify,
}

impl Shared {
    pub(crate) fn add_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.poke();
    }

    pub(crate) fn add_acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::Relaxed);
        self.poke();
    }

    fn poke(&self) {
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Waits for the next delivery or ack, at most `max`.
    pub(crate) async fn wait(&self, max: Duration) {
        let n = self.wake.notified();
        self.waiting.store(true, Ordering::Release);
        let _ = tokio::time::timeout(max, n).await;
        self.waiting.store(false, Ordering::Release);
    }
}

/// The measurement window, in [`now_ns`] units.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Window {
    pub(crate) fn contains(&self, t: u64) -> bool {
        t >= self.start && t < self.end
    }
    pub(crate) fn secs(&self) -> f64 {
        (self.end - self.start) as f64 / 1e9
    }
}

/// One subscriber's tally: deliveries received inside the window and the latency of
/// those published inside it.
pub(crate) struct Recorder {
    pub(crate) shared: Arc<Shared>,
    window: Arc<OnceLock<Window>>,
    pub(crate) in_window: u64,
    pub(crate) total: u64,
    pub(crate) hist: Histogram<u64>,
    pending: u64,
}

impl Recorder {
    pub(crate) fn new(shared: Arc<Shared>, window: Arc<OnceLock<Window>>) -> Self {
        Recorder {
            shared,
            window,
            in_window: 0,
            total: 0,
            // 1 us .. 100 s, 3 significant digits; latencies are recorded in us.
            hist: Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds"),
            pending: 0,
        }
    }

    /// Counts one delivered frame (`frame` is its text as received).
    pub(crate) fn on_frame(&mut self, frame: &[u8]) {
        let Some(sent) = stamp_of(frame) else { return };
        let now = now_ns();
        self.total += 1;
        self.pending += 1;
        if let Some(w) = self.window.get() {
            if w.contains(now) {
                self.in_window += 1;
            }
            if w.contains(sent) {
                let us = (now.saturating_sub(sent) / 1000).max(1);
                let _ = self.hist.record(us.min(100_000_000));
            }
        }
        // Publish progress in small batches: one shared atomic per 16 frames.
        if self.pending >= 16 {
            self.flush();
        }
    }

    /// Publishes the local count to the shared one (call when the stream idles).
    pub(crate) fn flush(&mut self) {
        if self.pending > 0 {
            self.shared.add_delivered(self.pending);
            self.pending = 0;
        }
    }
}

/// How the publisher paces itself.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// As fast as acks allow: at most `window` un-acked publishes, and at most `lag`
    /// publishes not yet delivered to every subscriber (so that no subscriber queue
    /// overflows: hivebus would disconnect it as a slow consumer).
    Closed { window: u64, lag: u64 },
    /// `rate` publishes per second on a fixed schedule (a late publisher catches up,
    /// it does not skip). Stamped with the actual send time: tokio's millisecond timer
    /// wakes the publisher up to ~2 ms late, which a scheduled-time stamp would count
    /// as server latency; how far the publisher fell behind its schedule is reported
    /// instead (`PubStats::behind_max_us`), so a stall is not hidden either.
    Open { rate: f64 },
}

/// What the publisher did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PubStats {
    pub(crate) sent: u64,
    /// Open loop: the most a publish was sent after its scheduled time, in us.
    pub(crate) behind_max_us: u64,
}

/// Decides how many publishes may go now; `None` when the run is over. With several
/// publishers, closed-loop limits apply to the totals, scaled by `publishers`, and an
/// open-loop rate is split evenly.
pub(crate) struct Flow {
    pub(crate) pace: Pace,
    pub(crate) shared: Arc<Shared>,
    /// Deliveries expected per publish (subscribers per channel).
    pub(crate) fanout: u64,
    pub(crate) publishers: u64,
    pub(crate) started: u64,
    /// Start of the measurement window (lateness is tracked from there).
    pub(crate) measure_from: u64,
    pub(crate) stop_at: u64,
    /// Sent by this publisher.
    pub(crate) sent: u64,
    /// Open loop: the most a publish inside the window went after its schedule, in ns.
    pub(crate) behind_max: u64,
}

impl Flow {
    /// The next batch size (1..=max), waiting as needed; `None` at the deadline.
    pub(crate) async fn next(&mut self, max: u64) -> Option<u64> {
        loop {
            let now = now_ns();
            if now >= self.stop_at {
                return None;
            }
            let n = match self.pace {
                Pace::Closed { window, lag } => {
                    let sent = self.shared.sent.load(Ordering::Relaxed);
                    let acked = self.shared.acked.load(Ordering::Relaxed);
                    let done = self.shared.delivered.load(Ordering::Relaxed) / self.fanout.max(1);
                    let by_ack =
                        (window * self.publishers).saturating_sub(sent.saturating_sub(acked));
                    let by_lag = (lag * self.publishers).saturating_sub(sent.saturating_sub(done));
                    by_ack.min(by_lag).min(window)
                }
                Pace::Open { .. } => {
                    // Publish i is due at i / rate (its stamp), so i + 1 are due by now.
                    let due = ((now - self.started) as f64 / 1e9 * self.rate()) as u64 + 1;
                    due.saturating_sub(self.sent)
                }
            };
            if n > 0 {
                return Some(n.min(max));
            }
            match self.pace {
                Pace::Closed { .. } => self.shared.wait(Duration::from_millis(5)).await,
                Pace::Open { .. } => {
                    let next = self.started + (self.sent as f64 / self.rate() * 1e9) as u64;
                    let wait = next.saturating_sub(now_ns()).max(50_000);
                    tokio::time::sleep(Duration::from_nanos(wait)).await;
                }
            }
        }
    }

    /// This publisher's share of an open-loop rate.
    fn rate(&self) -> f64 {
        match self.pace {
            Pace::Open { rate } => rate / self.publishers.max(1) as f64,
            Pace::Closed { .. } => f64::INFINITY,
        }
    }

    /// The stamp for this publisher's next publish (now), noting how late it is.
    pub(crate) fn stamp(&mut self) -> u64 {
        let now = now_ns();
        if let Pace::Open { .. } = self.pace {
            let due = self.started + (self.sent as f64 / self.rate() * 1e9) as u64;
            if due >= self.measure_from {
                self.behind_max = self.behind_max.max(now.saturating_sub(due));
            }
        }
        now
    }

    /// Counts one publish as sent.
    pub(crate) fn mark(&mut self) {
        self.sent += 1;
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// utime + stime of `pid`, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux.
}

/// Resident set size of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_size_and_give_back_their_stamp() {
        for size in [100, 1024] {
            let p = payload(size, now_ns());
            assert_eq!(p.len(), size);
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                p,
                "serde_json order kept"
            );
            assert_eq!(stamp_of(p.as_bytes()), v["t"].as_u64());
        }
    }
}
