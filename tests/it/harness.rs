//! Test harness: a real server on 127.0.0.1:0 and real WebSocket clients, the SDK one
//! and a raw one for frames the SDK would never send.

use futures_util::{SinkExt, StreamExt};
use hivebus::client::{Client, Hello};
use hivebus::ops::Operators;
use hivebus::{Bus, Config};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one frame.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub bus: Bus,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

pub async fn start(config: Config) -> TestServer {
    start_with(config, Operators::new()).await
}

pub async fn start_with(config: Config, ops: Operators) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bus = Bus::new(config.bus.clone()).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server_bus = bus.clone();
    let handle = tokio::spawn(async move {
        hivebus::server::run(listener, server_bus, config.server, ops, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestServer {
        addr,
        bus,
        stop: Some(tx),
        handle,
    }
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub async fn client(&self, role: &str) -> Client {
        Client::connect(&self.url(), Hello::role(role))
            .await
            .unwrap()
    }

    /// A raw socket, not yet handshaken.
    pub async fn raw(&self) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(self.url()).await.unwrap();
        Raw { ws }
    }

    /// A raw socket after a HELLO with `role`.
    pub async fn raw_hello(&self, role: &str) -> Raw {
        let mut r = self.raw().await;
        r.send(json!({"id": "h", "type": "HELLO", "payload": {"role": role, "capabilities": []}}))
            .await;
        let w = r.recv().await;
        assert_eq!(w["type"], "WELCOME", "{w}");
        r
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.handle).await;
    }
}

pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Raw {
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::text(t.to_owned())).await.unwrap();
    }

    /// The next text frame as JSON; panics on timeout or close.
    pub async fn recv(&mut self) -> Value {
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
    pub async fn command(&mut self, id: &str, name: &str, args: Value) -> Value {
        self.send(json!({"id": id, "type": "COMMAND", "payload": {"name": name, "args": args}}))
            .await;
        self.recv().await
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed_with(&mut self) -> u16 {
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
pub fn assert_error(frame: &Value, code: &str, re: Option<&str>) {
    assert_eq!(frame["type"], "ERROR", "{frame}");
    assert_eq!(frame["payload"]["code"], code, "{frame}");
    if let Some(re) = re {
        assert_eq!(frame["payload"]["re"], re, "{frame}");
    }
}

/// Asserts a REPLY answering `re` and returns its result.
pub fn reply_of<'a>(frame: &'a Value, re: &str) -> &'a Value {
    assert_eq!(frame["type"], "REPLY", "{frame}");
    assert_eq!(frame["payload"]["re"], re, "{frame}");
    assert_eq!(frame["payload"]["ok"], true, "{frame}");
    &frame["payload"]["result"]
}
