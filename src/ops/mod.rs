//! Operators: the extension point where queue, approval and governance semantics live.
//!
//! An operator owns a command namespace (`op.<namespace>.*`) and may claim frame types
//! (TASK, RESULT, HEARTBEAT, ...) that sessions send. It acts on the bus through the same
//! [`Bus`](crate::Bus) API as any agent; the bus core never imports an operator. The
//! server hands each matching command or frame to the operator with the [`Caller`].

pub mod queue;

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
    /// Whether the session may run admin commands.
    pub admin: bool,
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

    /// The operator claiming frames of `kind`, if any.
    pub fn for_frame(&self, kind: FrameType) -> Option<&Arc<dyn Operator>> {
        self.list.iter().find(|o| o.claims(kind))
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
