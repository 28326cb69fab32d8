//! The safety layer (layer 4 of `docs/ARCHITECTURE.md`): redaction of probable
//! secrets, applied once per publish before history, fan-out, logs and dead-letter, so
//! that a secret never reaches any of them.
//!
//! [`Safety`] holds the active [`Redactor`] (swapped whole on reload), counts decisions
//! and reports each non-clean one as a SYSTEM frame on the events address
//! (`safety:events` by default). It is installed on a [`Bus`] as its
//! [`PublishFilter`] with [`Safety::attach`]; from then on every path that publishes
//! (WebSocket sessions, embedded members, operators, `Bus::publish`, PRIVATE frames)
//! goes through it. `docs/SECURITY.md` says what it guarantees and what it cannot catch.
//!
//! # Layout
//! - `policy`: the `[safety]` config section ([`SafetyConfig`]); a reload reads it
//!   anew through the [`Reload`] function the broker hands in.
//! - `rules`: built-in rules and the compiled rule.
//! - `prefilter`: the `RegexSet` that keeps clean publishes cheap.
//! - `scope`: include / exclude globs.
//! - `paths`: redaction by JSON path and by key name.
//! - `redactor`: the compiled policy and the inspection itself.
//! - `operator`: `op.safety.get` and `op.safety.reload`. It is an operator and sits
//!   with them in the layer order (`docs/ARCHITECTURE.md`); nothing else here uses it.

mod operator;
mod paths;
mod policy;
mod prefilter;
mod redactor;
mod rules;
mod scope;

pub use operator::SafetyOperator;
pub use policy::{Action, Mode, RuleConfig, SafetyConfig};
pub use redactor::{Finding, Redactor, BUDGET_RULE, KEY_RULE, SIZE_RULE, UNSTABLE_RULE};

use crate::address::Address;
use crate::bus::{Bus, PublishFilter, WeakBus};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Reads the policy anew for `op.safety.reload` without a `policy` argument: for the
/// assembled broker, the `[safety]` section of its config file, read again. The error
/// is a sentence naming what could not be read or parsed.
pub type Reload = Box<dyn Fn() -> Result<SafetyConfig, String> + Send + Sync>;

/// Decision counters since start, as `op.safety.get` reports them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SafetyStats {
    /// Publishes inspected (in scope, mode not off).
    pub inspected: u64,
    /// Publishes where something matched (any mode).
    pub flagged: u64,
    /// Publishes changed by redaction (enforce).
    pub redacted: u64,
    /// Publishes refused (enforce).
    pub blocked: u64,
    /// Policy reloads that took effect.
    pub reloads: u64,
}

#[derive(Default)]
struct Counters {
    inspected: AtomicU64,
    flagged: AtomicU64,
    redacted: AtomicU64,
    blocked: AtomicU64,
    reloads: AtomicU64,
}

/// The safety layer of one bus. See the module docs.
pub struct Safety {
    /// Swapped whole on reload; readers clone the `Arc` and drop the guard at once, so
    /// a reload never waits for an inspection.
    active: RwLock<Arc<Redactor>>,
    /// Where `op.safety.reload` reads the policy when given none: the broker hands in a
    /// function that re-reads its config file, so this layer never learns the file's
    /// shape (nor imports the broker's aggregate config).
    source: Option<Reload>,
    /// Weak, so that the bus (which holds this filter) and this do not keep each other.
    bus: OnceLock<WeakBus>,
    counters: Counters,
}

impl Safety {
    /// Compiles `config`.
    ///
    /// # Errors
    /// `invalid_field` when the policy does not compile (see [`Redactor::compile`]).
    pub fn new(config: SafetyConfig) -> Result<Arc<Safety>, WireError> {
        Ok(Arc::new(Safety {
            active: RwLock::new(Arc::new(Redactor::compile(config)?)),
            source: None,
            bus: OnceLock::new(),
            counters: Counters::default(),
        }))
    }

    /// Like [`Safety::new`], with the function `op.safety.reload` calls for the new
    /// policy when it is given none. (The broker's config file is read this way, by
    /// [`Safety::from_file`], which lives with that file's shape in `broker`.)
    ///
    /// # Errors
    /// As [`Safety::new`].
    ///
    /// ```
    /// use hivebus::safety::{Mode, Safety, SafetyConfig};
    /// let s = Safety::with_source(SafetyConfig::default(), Box::new(|| {
    ///     Ok(SafetyConfig::with_mode(Mode::Enforce))
    /// }))
    /// .unwrap();
    /// s.reload_from_source().unwrap();
    /// assert_eq!(s.active().mode(), Mode::Enforce);
    /// ```
    pub fn with_source(config: SafetyConfig, source: Reload) -> Result<Arc<Safety>, WireError> {
        Ok(Arc::new(Safety {
            active: RwLock::new(Arc::new(Redactor::compile(config)?)),
            source: Some(source),
            bus: OnceLock::new(),
            counters: Counters::default(),
        }))
    }

    /// Installs this as `bus`'s publish filter, and publishes decision events on it.
    ///
    /// # Errors
    /// `conflict` when the bus already has a filter.
    ///
    /// ```
    /// use hivebus::safety::{Mode, Safety, SafetyConfig};
    /// let bus = hivebus::Bus::new(Default::default()).unwrap();
    /// let safety = Safety::new(SafetyConfig::with_mode(Mode::Enforce)).unwrap();
    /// safety.attach(&bus).unwrap();
    /// ```
    pub fn attach(self: &Arc<Self>, bus: &Bus) -> Result<(), WireError> {
        bus.set_filter(self.clone())?;
        let _ = self.bus.set(bus.downgrade());
        Ok(())
    }

    /// The compiled policy in force now.
    pub fn active(&self) -> Arc<Redactor> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the policy. A policy that does not compile is refused and the running
    /// one stays.
    ///
    /// # Errors
    /// `invalid_field` from [`Redactor::compile`].
    pub fn reload(&self, config: SafetyConfig) -> Result<(), WireError> {
        let compiled = Arc::new(Redactor::compile(config)?);
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!("safety policy reloaded");
        Ok(())
    }

    /// Replaces the policy with the one the source given to [`Safety::with_source`]
    /// (or [`Safety::from_file`]) reads now.
    ///
    /// # Errors
    /// `invalid_field` when there is no source, or it fails, or its policy does not
    /// compile; the running policy stays.
    pub fn reload_from_source(&self) -> Result<(), WireError> {
        let source = self.source.as_ref().ok_or_else(|| {
            WireError::new(
                ErrorCode::InvalidField,
                "no config file to reload from; pass `policy`",
            )
        })?;
        let config = source().map_err(|e| WireError::new(ErrorCode::InvalidField, e))?;
        self.reload(config)
    }

    /// Counters since start.
    pub fn stats(&self) -> SafetyStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SafetyStats {
            inspected: get(&c.inspected),
            flagged: get(&c.flagged),
            redacted: get(&c.redacted),
            blocked: get(&c.blocked),
            reloads: get(&c.reloads),
        }
    }

    /// Reports a non-clean decision: a `tracing` line and a SYSTEM frame on the events
    /// address. Neither carries the matched text, only rule names.
    fn report(&self, r: &Redactor, addr: Option<&Address>, env: &Envelope, f: &Finding) {
        let decision = match (&f.blocked_by, f.redactions) {
            (Some(_), _) => "blocked",
            (None, n) if n > 0 => "redacted",
            _ => "flagged",
        };
        let rules: Vec<&String> = f.rules.iter().collect();
        let at = addr.map(|a| a.to_string());
        tracing::info!(decision, mode = r.mode().as_str(), address = ?at, from = ?env.from, ?rules, "safety decision");
        let (Some(events), Some(bus)) = (
            r.events_address(),
            self.bus.get().and_then(WeakBus::upgrade),
        ) else {
            return;
        };
        let mut e = Envelope::new(
            FrameType::System,
            json!({
                "event": "safety.decision",
                "decision": decision,
                "mode": r.mode().as_str(),
                "rules": rules,
                "redactions": f.redactions,
                "address": at,
                "from": env.from,
                "id": env.id,
                "kind": env.kind.as_str(),
            }),
        );
        e.trace_id = env.trace_id.clone();
        if let Err(err) = bus.publish(events, e) {
            tracing::warn!(error = %err, "safety event not published");
        }
    }
}

impl PublishFilter for Safety {
    fn secret_in(&self, text: &str) -> Option<String> {
        self.active().detect(text).map(str::to_owned)
    }

    fn inspect(&self, addr: Option<&Address>, env: &mut Envelope) -> Result<(), WireError> {
        let r = self.active();
        if !r.in_scope(addr) {
            return Ok(());
        }
        let c = &self.counters;
        c.inspected.fetch_add(1, Ordering::Relaxed);
        let f = r.inspect(addr, &mut env.payload);
        if f.is_clean() {
            return Ok(());
        }
        c.flagged.fetch_add(1, Ordering::Relaxed);
        if f.redactions > 0 {
            c.redacted.fetch_add(1, Ordering::Relaxed);
        }
        if f.blocked_by.is_some() {
            c.blocked.fetch_add(1, Ordering::Relaxed);
        }
        self.report(&r, addr, env, &f);
        match f.blocked_by {
            Some(rule) => Err(WireError::new(
                ErrorCode::Blocked,
                format!("refused by safety rule `{rule}`"),
            )
            .with_details(json!({"rule": rule}))),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Safety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Safety")
            .field("mode", &self.active().mode())
            .field("stats", &self.stats())
            .finish()
    }
}
