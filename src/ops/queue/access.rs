//! Who may run each queue command and send each queue frame: the queue's half of the
//! authority model (`auth::authority` does the checking, `docs/ROLES.md` has the table).
//!
//! Every command name is written once, in [`Cmd::parse`]; its [`Need`] is beside it.
//! A task is a resource: it belongs to the identity that submitted it and lives on its
//! channel `bip-<n>:<kind>`. Reading it needs `subscribe` on that channel; cancelling or
//! retrying it needs ownership (or `manage`, or admin); requeueing it with new args
//! needs ownership and `publish` (or admin); deciding its approval needs `approve`, and
//! never the session holding its lease; submitting needs `publish` on the channel it
//! files to, computed by the same code that files it.
//!
//! Identifiers (idempotency keys, trace ids) are checked here, before the safety layer
//! sees the content: they are refused when they look like a secret, never rewritten,
//! so two different keys cannot collapse into one redacted text.

use super::model::{check_identifier, task_place};
use super::Queue;
use crate::address::Address;
use crate::auth::authority::{Need, On, Resource, Right, ANY_ROLE, EXECUTORS, SUBMITTERS};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use serde_json::{json, Value};

/// An `op.queue.*` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Submit,
    Consume,
    List,
    Show,
    Stream,
    Cancel,
    Retry,
    Approve,
    Approvals,
    Resume,
    Stats,
    DlqList,
    DlqShow,
    DlqRequeue,
    DlqPurge,
}

impl Cmd {
    /// The command called `name` (without `op.queue.`).
    pub(crate) fn parse(name: &str) -> Result<Cmd, WireError> {
        Ok(match name {
            "submit" => Cmd::Submit,
            "consume" => Cmd::Consume,
            "list" => Cmd::List,
            "show" => Cmd::Show,
            "stream" => Cmd::Stream,
            "cancel" => Cmd::Cancel,
            "retry" => Cmd::Retry,
            "approve" => Cmd::Approve,
            "approvals" => Cmd::Approvals,
            "resume" => Cmd::Resume,
            "stats" => Cmd::Stats,
            "dlq.list" => Cmd::DlqList,
            "dlq.show" => Cmd::DlqShow,
            "dlq.requeue" => Cmd::DlqRequeue,
            "dlq.purge" => Cmd::DlqPurge,
            other => {
                return Err(WireError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command `op.queue.{other}`"),
                ))
            }
        })
    }
}

/// The task a command or frame names: `task`, or `trace` where a lookup allows it.
fn task_key(args: &Value, trace_too: bool) -> Result<String, WireError> {
    let get = |k: &str| match args.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(WireError::new(
            ErrorCode::InvalidField,
            format!("`{k}` must be a non-empty string"),
        )
        .with_details(json!({"field": k}))),
    };
    if let Some(t) = get("task")? {
        return Ok(t);
    }
    if trace_too {
        if let Some(t) = get("trace")? {
            return Ok(t);
        }
    }
    Err(
        WireError::new(ErrorCode::MissingField, "`task` is required")
            .with_details(json!({"field": "task"})),
    )
}

/// The BIP a TASK frame's room names: `bip-<n>`, read as the number `n`; `bip-007` is
/// BIP 7, and the permission is checked on `bip-7`, where the task is filed.
pub(crate) fn bip_of_room(room: &str) -> Result<u64, WireError> {
    room.strip_prefix("bip-")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::InvalidField,
                format!("TASK room must be `bip-<number>`, not `{room}`"),
            )
            .with_details(json!({"field": "room"}))
        })
}

/// The channel a task with this BIP and kind lives on.
fn task_address(bip: u64, kind: &str) -> Result<Address, WireError> {
    Address::new(&format!("bip-{bip}"), kind).map_err(WireError::from)
}

impl Queue {
    /// What `op.queue.<name>` needs.
    pub(crate) fn need_of_command(&self, name: &str, args: &Value) -> Result<Need, WireError> {
        let on_task = |trace_too| task_key(args, trace_too).map(On::Resource);
        Ok(match Cmd::parse(name)? {
            Cmd::Submit => {
                let (bip, kind) = task_place(args, None, None)?;
                let trace = match args.get("traceId") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(_) => {
                        return Err(WireError::new(
                            ErrorCode::InvalidField,
                            "`traceId` must be a string",
                        )
                        .with_details(json!({"field": "traceId"})))
                    }
                };
                self.check_identifiers(args, trace)?;
                Need::new(
                    SUBMITTERS,
                    Right::Publish,
                    On::Address(task_address(bip, &kind)?),
                )
                .with_content()
            }
            Cmd::Consume => Need::new(EXECUTORS, Right::None, On::Nothing),
            Cmd::List | Cmd::DlqList | Cmd::Approvals => Need::new(ANY_ROLE, Right::Read, On::Each),
            // Filtered by what the credential may read, like a listing.
            Cmd::Stats => Need::new(ANY_ROLE, Right::Read, On::Each),
            Cmd::Show | Cmd::Stream => Need::new(ANY_ROLE, Right::Read, on_task(true)?),
            Cmd::DlqShow => Need::new(ANY_ROLE, Right::Read, on_task(false)?),
            Cmd::Cancel => Need::new(SUBMITTERS, Right::Manage, on_task(false)?),
            Cmd::Retry | Cmd::DlqRequeue => {
                let edits = !matches!(args.get("args"), None | Some(Value::Null));
                let right = if edits { Right::Edit } else { Right::Manage };
                Need::new(SUBMITTERS, right, on_task(false)?).with_content()
            }
            Cmd::Approve => Need::new(SUBMITTERS, Right::Approve, on_task(false)?).with_content(),
            Cmd::DlqPurge => Need::admin(),
            // The queue checks the lease and that the caller's identity asked.
            Cmd::Resume => Need::new(EXECUTORS, Right::Publish, on_task(false)?),
        })
    }

    /// What a frame the queue claims needs.
    pub(crate) fn need_of_frame(&self, env: &Envelope) -> Result<Need, WireError> {
        let on_task = || task_key(&env.payload, false).map(On::Resource);
        Ok(match env.kind {
            FrameType::Task => {
                let room = env.room.as_deref().unwrap_or_default();
                let (bip, kind) = task_place(
                    &env.payload,
                    Some(bip_of_room(room)?),
                    env.channel.as_deref(),
                )?;
                self.check_identifiers(&env.payload, env.trace_id.as_deref())?;
                Need::new(
                    SUBMITTERS,
                    Right::Publish,
                    On::Address(task_address(bip, &kind)?),
                )
                .with_content()
            }
            FrameType::Heartbeat => Need::open(),
            // A decision: from a person (or a policy), never from the lease holder.
            FrameType::Approval if env.payload.get("lease").is_none() => {
                Need::new(SUBMITTERS, Right::Approve, on_task()?).with_content()
            }
            // The lease holder's progress, approval requests and results: the queue
            // checks the lease itself; the credential must cover the task's channel.
            FrameType::Event | FrameType::Approval | FrameType::Result | FrameType::Error => {
                Need::new(EXECUTORS, Right::Publish, on_task()?).with_content()
            }
            _ => Need::admin(),
        })
    }

    /// Refuses identifiers that break the grammar or look like a secret.
    fn check_identifiers(&self, body: &Value, trace: Option<&str>) -> Result<(), WireError> {
        let key = body.get("idempotencyKey").and_then(Value::as_str);
        for (field, v) in [("idempotencyKey", key), ("traceId", trace)] {
            let Some(v) = v else { continue };
            check_identifier(field, v)?;
            if let Some(rule) = self.inner.bus.secret_in(v) {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    format!(
                        "`{field}` looks like a secret (safety rule `{rule}`); identifiers are stored and shown as they are, so use one that is not"
                    ),
                )
                .with_details(json!({"field": field, "rule": rule})));
            }
        }
        Ok(())
    }

    /// Who owns the task `key` (a task id or a trace id) and where it lives: memory
    /// first, then SQLite.
    pub(crate) async fn resource_of(&self, key: &str) -> Result<Resource, WireError> {
        {
            let core = self.lock();
            let id = core.traces.get(key).map_or(key, String::as_str);
            if let Some(live) = core.tasks.get(id) {
                return Ok(Resource {
                    id: live.rec.id.clone(),
                    address: task_address(live.rec.spec.bip_id, &live.rec.spec.kind)?,
                    owner: live.rec.owner.clone(),
                    holder: live.lease.as_ref().map(|l| l.consumer.clone()),
                });
            }
        }
        let v = self
            .load(key)
            .await?
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {key}")))?;
        let rec: super::TaskRecord =
            serde_json::from_value(v).map_err(super::operator::internal)?;
        Ok(Resource {
            address: task_address(rec.spec.bip_id, &rec.spec.kind)?,
            id: rec.id,
            owner: rec.owner,
            holder: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_read_as_numbers_and_identifiers_have_a_grammar() {
        assert_eq!(bip_of_room("bip-007").unwrap(), 7);
        assert!(bip_of_room("bip-").is_err());
        assert!(bip_of_room("bip-+7").is_err());
        assert!(bip_of_room("bip-99999999999999999999999").is_err());
        assert!(check_identifier("k", "deploy-1.2:x").is_ok());
        assert!(check_identifier("k", "-x").is_err());
        assert!(check_identifier("k", "a b").is_err());
        assert!(check_identifier("k", &"a".repeat(129)).is_err());
        assert!(Cmd::parse("dlq.purge").is_ok() && Cmd::parse("nope").is_err());
    }
}
