//! `hostile`: the bad-input table of `docs/SECURITY.md` played against a running broker,
//! while one well-behaved session (the victim) measures its `ping` round trips.
//!
//! Every attack runs at once, for `--seconds`, from unauthenticated local sessions
//! (the cheapest attacker there is):
//! - **flood**: sessions publishing `--frame-kb` frames into `--channels` channels, as
//!   fast as the broker reads them (fire-and-forget, no `id`);
//! - **stalled readers**: sessions that join every flooded channel and never read;
//! - **expensive redaction**: sessions publishing frames of thousands of
//!   `password=...` matches;
//! - **long ids**: frames whose `id` is at the 128-byte limit (remembered in the
//!   duplicate window) and over it (refused);
//! - **connections**: `--conns` idle sessions, past `max_anonymous_sessions` when
//!   that is lower (the extra ones are refused with 4010).
//!
//! With `--attack none` only the victim runs: the same measurement, quiet, for the
//! latency factor. The report is one JSON object on stdout. The test
//! `tests/safety/hostile.rs` runs it against a debug broker and checks the broker's
//! peak RSS; `benches/hostile.sh` runs it against a release broker for the figures in
//! `docs/SECURITY.md`. It sends only to the URL it is given (127.0.0.1 in both).

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser, Clone)]
#[command(about = "Plays the bad-input table against a broker while a victim pings it")]
struct Args {
    /// Broker URL (127.0.0.1 only: this program attacks what it is pointed at).
    #[arg(long)]
    url: String,
    /// `all` or `none` (the victim alone, for the quiet baseline).
    #[arg(long, default_value = "all")]
    attack: String,
    /// How long the attack (and the victim's pings) last.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Flooding sessions.
    #[arg(long, default_value_t = 4)]
    flooders: usize,
    /// Channels flooded, spread over the flooders.
    #[arg(long, default_value_t = 200)]
    channels: usize,
    /// Size of one flood frame, in KB.
    #[arg(long, default_value_t = 60)]
    frame_kb: usize,
    /// Sessions that join the flooded channels and never read.
    #[arg(long, default_value_t = 20)]
    stalled: usize,
    /// Sessions sending text that is expensive to redact.
    #[arg(long, default_value_t = 3)]
    redactors: usize,
    /// Sessions sending frames with ids at and over the limit.
    #[arg(long, default_value_t = 4)]
    id_senders: usize,
    /// Idle connections opened and held.
    #[arg(long, default_value_t = 300)]
    conns: usize,
    /// Milliseconds between the victim's pings.
    #[arg(long, default_value_t = 5)]
    ping_ms: u64,
    /// Attack only: the victim runs in another process (`--attack none`), so that
    /// the attackers' own CPU use does not delay its measurement (benches/hostile.sh).
    #[arg(long)]
    no_victim: bool,
}

/// Counts shared by the attackers, reported at the end.
#[derive(Default)]
struct Counts {
    flood_frames: AtomicU64,
    flood_bytes: AtomicU64,
    redaction_frames: AtomicU64,
    redaction_refused: AtomicU64,
    id_frames: AtomicU64,
    ids_refused: AtomicU64,
    conns_open: AtomicU64,
    conns_refused: AtomicU64,
    stalled_closed: AtomicU64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(args)) {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hostile: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(a: Args) -> Result<Value, String> {
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    // The victim has a thread and a runtime of its own, so that what it measures is the
    // broker, not this program's attackers crowding its scheduler; and it is welcomed
    // before the attack starts, so that it holds its session like any well-behaved
    // client that was there first (the attack fills the anonymous cap).
    let victim = if a.no_victim {
        None
    } else {
        let (url, every) = (a.url.clone(), Duration::from_millis(a.ping_ms));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(async move {
                    let ws = hello(&url, "client").await;
                    let _ = ready_tx.send(());
                    victim(ws?, every, until).await
                })
        });
        // Welcomed or refused, the victim says so before the attackers start.
        let _ = ready_rx.recv();
        Some(handle)
    };
    let mut tasks = Vec::new();
    if a.attack == "all" {
        let per = a.channels.div_ceil(a.flooders.max(1));
        for f in 0..a.flooders {
            tasks.push(tokio::spawn(flood(
                a.clone(),
                f,
                per,
                counts.clone(),
                until,
            )));
        }
        for _ in 0..a.stalled {
            tasks.push(tokio::spawn(stall(a.clone(), counts.clone(), until)));
        }
        for _ in 0..a.redactors {
            tasks.push(tokio::spawn(redact(a.url.clone(), counts.clone(), until)));
        }
        for s in 0..a.id_senders {
            tasks.push(tokio::spawn(long_ids(
                a.url.clone(),
                s,
                counts.clone(),
                until,
            )));
        }
        tasks.push(tokio::spawn(connections(a.clone(), counts.clone(), until)));
    } else if a.attack != "none" {
        return Err(format!("--attack is `all` or `none`, not `{}`", a.attack));
    }
    let victim = match victim {
        Some(v) => v
            .join()
            .map_err(|_| "the victim's thread panicked".to_owned())??,
        None => {
            tokio::time::sleep_until(until.into()).await;
            Value::Null
        }
    };
    for t in tasks {
        // An attacker that the broker cut off ends early; that is the broker's right.
        let _ = t.await;
    }
    let c = &counts;
    let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
    Ok(json!({
        "attack": a.attack,
        "seconds": a.seconds,
        "victim": victim,
        "flood": {"frames": n(&c.flood_frames), "bytes": n(&c.flood_bytes)},
        "stalled": {"sessions": a.stalled, "closed": n(&c.stalled_closed)},
        "redaction": {"frames": n(&c.redaction_frames), "refused": n(&c.redaction_refused)},
        "ids": {"frames": n(&c.id_frames), "refused": n(&c.ids_refused)},
        "connections": {"open": n(&c.conns_open), "refused": n(&c.conns_refused)},
    }))
}

/// Connects and sends HELLO; the WELCOME (or refusal) is the first frame read.
async fn hello(url: &str, role: &str) -> Result<Ws, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    handshake(ws, role).await
}

/// [`hello`] over a socket with a 16 KiB receive buffer, as a client that wants the
/// broker, not its own kernel, to hold what it does not read.
async fn hello_small_window(url: &str, role: &str) -> Result<Ws, String> {
    let host = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse::<std::net::SocketAddr>()
        .map_err(|e| format!("{url}: {e} (this program wants ws://<ip>:<port>/)"))?;
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(16 << 10)
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(host).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    handshake(ws, role).await
}

async fn handshake(mut ws: Ws, role: &str) -> Result<Ws, String> {
    let h = json!({"id": "h", "type": "HELLO", "payload": {"role": role}});
    ws.send(Message::text(h.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    match next_text(&mut ws).await {
        Some(t) if t.contains("\"WELCOME\"") => Ok(ws),
        other => Err(format!("not welcomed: {other:?}")),
    }
}

/// The next text frame, skipping control frames; `None` when the session ended.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Joins `address` and waits for the answer.
async fn join(ws: &mut Ws, address: &str) -> Result<(), String> {
    let id = format!("j-{address}");
    let j = json!({"id": id, "type": "COMMAND", "payload": {"name": "join", "args": {"address": address}}});
    ws.send(Message::text(j.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match next_text(ws).await {
            Some(t) if t.contains(&format!("\"re\":\"{id}\"")) => {
                return match t.contains("\"ok\":true") {
                    true => Ok(()),
                    false => Err(format!("join refused: {t}")),
                }
            }
            Some(_) => {}
            None => return Err("closed during join".into()),
        }
    }
}

/// Reads and discards what the broker sends, counting refusals whose text has `needle`.
async fn drain(mut rx: futures_util::stream::SplitStream<Ws>, refused: Option<(&AtomicU64, &str)>) {
    while let Some(Ok(m)) = rx.next().await {
        if let (Some((n, needle)), Message::Text(t)) = (refused, &m) {
            if t.as_str().contains(needle) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn flood(a: Args, f: usize, per: usize, c: Arc<Counts>, until: Instant) {
    let Ok(mut ws) = hello(&a.url, "client").await else {
        return;
    };
    if join(&mut ws, &format!("flood{f}:*")).await.is_err() {
        return;
    }
    let (mut tx, rx) = ws.split();
    let reader = tokio::spawn(drain(rx, None));
    let pad = "x".repeat(a.frame_kb * 1000);
    let mut i = 0usize;
    while Instant::now() < until {
        let frame = json!({"type": "MESSAGE", "room": format!("flood{f}:c{}", i % per.max(1)), "payload": {"pad": pad}})
            .to_string();
        let len = frame.len() as u64;
        if tx.send(Message::text(frame)).await.is_err() {
            break;
        }
        c.flood_frames.fetch_add(1, Ordering::Relaxed);
        c.flood_bytes.fetch_add(len, Ordering::Relaxed);
        i += 1;
    }
    let _ = tx.close().await;
    reader.abort();
}

async fn stall(a: Args, c: Arc<Counts>, until: Instant) {
    let Ok(mut ws) = hello_small_window(&a.url, "client").await else {
        return;
    };
    for f in 0..a.flooders {
        if let Err(e) = join(&mut ws, &format!("flood{f}:*")).await {
            debug(&format!("stalled reader: {e}"));
            return;
        }
    }
    // Never read until the attack is over; then read what is there for a few seconds
    // and see whether the broker cut us off as a slow consumer.
    tokio::time::sleep_until(until.into()).await;
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Err(_)) | None => return Some(1006),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .ok()
    .flatten();
    debug(&format!("stalled reader closed with {closed:?}"));
    if closed == Some(4008) {
        c.stalled_closed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn redact(url: String, c: Arc<Counts>, until: Instant) {
    let Ok(mut ws) = hello(&url, "client").await else {
        return;
    };
    if join(&mut ws, "secrets:c").await.is_err() {
        return;
    }
    let (mut tx, rx) = ws.split();
    let counts = c.clone();
    let reader = tokio::spawn(async move {
        drain(rx, Some((&counts.redaction_refused, "\"ERROR\""))).await;
    });
    // About 60 KB of `password=...` matches: far past the redactor's match budget.
    let hostile = "password=hunter2 ".repeat(3_500);
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let frame = json!({"id": format!("r{n}"), "type": "MESSAGE", "room": "secrets:c", "payload": {"text": hostile}});
        if tx.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
        c.redaction_frames.fetch_add(1, Ordering::Relaxed);
    }
    let _ = tx.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.abort();
}

async fn long_ids(url: String, s: usize, c: Arc<Counts>, until: Instant) {
    let Ok(ws) = hello(&url, "client").await else {
        return;
    };
    let (mut tx, rx) = ws.split();
    let counts = c.clone();
    let reader = tokio::spawn(async move {
        drain(rx, Some((&counts.ids_refused, "invalid_field"))).await;
    });
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        // Every other id is one byte over the 128-byte limit.
        let width = if n.is_multiple_of(2) { 128 } else { 129 };
        let id = format!("{s}-{n}-{}", "i".repeat(width));
        let id = &id[..width];
        let frame = json!({"id": id, "type": "COMMAND", "payload": {"name": "ping", "args": {}}});
        if tx.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
        c.id_frames.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(256) {
            // Let the answers flow: the point is the ids, not a write flood.
            tokio::task::yield_now().await;
        }
    }
    let _ = tx.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.abort();
}

async fn connections(a: Args, c: Arc<Counts>, until: Instant) {
    // All at once: the point is how many the broker holds, not how fast it admits.
    let mut held = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        let (url, c) = (a.url.clone(), c.clone());
        held.push(tokio::spawn(async move {
            match hello(&url, "client").await {
                Ok(mut ws) => {
                    c.conns_open.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep_until(until.into()).await;
                    let _ = ws.close(None).await;
                }
                Err(_) => {
                    c.conns_refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in held {
        let _ = h.await;
    }
}

/// Pings on `ws` every `every` until `until`; reports the round trips in microseconds.
async fn victim(mut ws: Ws, every: Duration, until: Instant) -> Result<Value, String> {
    // 1 µs .. 60 s: the answer of a starved broker still lands in the histogram.
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut tick = tokio::time::interval(every);
    while Instant::now() < until {
        tick.tick().await;
        sent += 1;
        let id = format!("v{sent}");
        let frame = json!({"id": id, "type": "COMMAND", "payload": {"name": "ping", "args": {}}});
        let t0 = Instant::now();
        ws.send(Message::text(frame.to_string()))
            .await
            .map_err(|e| format!("victim send: {e}"))?;
        let needle = format!("\"re\":\"{id}\"");
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match next_text(&mut ws).await {
                    Some(t) if t.contains(&needle) => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if !got {
            break;
        }
        answered += 1;
        hist.saturating_record(t0.elapsed().as_micros() as u64);
    }
    let q = |p: f64| hist.value_at_quantile(p);
    Ok(json!({
        "pings": sent, "answered": answered,
        "p50_us": q(0.5), "p95_us": q(0.95), "p99_us": q(0.99), "max_us": hist.max(),
    }))
}

/// A line on stderr when `HOSTILE_DEBUG` is set.
fn debug(line: &str) {
    if std::env::var_os("HOSTILE_DEBUG").is_some() {
        eprintln!("hostile: {line}");
    }
}
