//! Test harness: a broker with the safety layer attached and access control on, as
//! `examples/hive_broker.rs` runs it, and a raw WebSocket client.

use futures_util::{SinkExt, StreamExt};
use hivebus::ops::Operators;
use hivebus::safety::{Safety, SafetyOperator};
use hivebus::server::Security;
use hivebus::{Bus, Config};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one frame.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) bus: Bus,
    pub(crate) safety: Arc<Safety>,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

/// A broker on 127.0.0.1:0 (local mode).
pub(crate) async fn start(config: Config) -> TestServer {
    start_on("127.0.0.1:0", config).await
}

/// A broker on `bind`; `0.0.0.0:0` is remote mode, reached here over 127.0.0.1.
pub(crate) async fn start_on(bind: &str, config: Config) -> TestServer {
    start_full(bind, config, Vec::new()).await
}

/// A broker on `bind` with extra operators besides `safety`.
pub(crate) async fn start_full(
    bind: &str,
    config: Config,
    extra: Vec<Arc<dyn hivebus::ops::Operator>>,
) -> TestServer {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bus = Bus::new(config.bus.clone()).unwrap();
    let safety = Safety::new(config.safety.clone()).unwrap();
    safety.attach(&bus).unwrap();
    let mut ops = Operators::new().with(Arc::new(SafetyOperator::new(safety.clone())));
    for op in extra {
        ops = ops.with(op);
    }
    let (tx, rx) = oneshot::channel::<()>();
    let mut security = Security::from_config(&config);
    security.signatures = Some(Arc::new(
        hivebus::auth::signature::Signatures::from_config(&config.signatures, &config.auth)
            .unwrap(),
    ));
    let server_bus = bus.clone();
    let handle = tokio::spawn(async move {
        hivebus::server::serve(listener, server_bus, config.server, ops, security, async {
            let _ = rx.await;
        })
        .await
    });
    TestServer {
        addr,
        bus,
        safety,
        stop: Some(tx),
        handle,
    }
}

impl TestServer {
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// A raw socket, not yet handshaken.
    pub(crate) async fn raw(&self) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(self.url()).await.unwrap();
        Raw { ws }
    }

    /// A raw socket after a HELLO with `role` (and `auth` when given); panics unless
    /// WELCOME comes back.
    pub(crate) async fn hello(&self, role: &str, auth: Option<&str>) -> Raw {
        let mut r = self.raw().await;
        let w = r.send_hello(role, auth).await;
        assert_eq!(w["type"], "WELCOME", "{w}");
        r
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.handle).await;
    }
}

pub(crate) struct Raw {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Raw {
    pub(crate) async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Sends HELLO and returns the answer (WELCOME or ERROR).
    pub(crate) async fn send_hello(&mut self, role: &str, auth: Option<&str>) -> Value {
        let mut payload = json!({"role": role, "capabilities": []});
        if let Some(a) = auth {
            payload["auth"] = a.into();
        }
        self.send(json!({"id": "h", "type": "HELLO", "payload": payload}))
            .await;
        self.recv().await
    }

    /// The next text frame as JSON; panics on timeout or close.
    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("no frame within {WAIT:?}"),
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).unwrap(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a COMMAND and returns the answer frame (REPLY or ERROR).
    pub(crate) async fn command(&mut self, id: &str, name: &str, args: Value) -> Value {
        self.send(json!({"id": id, "type": "COMMAND", "payload": {"name": name, "args": args}}))
            .await;
        self.recv().await
    }

    /// Joins `address`, asserting success.
    pub(crate) async fn join(&mut self, address: &str) {
        let id = format!("join-{address}");
        let r = self.command(&id, "join", json!({"address": address})).await;
        reply_of(&r, &id);
    }

    /// Publishes a MESSAGE on `address` and returns the answer frame.
    pub(crate) async fn publish(&mut self, id: &str, address: &str, payload: Value) -> Value {
        self.send(json!({"id": id, "type": "MESSAGE", "room": address, "payload": payload}))
            .await;
        self.recv().await
    }

    /// Waits for the close frame and returns its code.
    pub(crate) async fn closed_with(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("not closed within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(Some(f))))) => return f.code.into(),
                Ok(Some(Ok(Message::Close(None)))) => return 1005,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("socket error before close: {e}"),
                Ok(None) => panic!("stream ended without a close frame"),
            }
        }
    }
}

/// Asserts an ERROR frame with `code` answering `re`.
pub(crate) fn assert_error(frame: &Value, code: &str, re: Option<&str>) {
    assert_eq!(frame["type"], "ERROR", "{frame}");
    assert_eq!(frame["payload"]["code"], code, "{frame}");
    if let Some(re) = re {
        assert_eq!(frame["payload"]["re"], re, "{frame}");
    }
}

/// Asserts a REPLY answering `re` and returns its result.
pub(crate) fn reply_of<'a>(frame: &'a Value, re: &str) -> &'a Value {
    assert_eq!(frame["type"], "REPLY", "{frame}");
    assert_eq!(frame["payload"]["re"], re, "{frame}");
    assert_eq!(frame["payload"]["ok"], true, "{frame}");
    &frame["payload"]["result"]
}

/// A config with the safety layer in `mode`.
pub(crate) fn config_with(mode: hivebus::safety::Mode) -> Config {
    Config {
        safety: hivebus::safety::SafetyConfig::with_mode(mode),
        ..Default::default()
    }
}
