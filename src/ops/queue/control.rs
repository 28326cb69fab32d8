//! Consumer control (BIP-43): a client asks a running consumer to switch its model,
//! clear its agent's memory, start a new session, or relay a chat message.
//!
//! On the wire: the command `op.queue.control {consumer, action, value?}` is checked,
//! then delivered to that consumer's session as a SYSTEM frame `{event: "control",
//! control, action, value, by}`. The consumer answers with `op.queue.control.ack
//! {control, ok, result? | code, message}`, and that answer is the command's reply:
//! `{control, consumer, action, result}`, or the consumer's refusal (`conflict`).
//! Unanswered within [`ANSWER_WAIT`] (or the consumer leaves first), the command
//! fails with `operator_error` (`details.reason: "no_answer"`).
//!
//! Who may (the one check, `authority::may`, per task; `docs/ROLES.md`):
//! - the role is client or admin (`command_need`): never an observer or a consumer;
//! - an admin may control any consumer;
//! - a client may control a consumer only while that consumer holds at least one
//!   lease and the client has the `manage` right on **every** task it holds (it owns
//!   them and may publish on their channel, or `manage` covers them): steering an
//!   agent disturbs every task it runs, so one other person's task there is enough
//!   to refuse (`forbidden`). An unknown consumer session is `not_found`.
//!
//! Bounds: a model name is 1..=[`MAX_MODEL`] bytes of `[A-Za-z0-9._:/@+-]`; a chat
//! message 1..=[`MAX_CHAT`] bytes; at most [`MAX_PENDING`] requests wait for answers
//! broker-wide (more are `overloaded`). Only the session a request was sent to may
//! answer it.

use super::Queue;
use crate::auth::authority::{Need, On, Resource, Right, Target, EXECUTORS, SUBMITTERS};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use crate::ops::Caller;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long `op.queue.control` waits for the consumer's answer.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Longest model name.
pub(crate) const MAX_MODEL: usize = 128;
/// Longest chat message.
pub(crate) const MAX_CHAT: usize = 4096;
/// Requests waiting for an answer, broker-wide.
pub(crate) const MAX_PENDING: usize = 1024;

/// The actions a consumer can be asked for.
const ACTIONS: &[&str] = &["model", "clear_memory", "new_session", "chat"];

/// A control command (`op.queue.control`, `op.queue.control.ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlCmd {
    /// A client's request.
    Control,
    /// The consumer's answer.
    Ack,
}

impl ControlCmd {
    /// The control command called `name` (without `op.queue.`), if it is one.
    pub(crate) fn parse(name: &str) -> Option<ControlCmd> {
        match name {
            "control" => Some(ControlCmd::Control),
            "control.ack" => Some(ControlCmd::Ack),
            _ => None,
        }
    }

    /// What it needs: a client or admin to ask, checked task by task like a listing
    /// (`On::Each`: the `manage` check on every task the consumer holds is in
    /// [`Queue::control`], through `Caller::may`); a consumer (or admin) to answer.
    /// A request's `value` is content (a chat message reaches an agent): inspected.
    pub(crate) fn need(self) -> Need {
        match self {
            ControlCmd::Control => Need::new(SUBMITTERS, Right::Read, On::Each).with_content(),
            ControlCmd::Ack => Need::new(EXECUTORS, Right::None, On::Nothing),
        }
    }
}

/// Requests waiting for their consumer's answer.
#[derive(Default)]
pub(crate) struct Controls {
    next: AtomicU64,
    pending: Mutex<HashMap<String, Waiting>>,
}

struct Waiting {
    consumer: String,
    tx: oneshot::Sender<Result<Value, WireError>>,
}

impl Controls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consumer left: its unanswered requests fail now rather than time out.
    pub(crate) fn gone(&self, session: &str) {
        let mut p = self.lock();
        let ids: Vec<String> = p
            .iter()
            .filter(|(_, w)| w.consumer == session)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(w) = p.remove(&id) {
                let _ = w.tx.send(Err(no_answer("the consumer disconnected")));
            }
        }
    }
}

fn no_answer(why: &str) -> WireError {
    WireError::new(
        ErrorCode::OperatorError,
        format!("the consumer did not answer: {why}"),
    )
    .with_details(json!({"reason": "no_answer"}))
}

fn invalid(field: &str, msg: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, msg).with_details(json!({"field": field}))
}

fn string<'a>(args: &'a Value, k: &str) -> Result<&'a str, WireError> {
    match args.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(WireError::new(
            ErrorCode::MissingField,
            format!("`{k}` is required"),
        )
        .with_details(json!({"field": k}))),
        Some(_) => Err(invalid(k, format!("`{k}` must be a non-empty string"))),
    }
}

/// Checks `action` and its `value`; the value to deliver.
pub(crate) fn check_request(action: &str, value: Option<&Value>) -> Result<Value, WireError> {
    let value = value.filter(|v| !v.is_null());
    match action {
        "model" => {
            let m = value.and_then(Value::as_str).unwrap_or_default();
            let ok = (1..=MAX_MODEL).contains(&m.len())
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c))
                && !m.starts_with('-');
            if !ok {
                return Err(invalid(
                    "value",
                    format!("`model` takes a model name: 1 to {MAX_MODEL} of A-Z a-z 0-9 . _ : / @ + -, not starting with -"),
                ));
            }
            Ok(json!(m))
        }
        "chat" => {
            let m = value.and_then(Value::as_str).unwrap_or_default();
            if m.is_empty() || m.len() > MAX_CHAT {
                return Err(invalid(
                    "value",
                    format!("`chat` takes a message of 1 to {MAX_CHAT} bytes"),
                ));
            }
            Ok(json!(m))
        }
        "clear_memory" | "new_session" => match value {
            None => Ok(Value::Null),
            Some(_) => Err(invalid("value", format!("`{action}` takes no value"))),
        },
        other => Err(invalid(
            "action",
            format!("unknown action `{other}`: one of {}", ACTIONS.join(", ")),
        )),
    }
}

impl Queue {
    /// `op.queue.control`: checks who asks, delivers, waits for the answer.
    pub(crate) async fn control(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        if let Some(o) = args.as_object() {
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "consumer" | "action" | "value"))
            {
                return Err(invalid(k, format!("unknown field `{k}`")));
            }
        }
        let consumer = string(args, "consumer")?.to_owned();
        let action = string(args, "action")?.to_owned();
        let value = check_request(&action, args.get("value"))?;
        self.may_control(caller, &consumer)?;
        let controls = &self.inner.controls;
        let id = format!("ctl-{}", controls.next.fetch_add(1, Ordering::Relaxed) + 1);
        let rx = {
            let mut p = controls.lock();
            if p.len() >= MAX_PENDING {
                return Err(WireError::new(
                    ErrorCode::Overloaded,
                    "too many control requests wait for consumers; try later",
                ));
            }
            let (tx, rx) = oneshot::channel();
            p.insert(
                id.clone(),
                Waiting {
                    consumer: consumer.clone(),
                    tx,
                },
            );
            rx
        };
        let by = caller.identity.subject.as_str();
        let env = Envelope::new(
            FrameType::System,
            json!({"event": "control", "control": id, "action": action, "value": value, "by": by}),
        );
        // Inspected by the dispatcher already (`need` has content).
        let missing = self
            .inner
            .bus
            .send_private_inspected(std::slice::from_ref(&consumer), env);
        if !missing.is_empty() {
            controls.lock().remove(&id);
            return Err(not_found(&consumer));
        }
        let answer = match tokio::time::timeout(ANSWER_WAIT, rx).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => Err(no_answer("the request was dropped")),
            Err(_) => {
                controls.lock().remove(&id);
                Err(no_answer(&format!(
                    "no answer within {} s",
                    ANSWER_WAIT.as_secs()
                )))
            }
        }?;
        Ok(json!({"control": id, "consumer": consumer, "action": action, "result": answer}))
    }

    /// Admins always; clients when they may manage every task the consumer holds
    /// (and it holds one).
    fn may_control(&self, caller: &Caller, consumer: &str) -> Result<(), WireError> {
        let core = self.lock();
        let c = core
            .consumers
            .get(consumer)
            .ok_or_else(|| not_found(consumer))?;
        if caller.is_admin() {
            return Ok(());
        }
        let refuse = |why: &str| {
            WireError::new(
                ErrorCode::Forbidden,
                format!("you may not control consumer {consumer}: {why}"),
            )
            .with_details(json!({"right": "manage"}))
        };
        if c.held.is_empty() {
            return Err(refuse(
                "it runs no task of yours (only admins control an idle consumer)",
            ));
        }
        for id in &c.held {
            let Some(live) = core.tasks.get(id) else {
                continue;
            };
            let address = crate::address::Address::new(
                &format!("bip-{}", live.rec.spec.bip_id),
                &live.rec.spec.kind,
            )
            .map_err(WireError::from)?;
            let target = Target::Resource(Resource {
                id: live.rec.id.clone(),
                address,
                owner: live.rec.owner.clone(),
                holder: Some(consumer.to_owned()),
            });
            if !caller.may(Right::Manage, &target) {
                return Err(refuse("it runs a task you may not manage"));
            }
        }
        Ok(())
    }

    /// `op.queue.control.ack`: the consumer's answer to a request sent to it.
    pub(crate) fn control_ack(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        let id = string(args, "control")?;
        let mut p = self.inner.controls.lock();
        // Another session's request (or an old one) is not this session's to answer.
        let mine = p.get(id).is_some_and(|w| w.consumer == caller.session);
        let Some(w) = mine.then(|| p.remove(id)).flatten() else {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no control request {id} waits for this session"),
            ));
        };
        drop(p);
        let answer = if args["ok"] == true {
            Ok(args.get("result").cloned().unwrap_or(Value::Null))
        } else {
            let code = match args["code"].as_str() {
                Some("conflict") => ErrorCode::Conflict,
                Some("invalid_field") => ErrorCode::InvalidField,
                _ => ErrorCode::OperatorError,
            };
            let msg: String = args["message"]
                .as_str()
                .unwrap_or("the consumer refused")
                .chars()
                .take(512)
                .collect();
            Err(WireError::new(code, format!("the consumer refused: {msg}")))
        };
        let _ = w.tx.send(answer);
        Ok(json!({"control": id}))
    }
}

fn not_found(consumer: &str) -> WireError {
    WireError::new(
        ErrorCode::NotFound,
        format!("no consumer session {consumer} (see `hive agent list`)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_they_travel() {
        assert_eq!(
            check_request("model", Some(&json!("claude-sonnet-4.5"))).unwrap(),
            "claude-sonnet-4.5"
        );
        for bad in [
            json!(""),
            json!("-x"),
            json!("a b"),
            json!(7),
            json!("a".repeat(129)),
        ] {
            assert!(check_request("model", Some(&bad)).is_err(), "{bad}");
        }
        assert!(check_request("chat", Some(&json!("hi"))).is_ok());
        assert!(check_request("chat", Some(&json!("x".repeat(MAX_CHAT + 1)))).is_err());
        assert!(check_request("clear_memory", None).is_ok());
        assert!(check_request("new_session", Some(&json!("x"))).is_err());
        let e = check_request("reboot", None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(ControlCmd::parse("control.ack"), Some(ControlCmd::Ack));
        assert_eq!(ControlCmd::parse("controls"), None);
    }
}
