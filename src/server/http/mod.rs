//! HTTP on the broker's listener, through hyper: the WebSocket upgrade, `/healthz`,
//! `/readyz`, `/version`, `/metrics`, and static assets at `/` (see `assets`).
//!
//! [`accept`] serves one connection's HTTP/1.1 until it is upgraded to a WebSocket or
//! has had its one answer. Invariants:
//! - **One request per connection** unless upgraded (no keep-alive), and the whole
//!   HTTP phase, upgrade included, within the connection's handshake deadline: an idle
//!   or slow client holds a socket no longer than before hyper.
//! - **The upgrade checks are tungstenite's** (`GET`, HTTP/1.1, `Connection: upgrade`,
//!   `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, a well-formed
//!   `Sec-WebSocket-Key`), on any path, as before: a refused upgrade is a 400 (426 for
//!   another version) and the connection closes. No subprotocol is negotiated and no
//!   `Origin` is checked (`docs/PROTOCOL.md` section 1).
//! - **The socket is handed back whole**: once upgraded, the session owns the same
//!   [`Conn`] it would have had without hyper (hyper's wrapper is taken off, and bytes
//!   the peer sent early are given to tungstenite), so the frame path pays nothing
//!   for it.
//! - Request heads are bounded by hyper (`HEAD_LIMIT` bytes, 100 headers).

mod assets;

use super::tls::{Conn, Ws};
use super::ServerCtx;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// Largest request head hyper buffers (its minimum is 8 KiB).
const HEAD_LIMIT: usize = 16 << 10;

/// How long `/readyz` waits for the store to answer.
const READY_PROBE: Duration = Duration::from_secs(1);

type Body = Full<Bytes>;

/// Serves HTTP on `conn` until the deadline; returns the WebSocket when the request
/// was an upgrade, `None` when it was answered (or failed, or ran out of time).
pub(super) async fn accept(
    conn: Conn,
    ctx: &Arc<ServerCtx>,
    deadline: Instant,
    config: WebSocketConfig,
) -> Option<Ws> {
    let upgrade: Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>> = Arc::default();
    let slot = upgrade.clone();
    let service = hyper::service::service_fn(move |req| {
        let (ctx, slot) = (ctx.clone(), slot.clone());
        async move { Ok::<_, std::convert::Infallible>(route(req, &ctx, &slot).await) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(HEAD_LIMIT)
        .serve_connection(TokioIo::new(conn), service)
        .with_upgrades();
    match tokio::time::timeout_at(deadline, http).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "http connection failed");
            return None;
        }
        Err(_) => return None,
    }
    let pending = upgrade.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    let upgraded = match tokio::time::timeout_at(deadline, pending).await {
        Ok(Ok(u)) => u,
        _ => return None,
    };
    // Always our own type: hyper hands back the io it was given.
    let parts = upgraded.downcast::<TokioIo<Conn>>().ok()?;
    let io = parts.io.into_inner();
    let early = parts.read_buf.to_vec();
    Some(WebSocketStream::from_partially_read(io, early, Role::Server, Some(config)).await)
}

/// One request's answer.
async fn route(
    mut req: Request<Incoming>,
    ctx: &ServerCtx,
    upgrade: &Mutex<Option<hyper::upgrade::OnUpgrade>>,
) -> Response<Body> {
    if wants_websocket(&req) {
        return match accept_key(&req) {
            Ok(accept) => {
                *upgrade.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(hyper::upgrade::on(&mut req));
                switching(&accept)
            }
            Err((status, why)) => {
                let mut r = text(status, why);
                if status == StatusCode::UPGRADE_REQUIRED {
                    r.headers_mut()
                        .insert("sec-websocket-version", HeaderValue::from_static("13"));
                }
                r
            }
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match ready(ctx).await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/version" => {
            let body = serde_json::json!({
                "server": ctx.info.server,
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": ctx.info.protocol,
                "engine": ctx.bus.engine(),
            });
            respond(StatusCode::OK, "application/json", body.to_string())
        }
        "/metrics" => match scraper(&req, ctx) {
            Ok(()) => respond(
                StatusCode::OK,
                super::metrics::CONTENT_TYPE,
                ctx.metrics.render(),
            ),
            Err(why) => {
                let mut r = text(StatusCode::UNAUTHORIZED, why);
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
        },
        path => match assets::find(path) {
            Some(a) => respond(StatusCode::OK, a.content_type, Bytes::from_static(a.body)),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// Whether the request may read `/metrics`: always in local mode; in remote mode (or
/// with `[auth] required`) only with an admin credential in `Authorization: Bearer`,
/// since the metrics show the whole queue (task kinds, consumers) to whoever reads
/// them.
fn scraper(req: &Request<Incoming>, ctx: &ServerCtx) -> Result<(), &'static str> {
    if !ctx.metrics_need_auth {
        return Ok(());
    }
    let cred = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("an admin credential is required: Authorization: Bearer <token>\n")?;
    match ctx.auth.authenticate("admin", Some(cred)) {
        Ok(id) if id.is_authenticated() => Ok(()),
        _ => Err("the credential is not an admin's\n"),
    }
}

/// Readiness: not shutting down, and the queue's store (when there is a queue)
/// answers and takes writes. The bus engine is in memory and has no failure mode of
/// its own to report.
async fn ready(ctx: &ServerCtx) -> Result<(), String> {
    if ctx.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        return Err("stopping".to_owned());
    }
    match &ctx.queue {
        Some(q) => q.ready(READY_PROBE).await,
        None => Ok(()),
    }
}

/// Whether the request asks for a WebSocket (then it is an upgrade or a 400, never
/// a page).
fn wants_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case("websocket"))
}

/// The upgrade's checks, as tungstenite makes them; the `Sec-WebSocket-Accept`
/// value when they pass.
fn accept_key(req: &Request<Incoming>) -> Result<String, (StatusCode, &'static str)> {
    let bad = |why| Err((StatusCode::BAD_REQUEST, why));
    if req.method() != Method::GET {
        return bad("a WebSocket upgrade is a GET\n");
    }
    if req.version() < hyper::Version::HTTP_11 {
        return bad("a WebSocket upgrade needs HTTP/1.1\n");
    }
    let h = req.headers();
    let connection_upgrade = h
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([' ', ','])
                .any(|p| p.eq_ignore_ascii_case("upgrade"))
        });
    if !connection_upgrade {
        return bad("missing `Connection: upgrade`\n");
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err((StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n"));
    }
    match h.get(header::SEC_WEBSOCKET_KEY) {
        Some(k) if valid_key(k.as_bytes()) => Ok(derive_accept_key(k.as_bytes())),
        _ => bad("missing or malformed Sec-WebSocket-Key\n"),
    }
}

/// A key is 16 bytes in base64: 22 characters and `==`.
fn valid_key(k: &[u8]) -> bool {
    k.len() == 24
        && k.ends_with(b"==")
        && k[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

fn switching(accept: &str) -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_of_base64() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZ!=="));
        assert!(!valid_key(b""));
    }
}
