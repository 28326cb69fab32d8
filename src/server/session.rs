//! One WebSocket session: a single task that owns the socket and selects over inbound
//! frames, the outbound queue, pings and shutdown, from the handshake (`handshake`) to
//! the close (`close`).
//!
//! Each inbound text frame goes through, in order: the rate limit, the size limit,
//! parsing at the edge, the duplicate-id window, then the
//! [`Dispatcher`](crate::dispatch::Dispatcher), which does every other check and the
//! routing. Every refusal is an ERROR frame naming the frame's `id` in `re`, and the
//! session stays open; channel traffic with an `id` is acknowledged with a REPLY
//! carrying its offset, without one it is fire-and-forget. Only an applied frame uses
//! up its id, so a refused one may be sent again.
//!
//! Writes are batched: everything queued is `feed` into tungstenite and flushed once
//! the batch is written, so a busy subscriber costs one syscall per batch rather than
//! one per message. Answers (REPLY, ERROR) are fed too, and flushed once per turn of the
//! loop, after every inbound frame already buffered has been handled: a publisher's
//! burst of N frames costs one write for its N acknowledgements. A write that stalls
//! past `write_timeout` ends the session, and so does being flagged a slow consumer,
//! even mid-write.

use super::close::{close_ws, close_ws_within, read_error, Closing, CLOSE_WRITE_TIMEOUT};
use super::dedup::Dedup;
use super::handshake::{handshake, IdentitySlot};
use super::tls::{Conn, Ws};
use super::ServerCtx;
use crate::auth::{Identity, TokenBucket};
use crate::bus::{Delivery, Inbox, KickSignal, Member};
use crate::error::{close, ErrorCode, WireError};
use crate::frame::{error_frame, Envelope, FrameType};
use crate::ops::Caller;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Inbound frames handled in one turn of the session loop before its answers are
/// flushed and the other branches get a chance.
const INBOUND_BATCH: usize = 64;

/// Time a session may spend on inbound frames before it yields to the other sessions
/// of its worker thread (and then goes on with the same batch; its answers still
/// leave together).
///
/// Two bounds, because the costs differ in kind. Large frames (parsing and redacting
/// 60 KB of text, up to about 0.5 ms each) are what starves other sessions: they are
/// bounded in bytes, [`TURN_BYTES`]. Small frames with a wide fan-out (a publish to 100
/// subscribers costs about 30 µs) are bounded in time, and loosely: each yield lets
/// the subscribers' writers run on fewer frames, so more, smaller writes; a 100 µs
/// budget cost the 1 -> 100 fan-out 24-39 % of its throughput, 1 ms nothing
/// measurable (docs/PERFORMANCE.md, "Bounds on the publish path").
const TURN_BUDGET: Duration = Duration::from_millis(1);

/// Bytes of inbound frames a session may handle before it yields (see
/// [`TURN_BUDGET`]): a quarter of the largest frame, so one hostile frame per turn.
const TURN_BYTES: usize = 16 << 10;

/// A live, handshaken session.
struct Session {
    ws: Ws,
    ctx: Arc<ServerCtx>,
    member: Member,
    caller: Caller,
    dedup: Dedup,
    kick: KickSignal,
    /// Who authenticated, with its role and address permissions.
    identity: Identity,
    /// Inbound rate limit, when `limits.frames_per_sec` is set.
    bucket: Option<TokenBucket>,
    /// Frames refused by the rate limit in a row.
    refusals: u32,
    _slot: IdentitySlot,
    last_seen: Instant,
    /// Frames fed by `write` since the last flush; `run` flushes them once per turn.
    unflushed: bool,
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
    // One deadline covers the TLS handshake, the HTTP request (an upgrade or one
    // answer) and the HELLO.
    let deadline = Instant::now() + ctx.config.handshake_timeout();
    let conn = match &ctx.tls {
        Some(tls) => match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
            Ok(Ok(s)) => Conn::Tls(Box::new(s)),
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "tls handshake failed"),
            Err(_) => return,
        },
        None => Conn::Plain(stream),
    };
    let Some(mut ws) = super::http::accept(conn, &ctx, deadline, ws_config(&ctx)).await else {
        return;
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
    super::telemetry::joined(&ctx, &caller);
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
    let Session {
        mut ws,
        member,
        caller,
        ..
    } = session;
    // Detach before the close handshake so that nothing more is queued to us.
    drop(member);
    ctx.ops.disconnected(&id);
    super::telemetry::left(&ctx, &caller.info.role, &id);
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

impl Session {
    async fn run(&mut self, mut inbox: Inbox, mut stop: watch::Receiver<bool>) -> Closing {
        let batch = self.ctx.config.write_batch.max(1);
        let mut buf: Vec<Delivery> = Vec::with_capacity(batch.min(64));
        let mut tick = tokio::time::interval(self.ctx.config.ping_interval());
        tick.tick().await;
        let kick = self.kick.clone();
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
                    let mut turn = self.last_seen;
                    // Handle the frames already read (up to a bound) before the answers
                    // are flushed; profiled: a flush per REPLY was 21% of the server's
                    // CPU in the 1 -> 100 fan-out (PERFORMANCE.md). Past TURN_BUDGET
                    // of work the session yields to the others on its thread, and
                    // goes on with the same batch: the answers still leave together.
                    let (mut next, mut budget, mut bytes) = (Some(msg), INBOUND_BATCH, 0);
                    while let Some(msg) = next.take() {
                        let flow = match msg {
                            None => return Closing::new(close::NORMAL, "peer gone"),
                            Some(Err(e)) => return read_error(e),
                            Some(Ok(m)) => {
                                bytes += m.len();
                                self.on_message(m).await
                            }
                        };
                        if let Err(c) = flow {
                            return c;
                        }
                        budget -= 1;
                        if budget == 0 {
                            break;
                        }
                        if bytes >= TURN_BYTES || turn.elapsed() >= TURN_BUDGET {
                            tokio::task::yield_now().await;
                            turn = Instant::now();
                            bytes = 0;
                        }
                        next = self.ws.next().now_or_never();
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
        }
    }

    async fn on_message(&mut self, m: Message) -> Result<(), Closing> {
        match m {
            Message::Text(t) => match self.over_rate()? {
                Some(err) => self.send_error(id_of(t.as_str()), &err).await,
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

    /// Takes a token from the rate limit bucket. `Some(error)` when the frame must be
    /// refused; a closing when the session kept sending into an empty bucket for
    /// `max_refusals` frames in a row.
    fn over_rate(&mut self) -> Result<Option<WireError>, Closing> {
        let Some(bucket) = &mut self.bucket else {
            return Ok(None);
        };
        let wait = match bucket.take() {
            Ok(()) => {
                self.refusals = 0;
                return Ok(None);
            }
            Err(wait) => wait,
        };
        self.refusals += 1;
        if self.refusals >= self.ctx.limits.max_refusals.max(1) {
            return Err(Closing::new(close::RATE_LIMITED, "rate limit exceeded"));
        }
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        Ok(Some(
            WireError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} frames per second; frame not applied",
                    self.ctx.limits.frames_per_sec
                ),
            )
            .with_details(json!({"retry_after_ms": ms})),
        ))
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closing> {
        super::Counters::inc(&self.ctx.counters.frames_in);
        if text.len() > self.ctx.config.max_frame {
            let err = WireError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes; max_frame is {}",
                    text.len(),
                    self.ctx.config.max_frame
                ),
            )
            .with_details(json!({"max_frame": self.ctx.config.max_frame}));
            return self.send_error(id_of(text), &err).await;
        }
        let env = match Envelope::parse_peer(text) {
            Ok(env) => env,
            Err(err) => return self.send_error(id_of(text), &err).await,
        };
        if let Some(id) = &env.id {
            if self.dedup.contains(id) {
                let err = WireError::new(
                    ErrorCode::DuplicateId,
                    format!("id `{id}` was already used"),
                );
                return self.send_error(env.id.clone(), &err).await;
            }
        }
        let re = env.id.clone();
        // Commands are counted by name and result; the name is copied for them only.
        let command = (env.kind == FrameType::Command).then(|| {
            let name = env.payload.get("name").and_then(Value::as_str);
            name.unwrap_or_default().to_owned()
        });
        let answer = self
            .ctx
            .dispatch
            .dispatch(&self.member, &self.caller, env)
            .await;
        if let Some(name) = command {
            let result = answer.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
            self.ctx.metrics.commands.count(&name, result);
        }
        // Only applied frames use up their id: a refused one may be sent again.
        if let (Ok(_), Some(id)) = (&answer, &re) {
            self.dedup.insert(id);
        }
        match (answer, re) {
            (Ok(Some(result)), Some(re)) => self.reply(&re, &result).await,
            (Ok(_), _) => Ok(()),
            (Err(err), re) => self.send_error(re, &err).await,
        }
    }

    /// Writes every frame in `buf` (feed), then flushes once.
    async fn write_batch(&mut self, buf: &mut Vec<Delivery>) -> Result<(), Closing> {
        super::Counters::add(&self.ctx.counters.frames_out, buf.len());
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
    async fn write(&mut self, m: Message) -> Result<(), Closing> {
        if m.is_text() {
            super::Counters::inc(&self.ctx.counters.frames_out);
        }
        self.unflushed = true;
        bounded_write(self.ws.feed(m), self.ctx.config.write_timeout(), &self.kick).await
    }

    async fn flush(&mut self) -> Result<(), Closing> {
        self.unflushed = false;
        bounded_write(self.ws.flush(), self.ctx.config.write_timeout(), &self.kick).await
    }

    /// Sends a server frame, stamped with `ts`.
    async fn send(&mut self, mut env: Envelope) -> Result<(), Closing> {
        env.ts = Some(crate::frame::now_ts());
        self.write(Message::text(env.to_text())).await
    }

    async fn send_error(&mut self, re: Option<String>, err: &WireError) -> Result<(), Closing> {
        super::Counters::inc(&self.ctx.counters.errors_out);
        let frame = error_frame(re, err);
        self.write(Message::text(frame.to_text())).await
    }

    /// Acknowledges the frame `re` with a REPLY carrying `result`.
    async fn reply(&mut self, re: &str, result: &impl serde::Serialize) -> Result<(), Closing> {
        let text = crate::frame::reply_text(re, result);
        self.write(Message::text(text)).await
    }
}

/// Best effort at the `id` of a frame that failed validation, for `re`.
pub(super) fn id_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    // An id over the limit is not echoed: the refusal would cost as much as the frame.
    match serde_json::from_str::<IdOnly>(text).ok()?.id? {
        Value::String(s) if s.len() <= crate::frame::MAX_ID_BYTES => Some(s),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_recovered_from_frames_that_fail_validation() {
        assert_eq!(id_of(r#"{"id":"7","type":"NOPE"}"#), Some("7".into()));
        assert_eq!(id_of("{nope"), None);
    }
}
