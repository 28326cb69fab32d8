//! Operators: the extension point where queue, approval and governance semantics live.
//!
//! An operator owns a command namespace (`op.<namespace>.*`) and may claim frame types
//! (TASK, RESULT, HEARTBEAT, ...) that sessions send. It acts on the bus through the same
//! [`Bus`](crate::Bus) API as any agent; the bus core never imports an operator. The
//! dispatcher hands each matching command or frame to the operator with the [`Caller`],
//! after the one authority check (`auth::authority`) passed for what the operator said
//! the command or frame needs ([`Operator::command_need`], [`Operator::frame_need`]).
//! An operator that declares nothing is admin-only: a new command is closed until its
//! author says who may run it.
//!
//! Operators cooperate (`docs/OPERATORS.md`): one operator owns each frame type it
//! claims (the first registered), and any number of others may observe that type
//! ([`Operator::observes`]): they see each such frame after its owner applied it, as
//! the owner got it (inspected, redacted), and can neither refuse nor change it. Deeper
//! contracts are typed and in-process, offered by the operator that owns the concept:
//! the queue's task events and action gates are in [`queue::hooks`].
//!
//! # Layout
//! - `queue`: the BIP-43 task queue, and its contract with other operators (`hooks`).
//! - `approval`: the approval policy (rules, built-in destructive list) and its gate.
//! - `webhook`: envelopes of matching channels POSTed to registered URLs, signed.
//! - `cron`: schedules that publish on a channel later or on a cron rule (`op.cron.*`).
//! - `kv`: durable key-value state per identity or room (`op.store.*`).
//! - `gitops`: branch discipline for BIP work with real git (lock, branches, PRs).
//! - `governance`: the governance repository (proposals, BIPs, minutes, tallies) and the
//!   contracts of the BIP-43 TASK kinds.

pub mod approval;
pub mod cron;
pub mod gitops;
pub mod governance;
pub mod kv;
pub mod queue;
pub mod webhook;

use crate::auth::authority::{self, Asker, Need, Resource, Right, Target};
use crate::auth::Identity;
use crate::bus::PeerInfo;
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so that operators can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who sent a command or frame to an operator.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Session id.
    pub session: String,
    /// The session's HELLO.
    pub info: PeerInfo,
    /// Who authenticated: subject, role and address permissions.
    pub identity: Identity,
    /// The roles and expertise the session declared (from `info`), as the bus routes
    /// by them and the authority check reads them.
    pub tags: Arc<crate::bus::route::Tags>,
}

impl Caller {
    /// Whether the session has the admin role.
    pub fn is_admin(&self) -> bool {
        self.identity.role == crate::auth::Role::Admin
    }

    /// The identity and session, as the authority check takes them.
    pub fn asker(&self) -> Asker<'_> {
        Asker {
            identity: &self.identity,
            session: &self.session,
            tags: &self.tags,
        }
    }

    /// Whether this caller may exercise `right` on `target` (for listings that filter
    /// item by item; see [`authority::may`]).
    pub fn may(&self, right: Right, target: &Target) -> bool {
        authority::may(self.asker(), right, target).is_ok()
    }
}

/// A bus operator. See the module docs.
pub trait Operator: Send + Sync + 'static {
    /// The namespace: `queue` owns `op.queue.*`.
    fn namespace(&self) -> &str;

    /// Runs `op.<namespace>.<name>`; the result becomes the REPLY's `result`.
    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>>;

    /// What `op.<namespace>.<name>` needs: roles, right, target. Reads only the fields
    /// that name the target; the command itself validates the rest. The default is
    /// admin-only, with no content to inspect.
    ///
    /// # Errors
    /// `unknown_command`, or a missing or bad target field.
    fn command_need(&self, caller: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
        let _ = (caller, name, args);
        Ok(Need::admin())
    }

    /// What a claimed frame needs. The default is admin-only.
    ///
    /// # Errors
    /// A missing or bad target field.
    fn frame_need(&self, caller: &Caller, env: &Envelope) -> Result<Need, WireError> {
        let _ = (caller, env);
        Ok(Need::admin())
    }

    /// Who owns the resource `key` named in an [`authority::On::Resource`], and where
    /// it lives.
    ///
    /// # Errors
    /// `not_found` when there is no such resource.
    fn resource<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Resource, WireError>> {
        Box::pin(async move {
            Err(WireError::new(
                ErrorCode::NotFound,
                format!("no resource {key}"),
            ))
        })
    }

    /// Whether this operator takes frames of `kind` sent by sessions.
    fn claims(&self, kind: FrameType) -> bool {
        let _ = kind;
        false
    }

    /// Handles a claimed frame; `Some(result)` is sent back as a REPLY when the frame
    /// had an id.
    fn frame<'a>(
        &'a self,
        caller: &'a Caller,
        env: Envelope,
    ) -> BoxFuture<'a, Result<Option<Value>, WireError>> {
        let _ = (caller, env);
        Box::pin(async { Ok(None) })
    }

    /// Whether this operator wants to see frames of `kind` that another operator owns.
    fn observes(&self, kind: FrameType) -> bool {
        let _ = kind;
        false
    }

    /// Sees a frame of an observed type after its owner applied it successfully.
    /// Called on the sender's task: it must not block (spawn for slow work).
    fn observe(&self, caller: &Caller, env: &Envelope) {
        let _ = (caller, env);
    }

    /// Told when a session detaches (a consumer's leases may need re-queueing).
    fn disconnected(&self, session: &str) {
        let _ = session;
    }

    /// Stops the operator's background work and flushes its state. The broker calls
    /// it (through [`Operators::stop`]) once the server has stopped; an operator
    /// starts when it is built.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The operators a server runs, looked up by namespace and by claimed frame type.
#[derive(Clone, Default)]
pub struct Operators {
    list: Vec<Arc<dyn Operator>>,
}

impl Operators {
    /// No operators.
    pub fn new() -> Self {
        Operators::default()
    }

    /// Adds an operator.
    pub fn with(mut self, op: Arc<dyn Operator>) -> Self {
        self.list.push(op);
        self
    }

    /// The operator owning a full command name (`op.queue.submit`), and the rest of
    /// the name (`submit`).
    ///
    /// # Errors
    /// `unknown_command` when no operator owns the namespace.
    pub fn for_command<'n>(
        &self,
        name: &'n str,
    ) -> Result<(&Arc<dyn Operator>, &'n str), WireError> {
        let unknown = || {
            WireError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `{name}`"),
            )
        };
        let rest = name.strip_prefix("op.").ok_or_else(unknown)?;
        let (ns, cmd) = rest.split_once('.').ok_or_else(unknown)?;
        let op = self
            .list
            .iter()
            .find(|o| o.namespace() == ns)
            .ok_or_else(unknown)?;
        Ok((op, cmd))
    }

    /// The operator claiming frames of `kind`, if any: the first registered.
    pub fn for_frame(&self, kind: FrameType) -> Option<&Arc<dyn Operator>> {
        self.list.iter().find(|o| o.claims(kind))
    }

    /// The operators observing frames of `kind`, other than `owner`.
    pub fn observers<'a>(
        &'a self,
        kind: FrameType,
        owner: &'a Arc<dyn Operator>,
    ) -> impl Iterator<Item = &'a Arc<dyn Operator>> + 'a {
        self.list
            .iter()
            .filter(move |o| !Arc::ptr_eq(o, owner) && o.observes(kind))
    }

    /// Tells every operator that a session detached.
    pub fn disconnected(&self, session: &str) {
        for op in &self.list {
            op.disconnected(session);
        }
    }

    /// Stops every operator, in registration order.
    pub async fn stop(&self) {
        for op in &self.list {
            op.stop().await;
        }
    }

    /// The namespaces, for `status`.
    pub fn namespaces(&self) -> Vec<String> {
        self.list.iter().map(|o| o.namespace().to_owned()).collect()
    }
}
