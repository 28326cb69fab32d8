//! Queue benchmark, run as a separate process against a running broker with the queue
//! (`hive broker`):
//!
//! 1. throughput: `--consumers` consumers (SDK, `--slots` each) complete no-op tasks
//!    while `--submitters` clients pipeline durable submits (TASK frames, `--window`
//!    in flight each); reports tasks/s from the first submit to the moment the queue
//!    counts every task succeeded (submit -> durable -> lease -> result -> durable);
//! 2. latency: one idle consumer; one task at a time; reports submit -> lease p50/p99
//!    (hdrhistogram, microseconds).
//!
//! ```text
//! cargo build --release --bin hive --example queue_bench
//! target/release/hive --dir /tmp/qb broker --no-logs &
//! target/release/examples/queue_bench --dir /tmp/qb --tasks 100000 --consumers 32
//! ```

use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hivebus::client::{Client, Hello};
use hivebus::consumer::Consumer;
use hivebus::frame::{Envelope, FrameType};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "hivebus queue benchmark")]
struct Args {
    /// Broker URL; default from HIVE_WS_PORT or <dir>/.hive/port.
    #[arg(long)]
    url: Option<String>,
    /// Directory holding `.hive/port`.
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Tasks in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Consumers in the throughput run.
    #[arg(long, default_value_t = 32)]
    consumers: usize,
    /// Slots per consumer.
    #[arg(long, default_value_t = 16)]
    slots: u32,
    /// Submitting connections.
    #[arg(long, default_value_t = 8)]
    submitters: u64,
    /// Submits in flight per submitter.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Samples in the latency run.
    #[arg(long, default_value_t = 2_000)]
    samples: u64,
    /// The broker's pid, to report its CPU time during the throughput run (Linux).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print one JSON line (the shape `benches/peers/bullmq/bench.js` prints).
    #[arg(long)]
    json: bool,
}

/// User + system CPU seconds of a process so far, from `/proc/<pid>/stat` (Linux,
/// 100 ticks a second); `None` elsewhere.
fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn task(kind: &str, key: String) -> Envelope {
    let mut e = Envelope::new(FrameType::Task, json!({"idempotencyKey": key, "args": {}}));
    e.room = Some("bip-1".into());
    e.channel = Some(kind.into());
    e
}

async fn throughput(url: &str, a: &Args, run: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..a.consumers {
        let mut c = Consumer::connect(url, &["noop"], a.slots)
            .await
            .expect("consumer");
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            while let Some(l) = c.next_lease().await {
                if l.complete("", None).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let control = Client::connect(url, Hello::role("client"))
        .await
        .expect("connect");
    let base = control
        .command("op.queue.stats", json!({}))
        .await
        .expect("stats")["counters"]["succeeded"]
        .as_u64()
        .unwrap_or(0);
    let start = Instant::now();
    let per = a.tasks / a.submitters;
    let mut subs = Vec::new();
    for s in 0..a.submitters {
        let url = url.to_owned();
        let (window, run) = (a.window, run.to_owned());
        subs.push(tokio::spawn(async move {
            let mut c = Client::connect(&url, Hello::role("client"))
                .await
                .expect("connect");
            c.set_timeout(Duration::from_secs(120));
            let mut inflight = FuturesUnordered::new();
            let c = &c;
            for i in 0..per {
                if inflight.len() >= window {
                    inflight.next().await;
                }
                let e = task("noop", format!("{run}-{s}-{i}"));
                inflight.push(async move { c.request(e).await.expect("submit") });
            }
            while inflight.next().await.is_some() {}
        }));
    }
    for s in subs {
        s.await.expect("submitter");
    }
    let total = per * a.submitters;
    // Wait for the consumers to have sent every result before asking the broker:
    // `op.queue.stats` scans every task in memory under the queue lock, so polling it
    // while tasks still flow slowed the run it measures (bounded: 120 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        let s = control
            .command("op.queue.stats", json!({}))
            .await
            .expect("stats");
        if s["counters"]["succeeded"].as_u64().unwrap_or(0) >= base + total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    for w in workers {
        w.abort();
    }
    total as f64 / secs
}

async fn latency(url: &str, samples: u64, run: &str) -> (u64, u64, u64) {
    let mut c = Consumer::connect(url, &["lat"], 1).await.expect("consumer");
    let client = Client::connect(url, Hello::role("client"))
        .await
        .expect("connect");
    let mut h =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for i in 0..samples + 50 {
        let t0 = Instant::now();
        // The submit's REPLY and the lease both follow the commit; time the lease.
        let leased = async {
            let l = c.next_lease().await.expect("lease");
            (l, t0.elapsed().as_micros() as u64)
        };
        let (reply, (l, us)) = tokio::join!(
            client.request(task("lat", format!("{run}-lat-{i}"))),
            leased
        );
        reply.expect("submit");
        if i >= 50 {
            h.record(us.max(1)).expect("record");
        }
        l.complete("", None).await.expect("complete");
        // Let the completion land so that the consumer is idle for the next sample.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let url = a.url.clone().unwrap_or_else(|| {
        let p =
            hivebus::server::port::discover(&a.dir).expect("no broker: HIVE_WS_PORT or .hive/port");
        format!("ws://127.0.0.1:{p}/")
    });
    let run = format!("b{}", uuid::Uuid::new_v4().simple());
    let broker = a.broker_pid.map(|p| p.to_string());
    let cpu0 = (cpu_secs("self"), broker.as_deref().and_then(cpu_secs));
    let t0 = Instant::now();
    let tps = throughput(&url, &a, &run).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = (cpu_secs("self"), broker.as_deref().and_then(cpu_secs));
    // Cores used during the throughput run (includes the consumers' setup).
    let cores = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a) / wall);
    let (bench_cores, broker_cores) = (cores(cpu0.0, cpu1.0), cores(cpu0.1, cpu1.1));
    let (p50, p99, max) = latency(&url, a.samples, &run).await;
    if a.json {
        let total = a.tasks / a.submitters * a.submitters;
        println!(
            "{}",
            json!({
                "system": "hivebus", "tasks": total, "consumers": a.consumers, "slots": a.slots,
                "submitters": a.submitters, "window": a.window, "durable": "sqlite",
                "tasks_per_s": tps.round(), "lat_samples": a.samples,
                "lat_p50_us": p50, "lat_p99_us": p99, "lat_max_us": max,
                "bench_cores": bench_cores.map(|c| (c * 100.0).round() / 100.0),
                "broker_cores": broker_cores.map(|c| (c * 100.0).round() / 100.0),
            })
        );
        return;
    }
    println!(
        "throughput: {tps:.0} tasks/s end to end ({} tasks, {} consumers x {} slots, {} submitters x {} in flight)",
        a.tasks / a.submitters * a.submitters, a.consumers, a.slots, a.submitters, a.window
    );
    if let (Some(b), Some(k)) = (bench_cores, broker_cores) {
        println!("cores used during the throughput run: bench {b:.2}, broker {k:.2}");
    }
    println!("submit->lease latency (idle consumer, {} samples): p50 {p50} us, p99 {p99} us, max {max} us", a.samples);
}
