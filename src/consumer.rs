//! The consumer SDK: write a task consumer in a few lines.
//!
//! [`Consumer::connect`] handshakes with role `consumer`, the task kinds as
//! capabilities and a number of slots, and registers with the queue
//! (`op.queue.consume`). A background task then owns the connection: it turns each
//! leased TASK frame into a [`Lease`], sends a HEARTBEAT every third of the lease
//! length (renewing every lease this consumer holds; the shortest lease held sets the
//! pace, so a task with its own short `timeout` is renewed in time), and routes cancellations, lease
//! expiries and approval decisions to the lease they concern. A [`Lease`] streams
//! progress, asks for approvals and ends with a result. Control requests from
//! clients (`op.queue.control`: model, memory, session, chat) arrive as
//! [`Control`]s ([`Consumer::next_control`]), each to be acknowledged or refused.
//!
//! Delivery is at least once: a lease that expires, or a broker that restarts, gives
//! the task to a consumer again as a new attempt; results of an older attempt are
//! refused (`stale_lease`).
//!
//! ```no_run
//! # async fn doc() -> Result<(), hivebus::client::ClientError> {
//! use hivebus::consumer::Consumer;
//! let mut c = Consumer::connect("ws://127.0.0.1:50000/", &["verify_bip"], 4).await?;
//! while let Some(lease) = c.next_lease().await {
//!     lease.event("build", "cargo test", Some(50)).await?;
//!     lease.complete("all green", None).await?;
//! }
//! # Ok(()) }
//! ```

use crate::client::{Client, ClientError, Hello};
use crate::frame::{Envelope, FrameType};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a lease ended without the consumer finishing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLoss {
    /// A client cancelled the task.
    Cancelled,
    /// The lease expired; the task went to another attempt.
    Expired,
    /// The connection to the broker ended (the broker stopped, or the network):
    /// the queue retries the attempt once it notices.
    Disconnected,
}

/// One leased attempt of a task.
#[derive(Debug)]
pub struct Lease {
    /// Task id.
    pub task: String,
    /// Lease id; every frame about this attempt carries it.
    pub lease: String,
    /// Attempt number (1 for the first).
    pub attempt: u32,
    /// Task kind.
    pub kind: String,
    /// The task's arguments.
    pub args: Value,
    /// The task's trace id.
    pub trace_id: String,
    /// The full TASK payload (repo, branch, priority, bipId, ...).
    pub payload: Value,
    room: String,
    channel: String,
    out: mpsc::Sender<Envelope>,
    lost: watch::Receiver<Option<LeaseLoss>>,
    decisions: tokio::sync::Mutex<mpsc::Receiver<Value>>,
    /// Set once a RESULT or ERROR was sent; a lease dropped before that is abandoned.
    done: bool,
}

impl Lease {
    fn frame(&self, kind: FrameType, mut payload: Value) -> Envelope {
        if let Some(o) = payload.as_object_mut() {
            o.insert("task".into(), json!(self.task));
            o.insert("lease".into(), json!(self.lease));
        }
        let mut env = Envelope::new(kind, payload);
        env.trace_id = Some(self.trace_id.clone());
        env.room = Some(self.room.clone());
        env.channel = Some(self.channel.clone());
        env
    }

    async fn send(&self, env: Envelope) -> Result<(), ClientError> {
        self.out.send(env).await.map_err(|_| ClientError::Closed)
    }

    /// Streams progress `{stage, message, pct?}`; also renews the lease.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn event(
        &self,
        stage: &str,
        message: &str,
        pct: Option<u8>,
    ) -> Result<(), ClientError> {
        let mut p = json!({"stage": stage, "message": message});
        if let Some(pct) = pct {
            p["pct"] = json!(pct.min(100));
        }
        self.send(self.frame(FrameType::Event, p)).await
    }

    /// Asks for an approval and waits for the decision payload
    /// (`{decision, scope?, by}`), or `None` if the lease is lost first.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn approval(
        &self,
        action: &str,
        reason: &str,
        suggested: &str,
    ) -> Result<Option<Value>, ClientError> {
        let p = json!({"action": action, "reason": reason, "suggestedCommand": suggested});
        self.ask(p).await
    }

    /// Streams an EVENT with any payload (`{"line": "...", "stream": "stdout"}`, a
    /// child's own progress object); `task` and `lease` are added. Renews the lease.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn event_payload(&self, payload: Value) -> Result<(), ClientError> {
        self.send(self.frame(FrameType::Event, payload)).await
    }

    /// Asks for an approval with any request payload (`{"tool": "shell", "command":
    /// "..."}`, see docs/APPROVALS.md) and waits for the decision payload, or `None`
    /// if the lease is lost first.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn ask(&self, request: Value) -> Result<Option<Value>, ClientError> {
        self.send(self.frame(FrameType::Approval, request)).await?;
        let mut lost = self.lost.clone();
        let mut rx = self.decisions.lock().await;
        tokio::select! {
            d = rx.recv() => Ok(d),
            // The watch guard is dropped inside, so that this future stays `Send`.
            () = async { let _ = lost.wait_for(Option::is_some).await; } => Ok(None),
        }
    }

    /// The lease length the queue gave this attempt (`leaseMs`), if it said.
    pub fn lease_ms(&self) -> Option<u64> {
        self.payload["leaseMs"]
            .as_u64()
            .or_else(|| self.payload["lease_ms"].as_u64())
    }

    /// Finishes with RESULT `ok`.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn complete(
        self,
        summary: &str,
        artifacts: Option<Value>,
    ) -> Result<(), ClientError> {
        let mut p = json!({"status": "ok", "summary": summary});
        if let Some(a) = artifacts {
            p["artifacts"] = a;
        }
        self.end(FrameType::Result, p).await
    }

    /// Sends the frame that ends this attempt.
    async fn end(mut self, kind: FrameType, payload: Value) -> Result<(), ClientError> {
        self.done = true;
        let env = self.frame(kind, payload);
        self.send(env).await
    }

    /// Finishes with RESULT `fail`: the queue retries, parks or dead-letters the task.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn fail(self, summary: &str) -> Result<(), ClientError> {
        // Through `end`, so that the lease counts as finished: a `Drop` after the
        // RESULT must not send ERROR `abandoned` too.
        self.end(
            FrameType::Result,
            json!({"status": "fail", "summary": summary}),
        )
        .await
    }

    /// Finishes with an ERROR `{code, message, details}` (the attempt failed).
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn error(self, code: &str, message: &str, details: Value) -> Result<(), ClientError> {
        let p = json!({"code": code, "message": message, "details": details});
        self.end(FrameType::Error, p).await
    }

    /// Why the lease was lost, if it was (cancelled or expired).
    pub fn lost(&self) -> Option<LeaseLoss> {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost; use in a `select!` beside the work.
    pub async fn until_lost(&self) -> LeaseLoss {
        let mut rx = self.lost.clone();
        let seen = rx.wait_for(Option::is_some).await.map(|v| *v);
        match seen {
            Ok(v) => v.unwrap_or(LeaseLoss::Cancelled),
            // The driver is gone: the connection died, so the lease is lost too.
            Err(_) => LeaseLoss::Disconnected,
        }
    }
}

impl Drop for Lease {
    /// A lease dropped without a result is abandoned: the queue is told at once (an
    /// ERROR `abandoned`), since the automatic heartbeat would otherwise keep renewing
    /// it forever.
    fn drop(&mut self) {
        if !self.done && self.lost().is_none() {
            let env = self.frame(
                FrameType::Error,
                json!({"code": "abandoned", "message": "the consumer dropped the lease without a result"}),
            );
            let _ = self.out.try_send(env);
        }
    }
}

/// A control request a client sent to this consumer (`op.queue.control`, BIP-43):
/// switch the model, clear the agent's memory, start a new session, or relay a chat
/// message. The sender waits until it is answered with [`Control::ack`] or
/// [`Control::refuse`] (unanswered, it times out); the broker has already checked
/// who may send it and validated `value`.
#[derive(Debug)]
pub struct Control {
    /// The request's id, echoed in the answer.
    pub id: String,
    /// `model`, `clear_memory`, `new_session` or `chat`.
    pub action: String,
    /// The model name or the chat text; `Null` for the others.
    pub value: Value,
    /// The subject of the identity that sent it.
    pub by: String,
    out: mpsc::Sender<Envelope>,
}

impl Control {
    async fn answer(self, args: Value) -> Result<(), ClientError> {
        let mut env = Envelope::new(
            FrameType::Command,
            json!({"name": "op.queue.control.ack", "args": args}),
        );
        // The reply reaches the driver as an event, which it ignores.
        env.id = Some(format!("ctl-ack-{}", self.id));
        self.out.send(env).await.map_err(|_| ClientError::Closed)
    }

    /// Applied: the sender's command succeeds with `result`.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn ack(self, result: Value) -> Result<(), ClientError> {
        let id = self.id.clone();
        self.answer(json!({"control": id, "ok": true, "result": result}))
            .await
    }

    /// Not applied: the sender's command fails with `code` (`conflict`: the agent's
    /// state does not allow it now) and `message`.
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn refuse(self, code: &str, message: &str) -> Result<(), ClientError> {
        let id = self.id.clone();
        self.answer(json!({"control": id, "ok": false, "code": code, "message": message}))
            .await
    }
}

/// A connected consumer. Dropping it closes the connection; the queue then retries
/// the attempts it held.
pub struct Consumer {
    leases: mpsc::Receiver<Lease>,
    /// `None` once taken by [`Consumer::take_controls`].
    controls: Option<mpsc::Receiver<Control>>,
    /// Frames to the driver's connection (the leases' channel), for [`Consumer::drain`].
    out: mpsc::Sender<Envelope>,
    /// Tells the driver to flush and close, for [`Consumer::close`].
    closing: Option<oneshot::Sender<()>>,
    session: String,
    registration: Value,
    driver: tokio::task::JoinHandle<()>,
}

impl Consumer {
    /// Connects to `url`, declares `kinds` and `slots`, and registers with the queue.
    ///
    /// # Errors
    /// [`ClientError`] when connecting or registering fails.
    pub async fn connect(url: &str, kinds: &[&str], slots: u32) -> Result<Consumer, ClientError> {
        let mut hello = Hello::role("consumer");
        hello.capabilities = kinds.iter().map(|k| (*k).to_owned()).collect();
        hello.slots = Some(slots);
        Consumer::connect_with(url, hello).await
    }

    /// Connects with a HELLO of the caller's making (a credential in `auth`, a
    /// `name`); its `capabilities` are the kinds and `slots` the slots (1 if unset).
    ///
    /// # Errors
    /// [`ClientError`] when connecting or registering fails.
    pub async fn connect_with(url: &str, hello: Hello) -> Result<Consumer, ClientError> {
        let slots = hello.slots.unwrap_or(1);
        let client = Client::connect(url, hello).await?;
        let registration = client.command("op.queue.consume", json!({})).await?;
        let lease_ms = registration["leaseMs"]
            .as_u64()
            .or_else(|| registration["lease_ms"].as_u64())
            .unwrap_or(30_000);
        let period = third(lease_ms);
        let (tx, leases) = mpsc::channel(slots.max(1) as usize * 2 + 16);
        let session = client.session().to_owned();
        // Frames from leases; bounded so that a runaway consumer is slowed, not buffered.
        let (out, out_rx) = mpsc::channel::<Envelope>(1024);
        let (closing, closing_rx) = oneshot::channel();
        let (ctl_tx, controls) = mpsc::channel(CONTROL_QUEUE);
        let to = Routed {
            leases: tx,
            controls: ctl_tx,
        };
        let driver = tokio::spawn(drive(client, to, (out.clone(), out_rx), closing_rx, period));
        Ok(Consumer {
            leases,
            controls: Some(controls),
            out,
            closing: Some(closing),
            session,
            registration,
            driver,
        })
    }

    /// The next leased attempt; `None` once the connection is closed.
    pub async fn next_lease(&mut self) -> Option<Lease> {
        self.leases.recv().await
    }

    /// The next control request (`op.queue.control`); `None` once the connection is
    /// closed. Requests not read pile up to [`CONTROL_QUEUE`]; later ones are
    /// refused `conflict` by the driver.
    pub async fn next_control(&mut self) -> Option<Control> {
        match &mut self.controls {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }

    /// The control requests as a channel of their own, to read beside
    /// [`Consumer::next_lease`] in one `select!`; [`Consumer::next_control`] then
    /// returns `None`.
    pub fn take_controls(&mut self) -> Option<mpsc::Receiver<Control>> {
        self.controls.take()
    }

    /// Stops taking new leases (re-registers with no kinds) while the connection
    /// stays up for the leases already held, which finish as usual: the first step
    /// of a graceful stop. Leases the queue sent before it saw this still arrive
    /// through [`Consumer::next_lease`].
    ///
    /// # Errors
    /// `Closed` when the connection is gone.
    pub async fn drain(&self) -> Result<(), ClientError> {
        let mut env = Envelope::new(
            FrameType::Command,
            json!({"name": "op.queue.consume", "args": {"kinds": []}}),
        );
        // The reply reaches the driver as an event, which it ignores.
        env.id = Some(format!("drain-{}", self.session));
        self.out.send(env).await.map_err(|_| ClientError::Closed)
    }

    /// Closes the connection after the broker has read every frame the leases sent
    /// (results above all: a result still in this process's queue when it exits is
    /// lost, and the attempt retried). Waits for a `ping` round trip, at most
    /// [`CLOSE_WAIT`]. Leases still held are then abandoned, and the queue retries
    /// them.
    pub async fn close(mut self) {
        if let Some(tx) = self.closing.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.driver).await;
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// What `op.queue.consume` answered (kinds, slots, leaseMs).
    pub fn registration(&self) -> &Value {
        &self.registration
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Routes {
    lost: watch::Sender<Option<LeaseLoss>>,
    decisions: mpsc::Sender<Value>,
    /// A third of this lease's own `leaseMs` (a task's `timeout` makes it shorter
    /// than the kind's default the registration named).
    beat: Duration,
}

/// The heartbeat period for the leases held: a third of the shortest lease, never
/// longer than `default` (a third of the registration's `leaseMs`).
fn beat_period(routes: &HashMap<String, Routes>, default: Duration) -> Duration {
    routes
        .values()
        .filter(|r| !r.lost.is_closed())
        .map(|r| r.beat)
        .fold(default, Duration::min)
}

/// A third of `lease_ms`, at least 50 ms.
fn third(lease_ms: u64) -> Duration {
    Duration::from_millis((lease_ms / 3).max(50))
}

/// Control requests waiting to be read by [`Consumer::next_control`].
pub const CONTROL_QUEUE: usize = 16;

/// Where the driver hands what arrives.
struct Routed {
    leases: mpsc::Sender<Lease>,
    controls: mpsc::Sender<Control>,
}

/// Longest wait of [`Consumer::close`] for the broker to confirm it read everything.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

async fn drive(
    mut client: Client,
    to: Routed,
    (out_tx, mut out_rx): (mpsc::Sender<Envelope>, mpsc::Receiver<Envelope>),
    mut closing: oneshot::Receiver<()>,
    period: Duration,
) {
    let mut routes: HashMap<String, Routes> = HashMap::new();
    let mut current = period;
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Follow the shortest lease held: a lease shorter than the kind's default
        // would otherwise expire between two heartbeats.
        let want = beat_period(&routes, period);
        if want != current {
            current = want;
            beat = tokio::time::interval_at(tokio::time::Instant::now() + want, want);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        tokio::select! {
            ev = client.next_event() => {
                let Some(env) = ev else { return };
                let task = env.payload.get("task").and_then(Value::as_str).unwrap_or_default().to_owned();
                match env.kind {
                    FrameType::Task if env.payload.get("lease").is_some() => {
                        let (lost_tx, lost) = watch::channel(None);
                        let (dec_tx, dec_rx) = mpsc::channel(4);
                        let own = env.payload["leaseMs"]
                            .as_u64()
                            .or_else(|| env.payload["lease_ms"].as_u64())
                            .map_or(period, third);
                        routes.insert(task.clone(), Routes { lost: lost_tx, decisions: dec_tx, beat: own });
                        routes.retain(|_, r| !r.lost.is_closed());
                        // The envelope is consumed here: its payload moves into the lease
                        // (no clone of the payload tree per lease).
                        let p = &env.payload;
                        let lease_id = p["lease"].as_str().unwrap_or_default().to_owned();
                        let attempt = p["attempt"].as_u64().unwrap_or(1) as u32;
                        let kind = p["kind"].as_str().unwrap_or_default().to_owned();
                        let args = p["args"].clone();
                        let lease = Lease {
                            task,
                            lease: lease_id,
                            attempt,
                            kind,
                            args,
                            trace_id: env.trace_id.unwrap_or_default(),
                            room: env.room.unwrap_or_default(),
                            channel: env.channel.unwrap_or_default(),
                            payload: env.payload,
                            out: out_tx.clone(),
                            lost,
                            decisions: tokio::sync::Mutex::new(dec_rx),
                            done: false,
                        };
                        if to.leases.send(lease).await.is_err() {
                            return;
                        }
                    }
                    FrameType::System if env.payload["event"] == "control" => {
                        let p = &env.payload;
                        let c = Control {
                            id: p["control"].as_str().unwrap_or_default().to_owned(),
                            action: p["action"].as_str().unwrap_or_default().to_owned(),
                            value: p["value"].clone(),
                            by: p["by"].as_str().unwrap_or_default().to_owned(),
                            out: out_tx.clone(),
                        };
                        if let Err(mpsc::error::TrySendError::Full(c)) = to.controls.try_send(c) {
                            // Answered at once rather than buffered without bound.
                            tokio::spawn(async move {
                                let _ = c.refuse("conflict", "the consumer has too many control requests waiting").await;
                            });
                        }
                    }
                    FrameType::System => {
                        let loss = match env.payload.get("event").and_then(Value::as_str) {
                            Some("cancel") => Some(LeaseLoss::Cancelled),
                            Some("lease_expired") => Some(LeaseLoss::Expired),
                            _ => None,
                        };
                        if let (Some(loss), Some(r)) = (loss, routes.remove(&task)) {
                            let _ = r.lost.send(Some(loss));
                        }
                    }
                    FrameType::Approval => {
                        if let Some(r) = routes.get(&task) {
                            let _ = r.decisions.try_send(env.payload.clone());
                        }
                    }
                    FrameType::Error => {
                        tracing::debug!(payload = %env.payload, "queue refused a consumer frame");
                    }
                    _ => {}
                }
            }
            Some(env) = out_rx.recv() => {
                if env.kind == FrameType::Result || env.kind == FrameType::Error {
                    if let Some(t) = env.payload.get("task").and_then(Value::as_str) {
                        routes.remove(t);
                    }
                }
                if client.send(env).await.is_err() {
                    return;
                }
            }
            _ = beat.tick() => {
                if client.send(Envelope::new(FrameType::Heartbeat, Value::Null)).await.is_err() {
                    return;
                }
            }
            // `Consumer::close` (or the consumer dropped: its sender is gone).
            _ = &mut closing => {
                while let Ok(env) = out_rx.try_recv() {
                    if client.send(env).await.is_err() {
                        return;
                    }
                }
                // The session reads its frames in order, so once the ping is answered
                // the queue has applied every result sent before it.
                let _ = tokio::time::timeout(CLOSE_WAIT, client.command("ping", json!({}))).await;
                client.close().await;
                return;
            }
        }
    }
}
