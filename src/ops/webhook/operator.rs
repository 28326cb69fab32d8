//! The [`Operator`] glue of the webhook operator: the four commands and the resource
//! lookup the authority check uses.
//!
//! `register` checks its arguments, resolves a named host once (a name that resolves
//! only to refused addresses is refused now, not dead-lettered later), checks the
//! bounds, joins the bus, and answers only once the registration is durable; a
//! registration that could not be stored leaves the bus again. Register and unregister
//! run one at a time, so the bounds hold under concurrent callers.

use super::access::{id_of, Cmd};
use super::model::{new_id, now_ms, strict, RegisterArgs, Registration};
use super::sign;
use super::target;
use super::worker::Hook;
use super::Webhooks;
use crate::address::Address;
use crate::auth::authority::{Need, Resource};
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn internal(e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::Internal, format!("webhook store: {e}"))
}

fn not_found(id: &str) -> WireError {
    WireError::new(
        ErrorCode::NotFound,
        format!("no webhook {id}; `hive webhook list` shows yours"),
    )
    .with_details(json!({"id": id}))
}

impl Webhooks {
    async fn register(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        let cfg = &self.inner.cfg;
        let a = RegisterArgs::parse(args, cfg)?;
        if !cfg.allow_private {
            if let Some(host) = a.url.host_str().filter(|h| !h.starts_with('[')) {
                if host.parse::<std::net::IpAddr>().is_err() {
                    let wait = Duration::from_millis(cfg.connect_timeout_ms.max(1));
                    // A name that does not resolve now may later: delivery will tell.
                    if let Ok(Err(e)) =
                        tokio::time::timeout(wait, target::resolve(host, false)).await
                    {
                        if target::refused_in(e.as_ref()) {
                            return Err(target::private_refusal(host));
                        }
                    }
                }
            }
        }
        let _one = self.inner.gate.lock().await;
        let owner = caller.identity.subject.clone();
        {
            let hooks = self.hooks();
            if hooks.len() >= cfg.max_registrations {
                return Err(WireError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "the broker holds {} webhooks, its maximum",
                        cfg.max_registrations
                    ),
                )
                .with_details(json!({"max_registrations": cfg.max_registrations})));
            }
            let mine = hooks.values().filter(|h| h.reg.owner == owner).count();
            if mine >= cfg.max_per_owner {
                return Err(WireError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "{owner} holds {mine} webhooks, the most one owner may; unregister one first"
                    ),
                )
                .with_details(json!({"max_per_owner": cfg.max_per_owner})));
            }
        }
        let secret = match a.secret {
            Some(s) => s,
            None => sign::new_secret().map_err(|_| internal("no randomness for a secret"))?,
        };
        let reg = Registration {
            id: new_id(),
            owner,
            pattern: a.pattern,
            url: a.url,
            secret,
            created_ms: now_ms(),
        };
        let hook = Arc::new(Hook::new(reg.clone(), Vec::new(), cfg));
        self.start(&hook)?;
        if let Err(e) = self.inner.store.put(&reg).await {
            hook.stop();
            return Err(internal(e));
        }
        self.hooks().insert(reg.id.clone(), hook);
        tracing::info!(id = %reg.id, owner = %reg.owner, pattern = %reg.pattern, "webhook registered");
        let mut v = reg.view();
        v["secret"] = json!(reg.secret);
        v["signature"] = json!({
            "header": sign::HEADER,
            "format": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>",
        });
        Ok(v)
    }

    fn list(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        strict(args, &[])?;
        let admin = caller.is_admin();
        let hooks = self.hooks();
        let mut mine: Vec<&Arc<Hook>> = hooks
            .values()
            .filter(|h| admin || h.reg.owner == caller.identity.subject)
            .collect();
        mine.sort_by(|a, b| (a.reg.created_ms, &a.reg.id).cmp(&(b.reg.created_ms, &b.reg.id)));
        let rows: Vec<Value> = mine.iter().map(|h| h.view()).collect();
        Ok(json!({"webhooks": rows}))
    }

    async fn unregister(&self, args: &Value) -> Result<Value, WireError> {
        strict(args, &["id"])?;
        let id = id_of(args)?;
        let _one = self.inner.gate.lock().await;
        let hook = self.hooks().remove(&id).ok_or_else(|| not_found(&id))?;
        hook.stop();
        self.inner.store.delete(&id).await.map_err(internal)?;
        tracing::info!(%id, owner = %hook.reg.owner, "webhook unregistered");
        Ok(json!({"id": id, "removed": true}))
    }

    fn dead_letters(&self, args: &Value) -> Result<Value, WireError> {
        strict(args, &["id", "limit"])?;
        let id = id_of(args)?;
        let max = self.inner.cfg.deadletter_max;
        let limit = match args.get("limit") {
            None | Some(Value::Null) => max,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=max.max(1)).contains(n))
                .ok_or_else(|| {
                    WireError::new(
                        ErrorCode::InvalidField,
                        format!("`limit` must be an integer from 1 to {max}"),
                    )
                    .with_details(json!({"field": "limit"}))
                })?,
        };
        let hook = self
            .hooks()
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(&id))?;
        let letters = hook.dead_letters(limit);
        Ok(json!({"id": id, "deadletters": letters}))
    }
}

impl Operator for Webhooks {
    fn namespace(&self) -> &str {
        "webhook"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move {
            match Cmd::parse(name)? {
                Cmd::Register => self.register(caller, &args).await,
                Cmd::List => self.list(caller, &args),
                Cmd::Unregister => self.unregister(&args).await,
                Cmd::DeadLetters => self.dead_letters(&args),
            }
        })
    }

    fn command_need(&self, _caller: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
        Cmd::parse(name)?.need(args)
    }

    fn resource<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Resource, WireError>> {
        Box::pin(async move {
            let hooks = self.hooks();
            let h = hooks.get(key).ok_or_else(|| not_found(key))?;
            Ok(Resource {
                id: h.reg.id.clone(),
                // The check of `Right::Own` reads only the owner; a registration has no
                // single address, so it is placed on `webhook:<id>`.
                address: Address::new("webhook", &h.reg.id).map_err(WireError::from)?,
                owner: h.reg.owner.clone(),
                holder: None,
            })
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown())
    }
}
