//! The webhook operator (ArqonBus's standard `op.webhook.*`): envelopes published on
//! `room:channel` addresses a registered pattern covers are POSTed to the
//! registration's URL, signed with its secret.
//!
//! Each registration runs as an embedded member of the bus joined to its pattern, so
//! it receives exactly what a subscribing session would: after the safety layer,
//! content already redacted. Registering is a read of the pattern (the caller needs
//! `subscribe` on all of it); registrations are durable in the operator's own store
//! (`.hive/webhook.db`, schema `webhook`) and start again with the broker. Each
//! target has one deliverer with a bounded outbox, retries with backoff and jitter,
//! and a bounded dead-letter list; no delivery reaches a private address unless the
//! config allows it. `docs/OPERATORS.md`, "The webhook operator", is the user's guide.
//!
//! # Layout
//! - `config`: the `[webhook]` section.
//! - `model`: registrations, dead letters, the arguments of `register`.
//! - `access`: the commands and what each needs.
//! - `operator`: the [`Operator`](crate::ops::Operator) glue.
//! - `worker`: a live registration: its bus member, outbox, counters, dead letters.
//! - `outbox`: the bounded queue of one target.
//! - `deliver`: the HTTP client, one attempt, the retry rule and backoff.
//! - `sign`: the `X-Hive-Signature` header.
//! - `target`: URL rules and the SSRF guard.
//! - `store`: the schema, writes and reload.

mod access;
pub mod config;
mod deliver;
mod model;
mod operator;
mod outbox;
pub mod sign;
mod store;
pub mod target;
mod worker;

pub use config::{OnFull, WebhookConfig};

use crate::bus::Bus;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use store::HookStore;
use worker::Hook;

/// Why the webhook operator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The store failed to open or reload.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The HTTP client could not be built (TLS backend).
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The webhook operator. Cheap to clone; register it with
/// [`Operators::with`](crate::ops::Operators::with).
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    cfg: Arc<WebhookConfig>,
    store: HookStore,
    client: reqwest::Client,
    hooks: Mutex<BTreeMap<String, Arc<Hook>>>,
    /// One register or unregister at a time (the bounds, the store's order).
    gate: tokio::sync::Mutex<()>,
}

impl Webhooks {
    /// Opens the store (`cfg.db_path`, in memory when `None`), reloads every
    /// registration and starts it. Must run inside a tokio runtime. A registration
    /// whose pattern can no longer be joined is kept and listed with its error.
    ///
    /// # Errors
    /// [`WebhookError`] when the database or the HTTP client cannot be set up; a
    /// database written by a newer hivebus is refused and left as it was.
    pub fn open(bus: Bus, cfg: WebhookConfig) -> Result<Webhooks, WebhookError> {
        let (store, loaded) = HookStore::open(cfg.db_path.as_deref())?;
        let client = deliver::client(&cfg)?;
        let cfg = Arc::new(cfg);
        let me = Webhooks {
            inner: Arc::new(Inner {
                bus,
                cfg,
                store,
                client,
                hooks: Mutex::new(BTreeMap::new()),
                gate: tokio::sync::Mutex::new(()),
            }),
        };
        let n = loaded.registrations.len();
        for (reg, dead) in loaded.registrations {
            let hook = Arc::new(Hook::new(reg, dead, &me.inner.cfg));
            if let Err(e) = me.start(&hook) {
                tracing::warn!(id = %hook.reg.id, error = %e.message, "webhook: cannot join its pattern");
                hook.note(format!("cannot join its pattern: {}", e.message));
            }
            me.hooks().insert(hook.reg.id.clone(), hook);
        }
        if n > 0 || loaded.skipped > 0 {
            tracing::info!(
                registrations = n,
                skipped = loaded.skipped,
                "webhooks reloaded"
            );
        }
        Ok(me)
    }

    fn hooks(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Hook>>> {
        self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, hook: &Arc<Hook>) -> Result<(), crate::error::WireError> {
        hook.start(
            &self.inner.bus,
            self.inner.client.clone(),
            self.inner.cfg.clone(),
            self.inner.store.clone(),
        )
    }

    /// Stops every target (pending envelopes are dropped) and closes the store. Call
    /// after the server stopped; idempotent.
    pub async fn shutdown(&self) {
        for h in self.hooks().values() {
            h.stop();
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}
