//! A session's start: HELLO within the deadline, authentication, the per-identity
//! session count, attaching to the bus, WELCOME. Any refusal is an ERROR frame and a
//! [`Closing`] for the caller to send; nothing here outlives the handshake but the
//! [`IdentitySlot`], which the session holds until it ends.

use super::close::Closing;
use super::tls::Ws;
use super::ServerCtx;
use crate::auth::Identity;
use crate::bus::{Inbox, Member, PeerInfo};
use crate::error::{close, ErrorCode, WireError};
use crate::frame::{error_frame, Envelope, FrameType};
use crate::ops::Caller;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A session counted against its identity's `max_sessions_per_identity`; released on
/// drop, whichever way the session ends.
pub(super) struct IdentitySlot {
    ctx: Arc<ServerCtx>,
    key: Option<String>,
}

impl IdentitySlot {
    pub(super) fn acquire(ctx: &Arc<ServerCtx>, id: &Identity) -> Result<IdentitySlot, WireError> {
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
    /// Routing roles (`bus::route`), checked by the dispatcher.
    #[serde(default)]
    roles: Option<serde_json::Value>,
    /// Areas of expertise.
    #[serde(default)]
    expertise: Option<serde_json::Value>,
    /// Who the session reports to: shown in presence, an identifier like `name`.
    #[serde(default)]
    reports_to: Option<String>,
}

/// What a successful handshake yields.
pub(super) type Handshaken = (Member, Inbox, Caller, Identity, IdentitySlot);

/// Waits for HELLO, authenticates it, attaches the session and sends WELCOME.
pub(super) async fn handshake(
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
            // The credential itself is never recorded, only that one was refused.
            ctx.dispatch.audit().record(
                crate::audit::Entry::new("auth_failed")
                    .outcome(err.code.as_str())
                    .details(serde_json::json!({
                        "role": crate::auth::Role::parse(&hello.role)
                            .map_or("unknown", |r| r.as_str()),
                        "credential": hello.auth.is_some(),
                    })),
            );
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
    let tags =
        match ctx
            .dispatch
            .admit_tags(&identity, hello.roles.as_ref(), hello.expertise.as_ref())
        {
            Ok(t) => t,
            Err(err) => return Err(refuse(ws, env.id, err).await),
        };
    if let Some(r) = &hello.reports_to {
        if let Err(err) = ctx.dispatch.admit_identifier("reports_to", r) {
            return Err(refuse(ws, env.id, err).await);
        }
    }
    let info = PeerInfo {
        role: identity.role.as_str().to_owned(),
        capabilities: hello.capabilities,
        name: hello.name,
        slots: hello.slots,
        roles: tags.roles,
        expertise: tags.expertise,
        reports_to: hello.reports_to,
    };
    let (member, inbox) = ctx.bus.connect(info.clone());
    let caller = Caller {
        session: member.id().to_owned(),
        identity: identity.clone(),
        tags: member.tags().clone(),
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
