//! The Rust client SDK: connect and handshake, run commands, publish, and read a stream
//! of frames. Used by the CLI, the examples, the load generator and the tests.
//!
//! One background task owns the socket (as on the server): requests go to it over a
//! channel, and it matches each REPLY or ERROR to the waiting request by `re`. Every
//! other frame (MESSAGE, EVENT, SYSTEM, PRIVATE, ...) goes to the event stream.

use crate::bus::Position;
use crate::error::WireError;
use crate::frame::{Envelope, FrameType};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// What can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting or the WebSocket layer failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered with an ERROR frame.
    #[error("server error {0}")]
    Server(WireError),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The server broke the protocol (no WELCOME, unparseable frame).
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The server's error code, when the server refused.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ClientError::Server(e) => Some(e.code.as_str()),
            _ => None,
        }
    }
}

/// The HELLO a client sends.
#[derive(Debug, Clone)]
pub struct Hello {
    /// Role: `client`, `consumer`, `admin`, `observer`.
    pub role: String,
    /// Capabilities (a consumer's task kinds).
    pub capabilities: Vec<String>,
    /// Token, when the server wants one.
    pub auth: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Concurrent tasks (consumers).
    pub slots: Option<u32>,
}

impl Hello {
    /// A HELLO with `role` and nothing else.
    pub fn role(role: &str) -> Self {
        Hello {
            role: role.to_owned(),
            capabilities: Vec::new(),
            auth: None,
            name: None,
            slots: None,
        }
    }
}

enum Request {
    Send(
        Box<Envelope>,
        Option<oneshot::Sender<Result<Value, WireError>>>,
    ),
    Close,
}

/// A connected, handshaken session. Dropping it closes the connection.
pub struct Client {
    tx: mpsc::Sender<Request>,
    events: mpsc::Receiver<Envelope>,
    session: String,
    welcome: Value,
    next_id: AtomicU64,
    timeout: Duration,
}

type Pending = HashMap<String, oneshot::Sender<Result<Value, WireError>>>;

impl Client {
    /// Connects to `url` (`ws://127.0.0.1:<port>/`) and handshakes.
    ///
    /// # Errors
    /// [`ClientError`] when the connection or the handshake fails.
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), hivebus::client::ClientError> {
    /// use hivebus::client::{Client, Hello};
    /// let mut c = Client::connect("ws://127.0.0.1:50000/", Hello::role("client")).await?;
    /// c.join("bip-43:*").await?;
    /// while let Some(frame) = c.next_event().await {
    ///     println!("{}", frame.to_text());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, hello: Hello) -> Result<Client, ClientError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        let mut frame = Envelope::new(
            FrameType::Hello,
            json!({"role": hello.role, "capabilities": hello.capabilities}),
        );
        frame.id = Some("hello".into());
        for (k, v) in [("auth", hello.auth), ("name", hello.name)] {
            if let Some(v) = v {
                frame.payload[k] = v.into();
            }
        }
        if let Some(s) = hello.slots {
            frame.payload["slots"] = s.into();
        }
        ws.send(Message::text(frame.to_text())).await?;
        let welcome = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let env: Envelope = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    match env.kind {
                        FrameType::Welcome => break env.payload,
                        FrameType::Error => {
                            return Err(ClientError::Server(wire_error(&env.payload)))
                        }
                        other => {
                            return Err(ClientError::Protocol(format!(
                                "expected WELCOME, got {}",
                                other.as_str()
                            )))
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        };
        let session = welcome["session"].as_str().unwrap_or_default().to_owned();
        let (tx, rx) = mpsc::channel(1024);
        let (ev_tx, events) = mpsc::channel(65536);
        tokio::spawn(drive(ws, rx, ev_tx));
        Ok(Client {
            tx,
            events,
            session,
            welcome,
            next_id: AtomicU64::new(1),
            timeout: Duration::from_secs(30),
        })
    }

    /// The session id the server gave.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The WELCOME payload (server, protocol, limits).
    pub fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// Sets how long a request waits for its answer (default 30 s).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    fn fresh_id(&self) -> String {
        format!("c-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `env` (an id is added when absent) and waits for its REPLY `result`.
    ///
    /// # Errors
    /// [`ClientError::Server`] for an ERROR answer; `Closed` / `Timeout` otherwise.
    pub async fn request(&self, mut env: Envelope) -> Result<Value, ClientError> {
        if env.id.is_none() {
            env.id = Some(self.fresh_id());
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Send(Box::new(env), Some(tx)))
            .await
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(r)) => r.map_err(ClientError::Server),
        }
    }

    /// Sends `env` without waiting for anything.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn send(&self, env: Envelope) -> Result<(), ClientError> {
        self.tx
            .send(Request::Send(Box::new(env), None))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Runs a command and returns its result.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn command(&self, name: &str, args: Value) -> Result<Value, ClientError> {
        self.request(Envelope::new(
            FrameType::Command,
            json!({"name": name, "args": args}),
        ))
        .await
    }

    /// Joins an address or pattern.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn join(&self, address: &str) -> Result<Value, ClientError> {
        self.command("join", json!({"address": address})).await
    }

    /// Joins `address` and recovers what was published after `from`.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn join_recover(&self, address: &str, from: &Position) -> Result<Value, ClientError> {
        self.command("join", json!({"address": address, "recover": from}))
            .await
    }

    /// Publishes `payload` as a MESSAGE on `room:channel` and waits for its offset.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn publish(&self, address: &str, payload: Value) -> Result<Position, ClientError> {
        let r = self.request(message(address, payload)).await?;
        Ok(Position {
            offset: r["offset"].as_u64().unwrap_or_default(),
            epoch: r["epoch"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Publishes without asking for an acknowledgement.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn publish_nowait(&self, address: &str, payload: Value) -> Result<(), ClientError> {
        self.send(message(address, payload)).await
    }

    /// The next frame that is not an answer to a request; `None` once closed.
    pub async fn next_event(&mut self) -> Option<Envelope> {
        self.events.recv().await
    }

    /// [`Client::next_event`] with a time limit.
    ///
    /// # Errors
    /// `Timeout`, or `Closed` when the connection ended.
    pub async fn next_event_within(&mut self, t: Duration) -> Result<Envelope, ClientError> {
        match tokio::time::timeout(t, self.events.recv()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(None) => Err(ClientError::Closed),
            Ok(Some(e)) => Ok(e),
        }
    }

    /// Closes the connection cleanly.
    pub async fn close(self) {
        let _ = self.tx.send(Request::Close).await;
    }
}

/// A MESSAGE envelope for `room:channel` (or `room` alone, which the server refuses).
fn message(address: &str, payload: Value) -> Envelope {
    let mut env = Envelope::new(FrameType::Message, payload);
    match address.split_once(':') {
        Some((r, c)) => {
            env.room = Some(r.to_owned());
            env.channel = Some(c.to_owned());
        }
        None => env.room = Some(address.to_owned()),
    }
    env
}

fn wire_error(p: &Value) -> WireError {
    let code = serde_json::from_value(p["code"].clone()).unwrap_or(crate::ErrorCode::Internal);
    let mut e = WireError::new(code, p["message"].as_str().unwrap_or_default());
    if let Some(d) = p.get("details") {
        e.details = Some(d.clone());
    }
    e
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn drive(mut ws: Socket, mut rx: mpsc::Receiver<Request>, events: mpsc::Sender<Envelope>) {
    let mut pending = Pending::new();
    let mut batch = Vec::with_capacity(64);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 64) => {
                if n == 0 {
                    let _ = ws.close(None).await;
                    return;
                }
                let mut closing = false;
                for req in batch.drain(..) {
                    match req {
                        Request::Send(env, reply) => {
                            if let (Some(id), Some(tx)) = (env.id.clone(), reply) {
                                pending.insert(id, tx);
                            }
                            if ws.feed(Message::text(env.to_text())).await.is_err() {
                                return;
                            }
                        }
                        Request::Close => closing = true,
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
                if closing {
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        let mut env = Envelope::new(FrameType::System, json!({"event": "closed"}));
                        if let Some(f) = frame {
                            env.payload["code"] = u16::from(f.code).into();
                            env.payload["reason"] = f.reason.as_str().into();
                        }
                        let _ = events.send(env).await;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => return,
                };
                let Ok(env) = serde_json::from_str::<Envelope>(text.as_str()) else {
                    continue;
                };
                let re = env.payload.get("re").and_then(Value::as_str).map(str::to_owned);
                let waiter = match (env.kind, re) {
                    (FrameType::Reply | FrameType::Error, Some(re)) => pending.remove(&re),
                    _ => None,
                };
                match waiter {
                    Some(tx) => {
                        let r = if env.kind == FrameType::Reply {
                            Ok(env.payload.get("result").cloned().unwrap_or(Value::Null))
                        } else {
                            Err(wire_error(&env.payload))
                        };
                        let _ = tx.send(r);
                    }
                    // A full event queue means the application stopped reading; wait
                    // for it rather than lose frames (the server's own queue then
                    // applies its slow-consumer policy).
                    None => {
                        if events.send(env).await.is_err() {
                            // Nobody reads events any more; keep serving requests.
                        }
                    }
                }
            }
        }
    }
}
