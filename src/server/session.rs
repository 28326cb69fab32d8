//! One WebSocket session: handshake, then a single task that owns the socket and
//! selects over inbound frames, the outbound queue, pings and shutdown.
//!
//! Writes are batched: everything queued is `feed` into tungstenite and flushed once
//! the batch is written, so a busy subscriber costs one syscall per batch rather than
//! one per message. Answers (REPLY, ERROR) are fed too, and flushed once per turn of the
//! loop, after every inbound frame already buffered has been handled: a publisher's
//! burst of N frames costs one write for its N acknowledgements. A write that stalls
//! past `write_timeout` ends the session.

use super::dedup::Dedup;
use super::http::{self, Sniff};
use super::tls::Conn;
use super::ServerCtx;
use crate::auth::{Identity, TokenBucket};
use crate::bus::{Delivery, Inbox, KickSignal, Member, PeerInfo};
use crate::error::{close, ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use crate::ops::Caller;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub(super) type Ws = WebSocketStream<Conn>;

/// Inbound frames handled in one turn of the session loop before its answers are
/// flushed and the other branches get a chance.
const INBOUND_BATCH: usize = 64;

/// Time one turn may spend on inbound frames before the session yields to the other
/// sessions of its worker thread. Ordinary frames cost a few microseconds, so a batch
/// of 64 stays well under it; large or expensive-to-redact frames (60 KB of matches
/// cost up to about 0.5 ms each) would otherwise hold a thread for tens of
/// milliseconds per turn, and every other session's answer would wait behind them
/// (docs/SECURITY.md, "Memory under hostile load", for the figures).
const TURN_BUDGET: Duration = Duration::from_micros(100);

/// Why the loop stopped, and the close frame to send (if the socket still works).
pub(super) struct Closing {
    pub(super) code: u16,
    pub(super) reason: String,
}

impl Closing {
    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        Closing {
            code,
            reason: reason.into(),
        }
    }
}

/// A live, handshaken session.
pub(super) struct Session {
    pub(super) ws: Ws,
    pub(super) ctx: Arc<ServerCtx>,
    pub(super) member: Member,
    pub(super) caller: Caller,
    pub(super) dedup: Dedup,
    kick: KickSignal,
    /// Who authenticated, with its role and address permissions.
    pub(super) identity: Identity,
    /// Inbound rate limit, when `limits.frames_per_sec` is set.
    pub(super) bucket: Option<TokenBucket>,
    /// Frames refused by the rate limit in a row.
    pub(super) refusals: u32,
    _slot: IdentitySlot,
    last_seen: Instant,
    /// Frames fed by `write` since the last flush; `run` flushes them once per turn.
    unflushed: bool,
}

/// A session counted against its identity's `max_sessions_per_identity`; released on
/// drop, whichever way the session ends.
pub(super) struct IdentitySlot {
    ctx: Arc<ServerCtx>,
    key: Option<String>,
}

impl IdentitySlot {
    fn acquire(ctx: &Arc<ServerCtx>, id: &Identity) -> Result<IdentitySlot, WireError> {
        // Sessions without a credential are counted together under a key no subject
        // can take (NUL is not in any configured or signed subject we accept as one).
        let (key, max, limit) = if id.is_authenticated() {
            (
                id.subject.clone(),
                ctx.limits.max_sessions_per_identity,
                "max_sessions_per_identity",
            )
        } else {
            (
                "\u{0}anonymous".to_owned(),
                ctx.limits.max_anonymous_sessions,
                "max_anonymous_sessions",
            )
        };
        if max == 0 {
            return Ok(IdentitySlot {
                ctx: ctx.clone(),
                key: None,
            });
        }
        let mut n = ctx.identities.entry(key.clone()).or_insert(0);
        if *n >= max {
            return Err(WireError::new(
                ErrorCode::Overloaded,
                format!("identity `{}` already holds {max} sessions", id.subject),
            )
            .with_details(json!({limit: max})));
        }
        *n += 1;
        Ok(IdentitySlot {
            ctx: ctx.clone(),
            key: Some(key),
        })
    }
}

impl Drop for IdentitySlot {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.ctx.identities.remove_if_mut(&k, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

/// Serves one accepted TCP connection to the end.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ServerCtx>,
    stop: watch::Receiver<bool>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    // One deadline covers the TLS handshake or HTTP sniff, the upgrade and the HELLO.
    let deadline = Instant::now() + ctx.config.handshake_timeout();
    let conn = match &ctx.tls {
        Some(tls) => match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
            Ok(Ok(s)) => Conn::Tls(Box::new(s)),
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "tls handshake failed"),
            Err(_) => return,
        },
        None => {
            match http::sniff(&stream, deadline).await {
                Sniff::Http(path) => return http::serve(stream, path, &ctx).await,
                Sniff::Gone => return,
                Sniff::WebSocket => {}
            }
            Conn::Plain(stream)
        }
    };
    let config = ws_config(&ctx);
    let upgrade = tokio_tungstenite::accept_async_with_config(conn, Some(config));
    let mut ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
        Err(_) => return,
    };
    if permit.is_none() {
        super::Counters::inc(&ctx.counters.refused);
        let c = Closing::new(close::TRY_AGAIN_LATER, "max_connections reached");
        return close_ws(&mut ws, c).await;
    }
    let (member, inbox, caller, identity, slot) = match handshake(&mut ws, &ctx, deadline).await {
        Ok(x) => x,
        Err(c) => return close_ws(&mut ws, c).await,
    };
    let bucket = (ctx.limits.frames_per_sec > 0.0)
        .then(|| TokenBucket::new(ctx.limits.frames_per_sec, ctx.limits.burst));
    let id = member.id().to_owned();
    tracing::debug!(%peer, session = %id, role = %caller.info.role, "session started");
    let mut session = Session {
        ws,
        ctx: ctx.clone(),
        member,
        caller,
        dedup: Dedup::new(ctx.config.dedup_window),
        kick: inbox.kick_signal(),
        identity,
        bucket,
        refusals: 0,
        _slot: slot,
        last_seen: Instant::now(),
        unflushed: false,
    };
    let closing = session.run(inbox, stop).await;
    // Counted here, once, whichever path (the kick arm or a kicked write) ended it.
    if closing.code == close::SLOW_CONSUMER {
        super::Counters::inc(&ctx.counters.slow_consumers);
    }
    tracing::debug!(session = %id, code = closing.code, reason = %closing.reason, "session ended");
    let Session { mut ws, member, .. } = session;
    // Detach before the close handshake so that nothing more is queued to us.
    drop(member);
    ctx.ops.disconnected(&id);
    // A session cut for being slow has a full socket: its close frame waits behind
    // the frames already written, so give a reader that resumes as long to reach it
    // as any write gets (`write_timeout`); it is detached, so this pins only the
    // socket's own buffers.
    let patience = match closing.code {
        close::SLOW_CONSUMER | close::WRITE_TIMEOUT => ctx.config.write_timeout(),
        _ => CLOSE_WRITE_TIMEOUT,
    };
    close_ws_within(&mut ws, closing, patience).await;
    drop(permit);
}

fn ws_config(ctx: &ServerCtx) -> WebSocketConfig {
    let max = ctx.config.max_frame;
    // Frames up to 16x max_frame are read and refused with an ERROR, keeping the
    // session; larger ones cannot be read at all and close it with 1009.
    // The write buffer must hold the largest frame we send: a history page or a
    // recovery (max_page_bytes of messages plus one message and the envelope).
    let largest_out = 2 * ctx.bus.config().max_page_bytes + 4 * max + (64 << 10);
    WebSocketConfig::default()
        .read_buffer_size(ctx.config.read_buffer)
        .write_buffer_size(ctx.config.write_buffer)
        .max_write_buffer_size(ctx.config.write_buffer + largest_out)
        .max_message_size(Some(max.saturating_mul(16)))
        .max_frame_size(Some(max.saturating_mul(16)))
}

/// HELLO's payload. Unknown fields are ignored, so that later versions may add some.
#[derive(Deserialize)]
struct Hello {
    role: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slots: Option<u32>,
}

/// What a successful handshake yields.
type Handshaken = (Member, Inbox, Caller, Identity, IdentitySlot);

/// Waits for HELLO, authenticates it, attaches the session and sends WELCOME.
async fn handshake(
    ws: &mut Ws,
    ctx: &Arc<ServerCtx>,
    deadline: Instant,
) -> Result<Handshaken, Closing> {
    let text = loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(Closing::new(close::HANDSHAKE_TIMEOUT, "no HELLO in time")),
            Ok(None) | Ok(Some(Err(_))) => return Err(Closing::new(close::NORMAL, "gone")),
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(_))) => {
                return Err(Closing::new(
                    close::HANDSHAKE_REQUIRED,
                    "first frame must be a HELLO text frame",
                ))
            }
        }
    };
    let env = match Envelope::parse_peer(text.as_str()) {
        Ok(e) if e.kind == FrameType::Hello => e,
        Ok(e) => {
            let err = WireError::new(
                ErrorCode::UnexpectedType,
                format!("first frame must be HELLO, got {}", e.kind.as_str()),
            );
            return Err(refuse(ws, e.id, err).await);
        }
        Err(err) => return Err(refuse(ws, None, err).await),
    };
    let hello: Hello = match crate::frame::parse_args(env.payload.clone()) {
        Ok(h) => h,
        Err(err) => return Err(refuse(ws, env.id, err).await),
    };
    let identity = match ctx.auth.authenticate(&hello.role, hello.auth.as_deref()) {
        Ok(id) => id,
        Err(err) => {
            let code = match err.code {
                ErrorCode::Unauthorized | ErrorCode::Forbidden => close::UNAUTHORIZED,
                _ => close::HANDSHAKE_REQUIRED,
            };
            tracing::info!(code = %err.code, reason = %err.message, "handshake refused");
            return Err(refuse_with(ws, env.id, err, code).await);
        }
    };
    let slot = match IdentitySlot::acquire(ctx, &identity) {
        Ok(s) => s,
        Err(err) => return Err(refuse_with(ws, env.id, err, close::TOO_MANY_SESSIONS).await),
    };
    if let Some(name) = &hello.name {
        if let Err(err) = ctx.dispatch.admit_name(name) {
            return Err(refuse(ws, env.id, err).await);
        }
    }
    let info = PeerInfo {
        role: identity.role.as_str().to_owned(),
        capabilities: hello.capabilities,
        name: hello.name,
        slots: hello.slots,
    };
    let (member, inbox) = ctx.bus.connect(info.clone());
    let caller = Caller {
        session: member.id().to_owned(),
        identity: identity.clone(),
        info,
    };
    let c = &ctx.config;
    let b = ctx.bus.config();
    let mut welcome = Envelope::new(
        FrameType::Welcome,
        json!({
            "re": env.id,
            "session": member.id(),
            "server": ctx.info.server,
            "protocol": ctx.info.protocol,
            "role": caller.info.role,
            "identity": {"subject": identity.subject, "method": identity.method, "expires_at": identity.expires_at},
            "limits": {
                "frames_per_sec": ctx.limits.frames_per_sec,
                "burst": ctx.limits.burst,
                "max_frame": c.max_frame,
                "max_subscriptions": b.max_subscriptions,
                "outbound_queue": b.outbound_queue,
                "slow_consumer": format!("{:?}", b.slow_consumer).to_lowercase(),
                "history_size": b.history_size,
                "history_ttl_secs": b.history_ttl_secs,
                "max_history_page": b.max_history_page,
                "ping_interval_ms": c.ping_interval_ms,
                "idle_timeout_ms": c.idle_timeout_ms,
                "dedup_window": c.dedup_window,
            },
        }),
    );
    welcome.ts = Some(crate::frame::now_ts());
    if ws.send(Message::text(welcome.to_text())).await.is_err() {
        return Err(Closing::new(close::NORMAL, "gone"));
    }
    Ok((member, inbox, caller, identity, slot))
}

/// Tells the peer why its handshake failed; the caller closes with 4002.
async fn refuse(ws: &mut Ws, re: Option<String>, err: WireError) -> Closing {
    refuse_with(ws, re, err, close::HANDSHAKE_REQUIRED).await
}

/// Tells the peer why its handshake failed; the caller closes with `code`.
async fn refuse_with(ws: &mut Ws, re: Option<String>, err: WireError, code: u16) -> Closing {
    let frame = error_frame(re, &err);
    let _ = ws.send(Message::text(frame.to_text())).await;
    // The ERROR frame carries the full message; the close reason is a fixed phrase so
    // that it never echoes the peer's text and always fits in a close frame.
    let reason = match code {
        close::UNAUTHORIZED => "unauthorized",
        close::TOO_MANY_SESSIONS => "too many sessions",
        _ => "handshake refused",
    };
    Closing::new(code, reason)
}

/// The longest reason a WebSocket close frame may carry (125 - 2 bytes of code).
const MAX_CLOSE_REASON: usize = 123;

/// `reason` cut to at most [`MAX_CLOSE_REASON`] bytes at a char boundary.
fn clip_reason(mut reason: String) -> String {
    if reason.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// An ERROR frame answering `re`.
pub(super) fn error_frame(re: Option<String>, err: &WireError) -> Envelope {
    let mut payload = json!({"re": re, "code": err.code, "message": err.message});
    if let Some(d) = &err.details {
        payload["details"] = d.clone();
    }
    let mut env = Envelope::new(FrameType::Error, payload);
    env.ts = Some(crate::frame::now_ts());
    env
}

/// How long a close frame may take to write when the socket is not known to be full.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the peer's answering close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

async fn close_ws(ws: &mut Ws, c: Closing) {
    close_ws_within(ws, c, CLOSE_WRITE_TIMEOUT).await;
}

/// Sends the close frame (the peer has `patience` to read its way to it), then waits
/// a little for the peer's answering close.
async fn close_ws_within(ws: &mut Ws, c: Closing, patience: Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(c.code),
        // Last guard: an over-long reason would make tungstenite refuse the close.
        reason: clip_reason(c.reason).into(),
    };
    match tokio::time::timeout(patience, ws.close(Some(frame))).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    // Wait for the peer's close (reading and discarding), so that it is a clean close:
    // dropping the socket while the peer still sends would reset the connection and
    // discard what the peer had not read yet, close frame included.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

impl Session {
    async fn run(&mut self, mut inbox: Inbox, mut stop: watch::Receiver<bool>) -> Closing {
        let batch = self.ctx.config.write_batch.max(1);
        let mut buf: Vec<Delivery> = Vec::with_capacity(batch.min(64));
        let mut tick = tokio::time::interval(self.ctx.config.ping_interval());
        tick.tick().await;
        let kick = self.kick.clone();
        let mut yield_after = false;
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    // Flush what is already queued, then say goodbye.
                    while let Some(d) = inbox.try_recv() {
                        buf.push(d);
                    }
                    let _ = self.write_batch(&mut buf).await;
                    return Closing::new(close::GOING_AWAY, "server shutting down");
                }
                _ = kick.kicked() => {
                    return Closing::new(close::SLOW_CONSUMER, "outbound queue overflow");
                }
                n = inbox.recv_many(&mut buf, batch) => {
                    if n == 0 {
                        return Closing::new(close::NORMAL, "detached");
                    }
                    if let Err(c) = self.write_batch(&mut buf).await {
                        return c;
                    }
                    if let Some(lag) = inbox.take_lag() {
                        let notice = json!({"event": "lagged", "dropped": lag.dropped, "first_missed": lag.first_missed});
                        if let Err(c) = self.send(Envelope::new(FrameType::System, notice)).await {
                            return c;
                        }
                    }
                }
                msg = self.ws.next() => {
                    self.last_seen = Instant::now();
                    let turn = self.last_seen;
                    // Handle the frames already read (up to a bound in count and in
                    // time, for fairness) before the answers are flushed; profiled: a
                    // flush per REPLY was 21% of the server's CPU in the 1 -> 100
                    // fan-out (PERFORMANCE.md).
                    let (mut next, mut budget) = (Some(msg), INBOUND_BATCH);
                    while let Some(msg) = next.take() {
                        let flow = match msg {
                            None => return Closing::new(close::NORMAL, "peer gone"),
                            Some(Err(e)) => return read_error(e),
                            Some(Ok(m)) => self.on_message(m).await,
                        };
                        if let Err(c) = flow {
                            return c;
                        }
                        budget -= 1;
                        if turn.elapsed() >= TURN_BUDGET {
                            yield_after = true;
                        } else if budget > 0 {
                            next = self.ws.next().now_or_never();
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.last_seen.elapsed() > self.ctx.config.idle_timeout() {
                        return Closing::new(close::IDLE_TIMEOUT, "idle");
                    }
                    if self.identity.expires_at.is_some_and(|exp| exp <= unix_now()) {
                        return Closing::new(close::UNAUTHORIZED, "credential expired");
                    }
                    if let Err(c) = self.write(Message::Ping(Default::default())).await {
                        return c;
                    }
                }
            }
            if self.unflushed {
                if let Err(c) = self.flush().await {
                    return c;
                }
            }
            if std::mem::take(&mut yield_after) {
                // To the back of the run queue: the sessions waiting behind this
                // expensive turn get theirs before this one takes another.
                tokio::task::yield_now().await;
            }
        }
    }

    async fn on_message(&mut self, m: Message) -> Result<(), Closing> {
        match m {
            Message::Text(t) => match self.over_rate()? {
                Some(err) => {
                    self.send_error(super::handler::id_of(t.as_str()), &err)
                        .await
                }
                None => self.on_text(t.as_str()).await,
            },
            Message::Binary(_) => {
                if let Some(err) = self.over_rate()? {
                    return self.send_error(None, &err).await;
                }
                let err =
                    WireError::new(ErrorCode::BinaryNotSupported, "frames are UTF-8 JSON text");
                self.send_error(None, &err).await
            }
            Message::Close(_) => Err(Closing::new(close::NORMAL, "peer closed")),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// Writes every frame in `buf` (feed), then flushes once.
    async fn write_batch(&mut self, buf: &mut Vec<Delivery>) -> Result<(), Closing> {
        let ws = &mut self.ws;
        let io = async {
            for d in buf.drain(..) {
                ws.feed(Message::Text(d.utf8())).await?;
            }
            ws.flush().await
        };
        self.unflushed = false;
        bounded_write(io, self.ctx.config.write_timeout(), &self.kick).await
    }

    /// Queues `m` on the socket without flushing; `run` flushes at the end of its turn.
    pub(super) async fn write(&mut self, m: Message) -> Result<(), Closing> {
        self.unflushed = true;
        bounded_write(self.ws.feed(m), self.ctx.config.write_timeout(), &self.kick).await
    }

    async fn flush(&mut self) -> Result<(), Closing> {
        self.unflushed = false;
        bounded_write(self.ws.flush(), self.ctx.config.write_timeout(), &self.kick).await
    }

    /// Sends a server frame, stamped with `ts`.
    pub(super) async fn send(&mut self, mut env: Envelope) -> Result<(), Closing> {
        env.ts = Some(crate::frame::now_ts());
        self.write(Message::text(env.to_text())).await
    }

    pub(super) async fn send_error(
        &mut self,
        re: Option<String>,
        err: &WireError,
    ) -> Result<(), Closing> {
        super::Counters::inc(&self.ctx.counters.errors_out);
        let frame = error_frame(re, err);
        self.write(Message::text(frame.to_text())).await
    }

    /// Acknowledges the frame `re` with a REPLY carrying `result`.
    pub(super) async fn reply(
        &mut self,
        re: &str,
        result: &impl serde::Serialize,
    ) -> Result<(), Closing> {
        let text = crate::frame::reply_text(re, result);
        self.write(Message::text(text)).await
    }
}

/// A socket write that gives up after `limit`, or as soon as the session is flagged
/// as a slow consumer (its socket is likely full, which is why the write blocks).
async fn bounded_write(
    io: impl std::future::Future<Output = Result<(), tokio_tungstenite::tungstenite::Error>>,
    limit: Duration,
    kick: &KickSignal,
) -> Result<(), Closing> {
    tokio::select! {
        r = tokio::time::timeout(limit, io) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Closing::new(close::NORMAL, "write failed")),
            Err(_) => Err(Closing::new(close::WRITE_TIMEOUT, "write timed out")),
        },
        _ = kick.kicked() => Err(Closing::new(close::SLOW_CONSUMER, "outbound queue overflow")),
    }
}

/// Seconds since the epoch, for credential expiry.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_error(e: tokio_tungstenite::tungstenite::Error) -> Closing {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    match e {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            Closing::new(close::TOO_BIG, "frame exceeds the hard read limit")
        }
        Error::Utf8(_) => Closing::new(close::INVALID_PAYLOAD, "invalid UTF-8"),
        Error::Protocol(_) => Closing::new(close::PROTOCOL_ERROR, "protocol error"),
        _ => Closing::new(close::NORMAL, "read failed"),
    }
}
