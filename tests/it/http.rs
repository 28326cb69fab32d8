//! HTTP on the broker's port, over real connections: each endpoint's status and
//! content type, the upgrade's refusals and hostile request heads, the metrics real
//! traffic leaves (publishes, a task submitted and finished through the queue), who may
//! read them, the Grafana dashboard against them, and `/readyz` when the store's writer
//! is stopped and while the broker shuts down. The telemetry stream is in `telemetry`.

use crate::harness::*;
use crate::transport::http_get;
use futures_util::{SinkExt, StreamExt};
use hivebus::client::{Client, Hello};
use hivebus::consumer::Consumer;
use hivebus::ops::queue::{Queue, QueueConfig};
use hivebus::ops::Operators;
use hivebus::server::{Security, ServerConfig};
use hivebus::{Bus, Config};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// A server with the task queue (in memory), as the broker runs it.
pub(crate) struct QueueServer {
    pub(crate) addr: SocketAddr,
    pub(crate) queue: Queue,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

pub(crate) async fn start_queue(server: ServerConfig) -> QueueServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bus = Bus::new(Config::default().bus).unwrap();
    let cfg = QueueConfig {
        jitter: false,
        ..QueueConfig::default()
    };
    let queue = Queue::open(bus.clone(), cfg).unwrap();
    let ops = Operators::new().with(Arc::new(queue.clone()));
    let (stop, rx) = oneshot::channel::<()>();
    let q = queue.clone();
    let handle = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        hivebus::server::serve_with(
            listener,
            bus,
            server,
            ops,
            Security::default(),
            Some(q),
            shutdown,
        )
        .await
        .unwrap();
    });
    QueueServer {
        addr,
        queue,
        stop,
        handle,
    }
}

impl QueueServer {
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
        self.queue.shutdown().await;
    }
}

/// `request` as written, the whole answer.
async fn http_raw(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// The value of header `name` in a raw answer (lower-cased name).
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The sample `name` (with its labels as exposed) in a metrics answer.
pub(crate) fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[tokio::test]
async fn each_endpoint_answers_with_its_status_and_content_type() {
    let srv = start(Config::default()).await;
    let h = http_get(srv.addr, "/healthz").await;
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(
        header(&h, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(h.ends_with("\r\n\r\nok\n"), "{h}");
    let r = http_get(srv.addr, "/readyz").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("ready\n"),
        "{r}"
    );
    let v = http_get(srv.addr, "/version").await;
    assert!(v.starts_with("HTTP/1.1 200"), "{v}");
    assert_eq!(header(&v, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(v.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["protocol"], 1);
    let m = http_get(srv.addr, "/metrics").await;
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert_eq!(
        header(&m, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let page = http_get(srv.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.contains("/metrics"), "{page}");
    let missing = http_get(srv.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = http_raw(
        srv.addr,
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert_eq!(header(&post, "allow"), Some("GET, HEAD"));
    // One answer per connection: the server closes (read_to_string ended above).
    assert_eq!(header(&h, "connection"), Some("close"));
    srv.stop().await;
}

#[tokio::test]
async fn a_malformed_upgrade_is_refused_with_400_or_426_and_a_good_one_still_works() {
    let srv = start(Config::default()).await;
    let no_key = http_raw(
        srv.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(no_key.starts_with("HTTP/1.1 400"), "{no_key}");
    let old = http_raw(
        srv.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(old.starts_with("HTTP/1.1 426"), "{old}");
    assert_eq!(header(&old, "sec-websocket-version"), Some("13"));
    let post = http_raw(
        srv.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 400"), "{post}");
    // The accept key is the RFC 6455 example's.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /any/path HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(header(&head, "connection"), Some("Upgrade"));
    let c = srv.client("client").await;
    c.join("r:c").await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn metrics_name_the_traffic_of_publishes_and_of_a_task_run_through_the_queue() {
    let srv = start_queue(ServerConfig::default()).await;
    let mut c = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    c.set_timeout(WAIT);
    c.join("r:c").await.unwrap();
    c.publish("r:c", json!({"n": 1})).await.unwrap();
    let mut consumer = Consumer::connect(&srv.url(), &["build"], 1).await.unwrap();
    let submitted = c
        .command(
            "op.queue.submit",
            json!({"kind": "build", "bipId": 43, "idempotencyKey": "b-1", "args": {}}),
        )
        .await
        .unwrap();
    assert!(submitted["task"].is_string(), "{submitted}");
    let lease = tokio::time::timeout(WAIT, consumer.next_lease())
        .await
        .unwrap()
        .unwrap();
    lease.complete("built", None).await.unwrap();
    assert!(c.command("op.queue.nope", json!({})).await.is_err());
    // The RESULT is applied asynchronously: wait for the queue to count it.
    let m = poll_metrics(srv.addr, |m| {
        sample(m, "hivebus_queue_succeeded_total") == Some(1.0)
            && sample(m, "hivebus_task_duration_seconds_count") == Some(1.0)
    })
    .await;
    for (series, at_least) in [
        ("hivebus_messages_total", 1.0),
        ("hivebus_connections", 2.0),
        ("hivebus_sessions{role=\"consumer\"}", 1.0),
        ("hivebus_sessions{role=\"client\"}", 1.0),
        ("hivebus_frames_in_total", 4.0),
        ("hivebus_frames_out_total", 4.0),
        (
            "hivebus_commands_total{command=\"op.queue.submit\",result=\"ok\"}",
            1.0,
        ),
        (
            "hivebus_commands_total{command=\"unknown\",result=\"unknown_command\"}",
            1.0,
        ),
        (
            "hivebus_queue_tasks{state=\"succeeded\",kind=\"build\"}",
            1.0,
        ),
        ("hivebus_queue_submitted_total", 1.0),
        ("hivebus_queue_leases_total", 1.0),
        ("hivebus_queue_consumers", 1.0),
        ("hivebus_store_commit_seconds_count", 1.0),
        ("hivebus_store_batch_size_count", 1.0),
    ] {
        let v = sample(&m, series).unwrap_or_else(|| panic!("no {series} in\n{m}"));
        assert!(v >= at_least, "{series} = {v}\n{m}");
    }
    for present in [
        "# TYPE hivebus_queue_depth gauge",
        "# TYPE hivebus_queue_oldest_waiting_seconds gauge",
        "# TYPE hivebus_queue_lease_expiries_total counter",
        "# TYPE hivebus_queue_retries_total counter",
        "# TYPE hivebus_queue_dead_letters_total counter",
        "# TYPE hivebus_queue_approvals_pending gauge",
        "# TYPE hivebus_approval_wait_seconds histogram",
        "# TYPE hivebus_store_commit_seconds histogram",
        "hivebus_task_duration_seconds_bucket{le=\"+Inf\"} 1",
    ] {
        assert!(m.contains(present), "no `{present}` in\n{m}");
    }
    // No task id is ever a label.
    let id = submitted["task"].as_str().unwrap();
    assert!(!m.contains(id), "{m}");
    consumer.close().await;
    srv.stop().await;
}

/// Scrapes until `done` holds (the queue applies frames asynchronously).
pub(crate) async fn poll_metrics(addr: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = http_get(addr, "/metrics").await;
        if done(&m) || tokio::time::Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn many_task_kinds_are_shown_as_the_largest_twenty_and_other() {
    let srv = start_queue(ServerConfig::default()).await;
    let mut c = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    c.set_timeout(WAIT);
    for n in 0..25 {
        let kind = format!("k{n:02}");
        // k00 gets two tasks, so it is among the largest whatever the order.
        for i in 0..(1 + usize::from(n == 0)) {
            let key = format!("{kind}-{i}");
            c.command(
                "op.queue.submit",
                json!({"kind": kind, "bipId": 1, "idempotencyKey": key, "args": {}}),
            )
            .await
            .unwrap();
        }
    }
    let m = http_get(srv.addr, "/metrics").await;
    let kinds: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("hivebus_queue_tasks{"))
        .filter_map(|l| l.split("kind=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(kinds.len(), 21, "{kinds:?}");
    assert!(
        kinds.contains("other") && kinds.contains("k00"),
        "{kinds:?}"
    );
    assert_eq!(
        sample(
            &m,
            "hivebus_queue_depth{kind=\"other\",priority=\"normal\"}"
        ),
        Some(5.0),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn readyz_is_503_naming_the_store_once_its_writer_has_stopped() {
    let srv = start_queue(ServerConfig::default()).await;
    let r = http_get(srv.addr, "/readyz").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // The queue's store writer stops (as at the end of a run) while the server serves.
    srv.queue.shutdown().await;
    let r = http_get(srv.addr, "/readyz").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(
        r.ends_with("store: store closed\n") || r.contains("store:"),
        "{r}"
    );
    // Liveness is not readiness: the process still answers.
    assert!(http_get(srv.addr, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    srv.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_the_broker_shuts_down() {
    let srv = start_queue(ServerConfig::default()).await;
    // A session, whose close (1001) says the server has begun stopping.
    let (mut ws, _) = tokio_tungstenite::connect_async(srv.url()).await.unwrap();
    let hello = json!({"type": "HELLO", "payload": {"role": "client"}}).to_string();
    ws.send(Message::text(hello)).await.unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("WELCOME"), "{welcome}");
    // A connection accepted before the shutdown, whose request comes during it: the
    // server drains it like a session.
    let mut early = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let _ = srv.stop.send(());
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 1001);
    early
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, early.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with("HTTP/1.1 503") && out.ends_with("stopping\n"),
        "{out}"
    );
    let _ = srv.handle.await;
    srv.queue.shutdown().await;
}

#[tokio::test]
async fn the_grafana_dashboard_uses_only_metrics_the_broker_exposes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/hivebus.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let srv = start_queue(ServerConfig::default()).await;
    let m = http_get(srv.addr, "/metrics").await;
    let exposed: std::collections::BTreeSet<&str> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let text = dashboard.to_string();
    let mut used = 0;
    for (at, _) in text.match_indices("hivebus_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            exposed.contains(name.as_str()) || exposed.contains(base),
            "the dashboard uses {name}, which /metrics does not expose"
        );
        used += 1;
    }
    assert!(used > 20, "{used}");
    srv.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_and_a_trickling_one_is_cut_at_the_handshake_deadline()
{
    let mut config = Config::default();
    config.server.handshake_timeout_ms = 300;
    let srv = start(config).await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(40 << 10)
    );
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    // The server may stop reading before all of it is written.
    let _ = s.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
    // A head that never ends: the connection is closed at the deadline, unanswered.
    let mut slow = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, slow.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() < WAIT);
    // And the broker still serves.
    assert!(http_get(srv.addr, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    srv.stop().await;
}

#[tokio::test]
async fn with_auth_required_metrics_need_an_admin_credential_and_health_does_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = serde_json::from_value(json!({"required": true, "tokens": [
        {"token": "admin-secret-0123456789", "subject": "ops", "role": "admin"},
        {"token": "client-secret-0123456789", "subject": "dev", "role": "client"},
    ]}))
    .unwrap();
    let security = Security {
        auth,
        ..Security::default()
    };
    let bus = Bus::new(Config::default().bus).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        hivebus::server::serve(
            listener,
            bus,
            ServerConfig::default(),
            Operators::new(),
            security,
            shutdown,
        )
        .await
        .unwrap();
    });
    let get = |auth: &str| format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    let none = http_raw(addr, &get("")).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert_eq!(header(&none, "www-authenticate"), Some("Bearer"));
    assert!(!none.contains("hivebus_"), "{none}");
    let client = http_raw(
        addr,
        &get("Authorization: Bearer client-secret-0123456789\r\n"),
    )
    .await;
    assert!(client.starts_with("HTTP/1.1 401"), "{client}");
    let forged = http_raw(
        addr,
        &get("Authorization: Bearer admin-secret-0123456788\r\n"),
    )
    .await;
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    let admin = http_raw(
        addr,
        &get("Authorization: Bearer admin-secret-0123456789\r\n"),
    )
    .await;
    assert!(
        admin.starts_with("HTTP/1.1 200") && admin.contains("hivebus_connections"),
        "{admin}"
    );
    assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    let _ = stop.send(());
    let _ = handle.await;
}
