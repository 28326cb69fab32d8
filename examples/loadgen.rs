//! hivebus load generator: run it as a separate process from the server it measures.
//!
//! Scenarios (`--scenario`):
//! - `fanout`: 1 publisher -> `--subscribers` N subscribers of one channel;
//! - `many-channels`: `--channels` channels x `--subs-per-channel` subscribers, spread over
//!   `--subscribers` connections that each join `--per-sub` channels, with `--publishers`
//!   publishers, each owning an equal share of the channels and picking one of them at
//!   random for every publish;
//! - `connections`: `--connections` K idle connections; reports the server's RSS per
//!   connection (needs `--server-pid`, and `ulimit -n` above K in both processes);
//! - `queue`: reserved for the task queue (submit -> lease -> result); not implemented.
//!
//! Pub/sub runs are closed-loop by default (as fast as a window of `--window` un-acked
//! publishes and a cap of `--lag` undelivered publishes allow) and open-loop at `--rate`
//! publishes per second when it is given. Each payload (exactly `--payload` bytes of
//! JSON) carries its send time; subscribers record the publish -> deliver latency of
//! publishes sent inside the measurement window (`--warmup` then `--duration` seconds)
//! in an HDR histogram, and count the deliveries received inside it. With
//! `--server-pid`, the server's CPU time over the window is read from `/proc`.
//!
//! Targets (`--target`): `hivebus`, `bare` (`examples/bare_ws_server.rs`, the ceiling of
//! the WebSocket stack) and, built with `--features peers`, `nats` and `redis`.
//!
//! ```text
//! cargo run --release --example hive_broker -- --port 50000 &
//! taskset -c 1 cargo run --release --example loadgen -- --target hivebus \
//!     --url ws://127.0.0.1:50000/ --scenario fanout --subscribers 100 --payload 100
//! ```
//! `benches/compare.sh` runs every scenario against every target; `--json` prints one
//! JSON line for it.

use clap::Parser;
use std::time::Duration;

#[path = "loadgen/common.rs"]
mod common;
#[cfg(feature = "peers")]
#[path = "loadgen/peers.rs"]
mod peers;
#[path = "loadgen/scenarios.rs"]
mod scenarios;
#[path = "loadgen/targets.rs"]
mod targets;
#[path = "loadgen/ws.rs"]
mod ws;

#[derive(Parser, Debug)]
#[command(about = "hivebus load generator (fanout, many-channels, connections)")]
struct Args {
    /// fanout | many-channels | connections | queue.
    #[arg(long, default_value = "fanout")]
    scenario: String,
    /// hivebus | bare | nats | redis (the last two need `--features peers`).
    #[arg(long, default_value = "hivebus")]
    target: String,
    /// Server URL: ws://127.0.0.1:P/ (hivebus, bare), nats://127.0.0.1:P, redis://127.0.0.1:P/.
    #[arg(long)]
    url: String,
    /// Subscriber connections (fanout default 100, many-channels default 1000).
    #[arg(long)]
    subscribers: Option<usize>,
    /// Channels (many-channels).
    #[arg(long, default_value_t = 1000)]
    channels: usize,
    /// Channels each subscriber connection joins (many-channels).
    #[arg(long, default_value_t = 10)]
    per_sub: usize,
    /// Publishers, each owning an equal share of the channels (fanout: 1; many-channels
    /// default 10).
    #[arg(long)]
    publishers: Option<usize>,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Seconds before the measurement window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measurement window.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Open loop at this many publishes per second (all publishers together).
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: most un-acked publishes per publisher.
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Closed loop: most publishes not yet delivered to every subscriber, per publisher.
    #[arg(long, default_value_t = 256)]
    lag: u64,
    /// Idle connections to open (connections).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// The server's pid, for its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Worker threads of this process.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON line instead of the text summary.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print_text(&args, &report);
            }
            // Held connections and tasks are dropped with the runtime; do not wait.
            rt.shutdown_timeout(Duration::from_millis(100));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            rt.shutdown_timeout(Duration::from_millis(100));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: &Args) -> Result<serde_json::Value, String> {
    let target = targets::Target::parse(&a.target)?;
    let _ = common::now_ns(); // Fix the clock's origin before anything is stamped.
    let pace = match a.rate {
        Some(rate) if rate > 0.0 => common::Pace::Open { rate },
        Some(_) => return Err("--rate must be positive".into()),
        None => common::Pace::Closed {
            window: a.window.max(1),
            lag: a.lag.max(1),
        },
    };
    let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 600.0));
    let mut spec = scenarios::Spec {
        target,
        url: a.url.clone(),
        subscribers: a.subscribers.unwrap_or(100),
        channels: 1,
        per_sub: 1,
        publishers: 1,
        payload: a.payload.max(40),
        warmup: secs(a.warmup),
        duration: secs(a.duration.max(0.1)),
        pace,
        server_pid: a.server_pid,
    };
    let mut report = match a.scenario.as_str() {
        "fanout" => scenarios::pubsub(spec).await?,
        "many-channels" => {
            spec.subscribers = a.subscribers.unwrap_or(1000);
            spec.channels = a.channels.max(1);
            spec.per_sub = a.per_sub.max(1);
            spec.publishers = a.publishers.unwrap_or(10).max(1);
            scenarios::pubsub(spec).await?
        }
        "connections" => {
            scenarios::connections(target, a.url.clone(), a.connections, a.server_pid).await?
        }
        "queue" => scenarios::queue().await?,
        s => return Err(format!("unknown scenario {s}")),
    };
    report["scenario"] = a.scenario.clone().into();
    Ok(report)
}

fn print_text(a: &Args, r: &serde_json::Value) {
    if a.scenario == "connections" {
        println!(
            "{} connections to {}: RSS {} -> {} KiB, {} KiB per connection (opened in {:.1} s)",
            r["connections"],
            r["target"],
            r["rss_before_kib"],
            r["rss_after_kib"],
            r["rss_kib_per_conn"],
            r["open_s"].as_f64().unwrap_or_default()
        );
        return;
    }
    println!(
        "{} {} -> {} subscribers x {} channels ({} per channel), {} B, {}:",
        r["target"].as_str().unwrap_or_default(),
        r["publishers"],
        r["subscribers"],
        r["channels"],
        r["subs_per_channel"],
        r["payload"],
        r["mode"].as_str().unwrap_or_default()
    );
    println!(
        "  delivered/s {}  sent {}  loss {}  kicked {}  publisher behind schedule (max) {} us",
        r["delivered_per_s"], r["sent"], r["loss"], r["kicked"], r["publisher_behind_max_us"]
    );
    println!(
        "  latency us: p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
        r["p50_us"], r["p90_us"], r["p99_us"], r["p999_us"], r["max_us"], r["latency_samples"]
    );
    println!(
        "  server CPU {} s ({} ns per delivery), loadgen CPU {} s",
        r["server_cpu_s"], r["server_ns_per_delivery"], r["loadgen_cpu_s"]
    );
}
