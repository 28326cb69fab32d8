//! The key-value operator (`op.store.*`): small, durable, tenant-scoped state for
//! agents. A value lives in a namespace (an identity's own, or a room's shared one,
//! see `access`), under a key, with a version for compare-and-set and an optional
//! time to live.
//!
//! Invariants: a write is answered only once it is committed (SQLite, group commit
//! through [`crate::store`]); of concurrent sets naming one `expected_version`
//! exactly one stores, the others get `conflict` with the current version; an
//! expired value is never returned; every bound is checked in the same transaction
//! as the write it limits (`table`), so two writers cannot pass it together.
//!
//! # Layout
//! - `config`: the `[kv]` section and its bounds.
//! - `access`: namespaces and who may read or write them (the operator's needs).
//! - `schema`: the tables and their migrations (operator `kv` in the store).
//! - `table`: compare-and-set, delete, expiry, get and list as SQL.

mod access;
pub mod config;
mod schema;
mod table;

pub use config::KvConfig;

use crate::auth::authority::Need;
use crate::bus::Bus;
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use crate::store::{Batch, Store, StoreError, StoreOptions};
use access::{Cmd, Ns};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use table::{Outcome, Quota, SetReq};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The key-value operator. Cheap to clone; register it with
/// [`Operators::with`](crate::ops::Operators::with).
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bus: Bus,
    cfg: KvConfig,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

/// Wall-clock milliseconds since the Unix epoch: expiries are wall-clock times, kept
/// across restarts.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn invalid(field: &str, why: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, why).with_details(json!({"field": field}))
}

/// Refuses fields a command does not take (a misspelt `expected_versoin` must not
/// turn a compare-and-set into a blind overwrite).
fn only(args: &Value, allowed: &[&str]) -> Result<(), WireError> {
    let Some(map) = args.as_object() else {
        return Err(invalid("args", "arguments must be an object"));
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            k,
            format!(
                "unknown field `{k}`; this command takes {}",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// An optional non-negative integer field.
fn opt_u64(args: &Value, field: &str) -> Result<Option<u64>, WireError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(field, format!("`{field}` must be a non-negative integer"))),
    }
}

fn store_failed(e: StoreError) -> WireError {
    tracing::error!(error = %e, "kv: store failed");
    WireError::new(
        ErrorCode::Internal,
        "the key-value store could not commit; nothing was changed",
    )
}

impl Kv {
    /// Opens the store (migrating an older database) and starts the expiry sweeper.
    /// Call inside a tokio runtime.
    ///
    /// # Errors
    /// The store could not be opened or is newer than this build.
    pub fn open(bus: Bus, cfg: KvConfig, opts: StoreOptions) -> Result<Kv, StoreError> {
        let store = Store::open(cfg.db_path.as_deref(), opts, &[&schema::SCHEMA])?.start()?;
        let inner = Arc::new(Inner {
            store,
            bus,
            cfg,
            sweeper: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let every = std::time::Duration::from_millis(inner.cfg.sweep_ms.max(10));
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let now = now_ms();
                inner
                    .store
                    .write(move |b: &mut Batch<'_>| table::sweep(b, now, 1000).map(drop));
            }
        });
        *inner.sweeper.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Kv { inner })
    }

    /// The key argument, checked: present, bounded, printable, and not a secret (it is
    /// an identifier, refused rather than redacted so that two keys never collapse
    /// into one).
    fn key(&self, args: &Value, field: &str) -> Result<String, WireError> {
        let k = match args.get(field) {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => {
                return Err(WireError::new(
                    ErrorCode::MissingField,
                    format!("`{field}` is required"),
                )
                .with_details(json!({"field": field})))
            }
            Some(_) => return Err(invalid(field, format!("`{field}` must be a string"))),
        };
        if k.is_empty() && field == "key" {
            return Err(invalid(field, "`key` must not be empty"));
        }
        let max = self.inner.cfg.max_key_bytes;
        if k.len() > max {
            return Err(invalid(
                field,
                format!("`{field}` is {} bytes; at most {max}", k.len()),
            )
            .with_details(json!({"field": field, "limit": "key_bytes", "max": max})));
        }
        if k.chars().any(char::is_control) {
            return Err(invalid(field, format!("`{field}` has control characters")));
        }
        if let Some(rule) = self.inner.bus.secret_in(k) {
            return Err(invalid(
                field,
                format!("`{field}` looks like a secret (safety rule `{rule}`); choose another"),
            ));
        }
        Ok(k.clone())
    }

    /// Enqueues a change and waits until it is committed; its outcome.
    async fn change(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<Outcome> + Send + 'static,
    ) -> Result<Outcome, WireError> {
        let (tx, rx) = oneshot::channel();
        self.inner.store.write(move |b: &mut Batch<'_>| {
            let out = f(b)?;
            let _ = tx.send(out);
            Ok(())
        });
        self.inner.store.ack().wait().await.map_err(store_failed)?;
        rx.await.map_err(|_| store_failed(StoreError::Closed))
    }

    fn quota(&self) -> Quota {
        let c = &self.inner.cfg;
        Quota {
            keys_per_ns: c.max_keys_per_namespace,
            bytes_per_ns: c.max_bytes_per_namespace,
            keys_total: c.max_keys_total,
            bytes_total: c.max_bytes_total,
        }
    }

    async fn set(&self, ns: Ns, args: &Value) -> Result<Value, WireError> {
        only(args, &["ns", "key", "value", "expected_version", "ttl_ms"])?;
        let key = self.key(args, "key")?;
        let value = args.get("value").ok_or_else(|| {
            WireError::new(
                ErrorCode::MissingField,
                "`value` is required (any JSON value)",
            )
            .with_details(json!({"field": "value"}))
        })?;
        let text = value.to_string();
        let max = self.inner.cfg.max_value_bytes;
        if text.len() > max {
            return Err(invalid(
                "value",
                format!("the value is {} bytes of JSON; at most {max}", text.len()),
            )
            .with_details(json!({"field": "value", "limit": "value_bytes", "max": max})));
        }
        let ttl = opt_u64(args, "ttl_ms")?;
        let max_ttl = self.inner.cfg.max_ttl_ms;
        if let Some(t) = ttl {
            if t == 0 || t > max_ttl {
                return Err(
                    invalid("ttl_ms", format!("`ttl_ms` must be 1 to {max_ttl}")).with_details(
                        json!({"field": "ttl_ms", "limit": "ttl_ms", "max": max_ttl}),
                    ),
                );
            }
        }
        let now = now_ms();
        let req = SetReq {
            ns: ns.key(),
            key,
            value: text,
            expected: opt_u64(args, "expected_version")?,
            expires_ms: ttl.map(|t| now.saturating_add(t)),
            now_ms: now,
        };
        let q = self.quota();
        let (ns_key, key, expires) = (req.ns.clone(), req.key.clone(), req.expires_ms);
        match self.change(move |c| table::set(c, &req, q)).await? {
            Outcome::Done { version } => Ok(json!({
                "ns": ns_key, "key": key, "version": version, "expires_ms": expires,
            })),
            other => Err(refusal(other, &ns_key, &key)),
        }
    }

    async fn delete(&self, ns: Ns, args: &Value) -> Result<Value, WireError> {
        only(args, &["ns", "key", "expected_version"])?;
        let key = self.key(args, "key")?;
        let expected = opt_u64(args, "expected_version")?;
        let (ns_key, k) = (ns.key(), key.clone());
        let now = now_ms();
        match self
            .change(move |c| table::delete(c, &ns_key, &k, expected, now))
            .await?
        {
            Outcome::Done { version } => {
                Ok(json!({"ns": ns.key(), "key": key, "deleted": true, "version": version}))
            }
            other => Err(refusal(other, &ns.key(), &key)),
        }
    }

    async fn get(&self, ns: Ns, args: &Value) -> Result<Value, WireError> {
        only(args, &["ns", "key"])?;
        let key = self.key(args, "key")?;
        let (ns_key, k) = (ns.key(), key.clone());
        let now = now_ms();
        let found = self
            .inner
            .store
            .read(move |c| table::get(c, &ns_key, &k, now))
            .wait()
            .await
            .map_err(store_failed)?;
        match found {
            Some(e) => Ok(
                json!({"ns": ns.key(), "key": e.key, "value": parse(&e.value),
                "version": e.version, "expires_ms": e.expires_ms, "updated_ms": e.updated_ms}),
            ),
            None => Err(refusal(Outcome::Missing, &ns.key(), &key)),
        }
    }

    async fn list(&self, ns: Ns, args: &Value) -> Result<Value, WireError> {
        only(args, &["ns", "prefix", "cursor", "limit"])?;
        let prefix = match args.get("prefix") {
            None | Some(Value::Null) => String::new(),
            Some(_) => self.key(args, "prefix")?,
        };
        let after = match args.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(table::key_of_cursor(c).ok_or_else(|| {
                invalid("cursor", "`cursor` is not one this store gave; pass the `cursor` of the previous page as is")
            })?),
            Some(_) => return Err(invalid("cursor", "`cursor` must be a string")),
        };
        let cfg = &self.inner.cfg;
        let limit = opt_u64(args, "limit")?.map_or(cfg.list_default, |l| l as usize);
        if limit == 0 || limit > cfg.list_max {
            return Err(
                invalid("limit", format!("`limit` must be 1 to {}", cfg.list_max)).with_details(
                    json!({"field": "limit", "limit": "list_max", "max": cfg.list_max}),
                ),
            );
        }
        let (ns_key, max_bytes, now) = (ns.key(), cfg.list_max_bytes, now_ms());
        let page = self
            .inner
            .store
            .read(move |c| {
                table::list(c, &ns_key, &prefix, after.as_deref(), limit, max_bytes, now)
            })
            .wait()
            .await
            .map_err(store_failed)?;
        let items: Vec<Value> = page
            .entries
            .iter()
            .map(|e| {
                json!({"key": e.key, "value": parse(&e.value), "version": e.version,
                "expires_ms": e.expires_ms, "updated_ms": e.updated_ms})
            })
            .collect();
        Ok(json!({"ns": ns.key(), "items": items,
            "cursor": page.more_after.as_deref().map(table::cursor_of)}))
    }

    /// Stops the sweeper and closes the store after every enqueued write.
    pub async fn shutdown(&self) {
        let h = self
            .inner
            .sweeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = h {
            h.abort();
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// A stored value's JSON (written by this operator, so it parses).
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The refusal for an outcome that stored nothing.
fn refusal(o: Outcome, ns: &str, key: &str) -> WireError {
    match o {
        Outcome::Conflict { current } => WireError::new(
            ErrorCode::Conflict,
            format!("`{key}` in {ns} is at version {current}; read it again and retry with that version"),
        )
        .with_details(json!({"current_version": current})),
        Outcome::Missing => WireError::new(ErrorCode::NotFound, format!("no key `{key}` in {ns}")),
        Outcome::Full { limit, max } => WireError::new(
            ErrorCode::Overloaded,
            format!("{ns} would pass the store's `{limit}` bound ({max}); delete values first"),
        )
        .with_details(json!({"limit": limit, "max": max})),
        Outcome::Done { .. } => WireError::new(ErrorCode::Internal, "not a refusal"),
    }
}

impl Operator for Kv {
    fn namespace(&self) -> &str {
        "store"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move {
            let ns = Ns::parse(caller, &args)?;
            match Cmd::parse(name)? {
                Cmd::Set => self.set(ns, &args).await,
                Cmd::Get => self.get(ns, &args).await,
                Cmd::List => self.list(ns, &args).await,
                Cmd::Delete => self.delete(ns, &args).await,
            }
        })
    }

    fn command_need(&self, caller: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
        let need = access::need(caller, name, args)?;
        // Keys are identifiers: a secret among them is refused here, before the safety
        // layer would redact it into another key.
        if need.content {
            self.key(args, "key")?;
        }
        Ok(need)
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown())
    }
}
