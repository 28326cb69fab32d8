//! Test harness for the queue: a real server with the queue operator on 127.0.0.1:0,
//! its SQLite file in a fresh temp directory, and real WebSocket clients.
//!
//! Store acknowledgements are awaited through `spawn_blocking` (`blocking_acks`), so
//! tests on a paused clock do not auto-advance while a commit is in flight.

#![allow(dead_code)]

use hivebus::client::{Client, ClientError, Hello};
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::queue::{Queue, QueueConfig};
use hivebus::ops::Operators;
use hivebus::server::ServerConfig;
use hivebus::store::StoreOptions;
use hivebus::{Bus, Config};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for one frame (virtual time on a paused clock).
pub const WAIT: Duration = Duration::from_secs(600);

pub struct Q {
    pub url: String,
    pub queue: Queue,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hive-q-{tag}-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Defaults for tests: no jitter, short leases and backoff, generous idle limits.
pub fn config() -> QueueConfig {
    QueueConfig {
        jitter: false,
        lease_ms: 5_000,
        backoff_base_ms: 1_000,
        backoff_cap_ms: 8_000,
        ..QueueConfig::default()
    }
}

pub async fn start(cfg: QueueConfig) -> Q {
    start_in(cfg, temp_dir("t")).await
}

pub async fn start_in(cfg: QueueConfig, dir: PathBuf) -> Q {
    start_with(cfg, dir, Vec::new()).await
}

/// A broker with the queue and `extra` operators after it.
pub async fn start_with(
    mut cfg: QueueConfig,
    dir: PathBuf,
    extra: Vec<Arc<dyn hivebus::ops::Operator>>,
) -> Q {
    cfg.db_path = Some(dir.join("queue.db"));
    cfg.logs_dir = Some(dir.join("logs"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::default();
    let bus = Bus::new(config.bus.clone()).unwrap();
    let opts = StoreOptions {
        blocking_acks: true,
        ..StoreOptions::default()
    };
    let queue = Queue::open_with(bus.clone(), cfg, opts).unwrap();
    let mut ops = Operators::new().with(Arc::new(queue.clone()));
    for op in extra {
        ops = ops.with(op);
    }
    let server = ServerConfig {
        ping_interval_ms: 86_400_000,
        idle_timeout_ms: 86_400_000,
        ..config.server
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        hivebus::server::run(listener, bus, server, ops, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Q {
        url: format!("ws://{addr}/"),
        queue,
        dir,
        stop: Some(tx),
        handle,
    }
}

impl Q {
    pub async fn client(&self) -> Client {
        let mut c = Client::connect(&self.url, Hello::role("client"))
            .await
            .unwrap();
        c.set_timeout(WAIT);
        c
    }

    /// A consumer session registered for `kinds` with `slots`, driven by hand (no
    /// automatic heartbeats).
    pub async fn consumer(&self, kinds: &[&str], slots: u32) -> Client {
        let mut h = Hello::role("consumer");
        h.capabilities = kinds.iter().map(|k| k.to_string()).collect();
        h.slots = Some(slots);
        let mut c = Client::connect(&self.url, h).await.unwrap();
        c.set_timeout(WAIT);
        c.command("op.queue.consume", json!({})).await.unwrap();
        c
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
        self.queue.shutdown().await;
    }
}

/// A submit body for `bip-43:<kind>`.
pub fn task(kind: &str, key: &str, priority: &str) -> Value {
    json!({"kind": kind, "bipId": 43, "idempotencyKey": key, "priority": priority, "args": {"k": key}})
}

pub async fn submit(c: &Client, body: Value) -> Result<Value, ClientError> {
    c.command("op.queue.submit", body).await
}

/// The next leased TASK frame this consumer receives, skipping other frames.
pub async fn next_lease(c: &mut Client) -> Envelope {
    loop {
        let e = c.next_event_within(WAIT).await.expect("no lease in time");
        if e.kind == FrameType::Task && e.payload.get("lease").is_some() {
            return e;
        }
    }
}

/// The next frame of `kind` this client receives, skipping others.
pub async fn next_of(c: &mut Client, kind: FrameType) -> Envelope {
    loop {
        let e = c.next_event_within(WAIT).await.expect("no frame in time");
        if e.kind == kind {
            return e;
        }
    }
}

/// The next APPROVAL decision a consumer receives.
pub async fn next_decision(c: &mut Client) -> Envelope {
    next_of(c, FrameType::Approval).await
}

/// The next SYSTEM notice about a lease.
pub async fn next_notice(c: &mut Client) -> Envelope {
    loop {
        let e = c.next_event_within(WAIT).await.expect("no notice in time");
        if e.kind == FrameType::System {
            return e;
        }
    }
}

/// Asserts that no lease arrives within `t`.
pub async fn no_lease_within(c: &mut Client, t: Duration) {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next_event_within(left).await {
            Err(ClientError::Timeout) => return,
            Err(e) => panic!("{e}"),
            Ok(e) if e.kind == FrameType::Task => panic!("unexpected lease {}", e.to_text()),
            Ok(_) => {}
        }
    }
}

/// A consumer frame about `lease` (a TASK frame) with `payload`.
pub fn about(lease: &Envelope, kind: FrameType, mut payload: Value) -> Envelope {
    payload["task"] = lease.payload["task"].clone();
    payload["lease"] = lease.payload["lease"].clone();
    let mut e = Envelope::new(kind, payload);
    e.room = lease.room.clone();
    e.channel = lease.channel.clone();
    e.trace_id = lease.trace_id.clone();
    e
}

/// Sends a RESULT and waits for the durable acknowledgement.
pub async fn finish(c: &Client, lease: &Envelope, status: &str) -> Result<Value, ClientError> {
    c.request(about(
        lease,
        FrameType::Result,
        json!({"status": status, "summary": format!("{status}!")}),
    ))
    .await
}

pub fn task_id(lease: &Envelope) -> String {
    lease.payload["task"].as_str().unwrap().to_owned()
}

pub async fn show(c: &Client, id: &str) -> Value {
    c.command("op.queue.show", json!({"task": id}))
        .await
        .unwrap()
}
