//! The scenarios: `fanout` and `many-channels` (one runner: subscribers spread over
//! channels, each publisher picking at random among its share of the channels), `connections` (idle connections
//! and the server's RSS per connection), and the hook for `queue`.

use super::common::{cpu_secs, now_ns, rss_kib, Flow, Pace, Recorder, Shared, Window};
use super::targets::{self, Target};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

type Res<T> = Result<T, String>;

/// One pub/sub run.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) target: Target,
    pub(crate) url: String,
    /// Subscriber connections.
    pub(crate) subscribers: usize,
    /// Channels in the run.
    pub(crate) channels: usize,
    /// Channels each subscriber connection joins.
    pub(crate) per_sub: usize,
    pub(crate) publishers: usize,
    pub(crate) payload: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) pace: Pace,
    pub(crate) server_pid: Option<u32>,
}

/// Runs `spec` and returns the report as JSON.
pub(crate) async fn pubsub(spec: Spec) -> Res<Value> {
    let subs_per_channel = spec.subscribers * spec.per_sub / spec.channels.max(1);
    if subs_per_channel * spec.channels != spec.subscribers * spec.per_sub
        || spec.per_sub > spec.channels
    {
        return Err("subscribers x per-sub must be a multiple of channels".into());
    }
    if spec.publishers > spec.channels {
        return Err("more publishers than channels".into());
    }
    // A fresh room per run: runs against one long-lived server do not share channels.
    let room = format!("r{:08x}", fastrand::u32(..));
    let names: Vec<String> = (0..spec.channels).map(|c| format!("c{c}")).collect();
    let shared = Arc::new(Shared::default());
    let window = Arc::new(OnceLock::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(spec.subscribers.max(1));
    let mut subs = Vec::with_capacity(spec.subscribers);
    for i in 0..spec.subscribers {
        // Subscriber i covers channels i*per_sub .. +per_sub (mod channels): every
        // channel gets exactly subs_per_channel subscribers.
        let chans: Vec<String> = (0..spec.per_sub)
            .map(|k| names[(i * spec.per_sub + k) % spec.channels].clone())
            .collect();
        let rec = Recorder::new(shared.clone(), window.clone());
        let (t, url, room) = (spec.target, spec.url.clone(), room.clone());
        let (ready, stop) = (ready_tx.clone(), stop_rx.clone());
        subs.push(tokio::spawn(targets::subscriber(
            t, url, room, chans, rec, ready, stop,
        )));
        // Pace connection setup a little: a burst of 1000 handshakes overflows backlogs.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(ready_tx);
    for _ in 0..spec.subscribers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => {}
            _ => return Err(first_error(subs).await),
        }
    }
    let start = now_ns();
    let w = Window {
        start: start + spec.warmup.as_nanos() as u64,
        end: start + (spec.warmup + spec.duration).as_nanos() as u64,
    };
    let _ = window.set(w);
    let cpu = tokio::spawn(cpu_over(w, spec.server_pid));
    let mut pubs = Vec::new();
    for p in 0..spec.publishers {
        // Publisher p owns a contiguous share of the channels: hivebus only lets members
        // publish, and a wildcard member would receive the other publishers' traffic.
        let share = names
            [p * spec.channels / spec.publishers..(p + 1) * spec.channels / spec.publishers]
            .to_vec();
        let flow = Flow {
            pace: spec.pace,
            shared: shared.clone(),
            fanout: subs_per_channel as u64,
            publishers: spec.publishers as u64,
            started: start,
            measure_from: w.start,
            stop_at: w.end,
            sent: 0,
            behind_max: 0,
        };
        let (t, url, room, names, size, sh) = (
            spec.target,
            spec.url.clone(),
            room.clone(),
            share,
            spec.payload,
            shared.clone(),
        );
        pubs.push(tokio::spawn(targets::publisher(
            t, url, room, names, size, flow, sh,
        )));
    }
    let (mut sent, mut behind) = (0u64, 0u64);
    for p in pubs {
        match p.await {
            Ok(Ok(s)) => {
                sent += s.sent;
                behind = behind.max(s.behind_max_us);
            }
            Ok(Err(e)) => return Err(format!("publisher: {e}")),
            Err(e) => return Err(format!("publisher task: {e}")),
        }
    }
    // Drain: wait until every expected delivery arrived, or 3 s.
    let expected = sent * subs_per_channel as u64;
    let deadline = now_ns() + 3_000_000_000;
    while shared.delivered.load(std::sync::atomic::Ordering::Relaxed) < expected
        && now_ns() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).expect("valid bounds");
    let (mut in_window, mut received, mut kicked) = (0u64, 0u64, 0u64);
    for s in subs {
        match s.await {
            Ok(Ok((rec, closed))) => {
                in_window += rec.in_window;
                received += rec.total;
                kicked += u64::from(closed);
                let _ = hist.add(&rec.hist);
            }
            Ok(Err(e)) => return Err(format!("subscriber: {e}")),
            Err(e) => return Err(format!("subscriber task: {e}")),
        }
    }
    let (server_cpu, own_cpu) = cpu.await.unwrap_or((None, None));
    let rate = in_window as f64 / w.secs();
    let q = |p: f64| hist.value_at_quantile(p);
    Ok(json!({
        "target": spec.target.name(),
        "subscribers": spec.subscribers,
        "channels": spec.channels,
        "subs_per_channel": subs_per_channel,
        "publishers": spec.publishers,
        "payload": spec.payload,
        "mode": match spec.pace { Pace::Closed { .. } => "closed", Pace::Open { .. } => "open" },
        "rate": match spec.pace { Pace::Open { rate } => Some(rate), Pace::Closed { .. } => None },
        "window_s": w.secs(),
        "sent": sent,
        "publisher_behind_max_us": behind,
        "expected": expected,
        "received": received,
        "loss": expected.saturating_sub(received),
        "kicked": kicked,
        "delivered_per_s": rate.round(),
        "latency_samples": hist.len(),
        "p50_us": q(0.50), "p90_us": q(0.90), "p99_us": q(0.99), "p999_us": q(0.999),
        "max_us": hist.max(),
        "server_cpu_s": server_cpu,
        "server_ns_per_delivery": server_cpu.map(|c| (c * 1e9 / in_window.max(1) as f64).round()),
        "loadgen_cpu_s": own_cpu,
    }))
}

async fn first_error(subs: Vec<tokio::task::JoinHandle<Res<(Recorder, bool)>>>) -> String {
    for s in subs {
        if s.is_finished() {
            if let Ok(Err(e)) = s.await {
                return format!("subscriber: {e}");
            }
        } else {
            s.abort();
        }
    }
    "subscribers not ready within 60 s".into()
}

/// CPU seconds used inside the window by the server (when its pid is known) and by us.
async fn cpu_over(w: Window, pid: Option<u32>) -> (Option<f64>, Option<f64>) {
    let me = std::process::id();
    sleep_until(w.start).await;
    let (s0, m0) = (pid.and_then(cpu_secs), cpu_secs(me));
    sleep_until(w.end).await;
    let (s1, m1) = (pid.and_then(cpu_secs), cpu_secs(me));
    let d = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    (d(s0, s1), d(m0, m1))
}

async fn sleep_until(t: u64) {
    tokio::time::sleep(Duration::from_nanos(t.saturating_sub(now_ns()))).await;
}

/// Opens `count` idle connections (handshaken, no subscription) and reports the
/// server's RSS growth per connection.
pub(crate) async fn connections(
    target: Target,
    url: String,
    count: usize,
    pid: Option<u32>,
) -> Res<Value> {
    let pid = pid.ok_or("--server-pid is needed to read the server's RSS")?;
    let before = rss_kib(pid).ok_or("cannot read the server's RSS")?;
    let t0 = now_ns();
    let mut held = Vec::with_capacity(count);
    let mut opened = 0usize;
    let mut error = None;
    'outer: while opened < count {
        let burst = (count - opened).min(200);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..burst {
            let url = url.clone();
            set.spawn(async move { targets::idle(target, &url).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(c)) => {
                    held.push(c);
                    opened += 1;
                }
                Ok(Err(e)) => {
                    error = Some(e);
                    break 'outer;
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break 'outer;
                }
            }
        }
    }
    let open_s = (now_ns() - t0) as f64 / 1e9;
    // Let the server finish its side of the last handshakes before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).ok_or("cannot read the server's RSS")?;
    let per = (after.saturating_sub(before)) as f64 / opened.max(1) as f64;
    drop(held);
    Ok(json!({
        "target": target.name(),
        "connections": opened,
        "asked": count,
        "error": error,
        "open_s": open_s,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_kib_per_conn": (per * 100.0).round() / 100.0,
    }))
}

/// The `queue` scenario (task submit -> lease -> result throughput and latency, and the
/// BullMQ comparison) lands with the task queue operator; this is its place.
pub(crate) async fn queue() -> Res<Value> {
    Err("the queue scenario is not implemented yet: it needs the task queue (issue #5)".into())
}
