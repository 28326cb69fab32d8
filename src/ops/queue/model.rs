//! The task model: what a submitter sends ([`TaskSpec`], validated here, once), the
//! lifecycle states ([`TaskState`]) with every legal transition in one table, and the
//! record the queue keeps and stores ([`TaskRecord`]).
//!
//! The transition table is the single source of truth: the queue core asks
//! [`TaskState::can_move_to`] before every state change and refuses the change with
//! `conflict` otherwise, so an illegal move cannot happen by accident elsewhere.

use crate::error::{ErrorCode, WireError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest accepted kind, repo, branch or idempotency key, in bytes.
pub const MAX_NAME: usize = 256;

/// Task priority; declared from lowest to highest so that `Ord` ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The default.
    Normal,
    /// Core work: before normal.
    Core,
    /// Before everything.
    Critical,
}

impl Priority {
    /// Index 0 (normal) .. 2 (critical).
    pub fn rank(self) -> usize {
        self as usize
    }

    /// The priority of rank `r` (clamped to critical).
    pub fn from_rank(r: usize) -> Priority {
        match r {
            0 => Priority::Normal,
            1 => Priority::Core,
            _ => Priority::Critical,
        }
    }

    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Core => "core",
            Priority::Critical => "critical",
        }
    }
}

/// Where a task is in its life. See `docs/QUEUE.md` for the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, not yet durable.
    Submitted,
    /// Durable and waiting for a consumer (possibly in backoff).
    Queued,
    /// Leased to a consumer that has not reported yet.
    Leased,
    /// The consumer reported progress.
    Working,
    /// The consumer asked for an approval and waits for it.
    WaitingApproval,
    /// Finished with a RESULT `ok`. Terminal.
    Succeeded,
    /// An attempt of a non-idempotent task failed: parked until a human `retry`s it or
    /// cancels it. Terminal unless retried.
    Failed,
    /// Out of attempts; in the dead-letter store. Terminal unless requeued.
    Dead,
    /// Cancelled by a client. Terminal.
    Cancelled,
}

impl TaskState {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Queued => "queued",
            TaskState::Leased => "leased",
            TaskState::Working => "working",
            TaskState::WaitingApproval => "waiting_approval",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Every state, in the order of a task's life.
    pub const ALL: [TaskState; 9] = [
        TaskState::Submitted,
        TaskState::Queued,
        TaskState::Leased,
        TaskState::Working,
        TaskState::WaitingApproval,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Dead,
        TaskState::Cancelled,
    ];

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// No consumer will touch the task again unless a human acts.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Dead | TaskState::Cancelled
        )
    }

    /// A consumer holds a lease on the task.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            TaskState::Leased | TaskState::Working | TaskState::WaitingApproval
        )
    }

    /// The transition table: every legal move, and only those.
    pub fn can_move_to(self, to: TaskState) -> bool {
        use TaskState::*;
        match (self, to) {
            (Submitted, Queued | Cancelled) => true,
            (Queued, Leased | Cancelled) => true,
            // A retry after a failed attempt or an expired lease goes back to queued.
            (Leased | Working | WaitingApproval, Queued) => true,
            (Leased | Working | WaitingApproval, Working | WaitingApproval) => true,
            (Leased | Working | WaitingApproval, Succeeded | Failed | Dead | Cancelled) => true,
            // Human actions: retry a parked task, requeue a dead one, cancel a parked one.
            (Failed, Queued | Cancelled) => true,
            (Dead, Queued) => true,
            _ => false,
        }
    }

    /// `Err(conflict)` unless `self -> to` is legal.
    ///
    /// # Errors
    /// `conflict` naming both states.
    pub fn check(self, to: TaskState) -> Result<(), WireError> {
        if self.can_move_to(to) {
            Ok(())
        } else {
            Err(WireError::new(
                ErrorCode::Conflict,
                format!("a {} task cannot become {}", self.as_str(), to.as_str()),
            )
            .with_details(json!({"state": self.as_str(), "wanted": to.as_str()})))
        }
    }
}

/// The `conflict` of a `retry` (`from` = failed) or `dlq.requeue` (`from` = dead) on
/// a task that is `is`: the two ways back into the queue are easy to confuse, so the
/// message names the other one when it is the right one.
pub(crate) fn requeue_conflict(id: &str, is: TaskState, from: TaskState) -> WireError {
    let hint = match (is, from) {
        (TaskState::Dead, TaskState::Failed) => format!(
            "; it is in the dead-letter store: use `hive dlq requeue {id}` (op.queue.dlq.requeue)"
        ),
        (TaskState::Failed, TaskState::Dead) => {
            format!("; it is parked, not dead: use `hive task retry {id}` (op.queue.retry)")
        }
        _ => String::new(),
    };
    WireError::new(
        ErrorCode::Conflict,
        format!("task {id} is {}, not {}{hint}", is.as_str(), from.as_str()),
    )
    .with_details(json!({"state": is.as_str()}))
}

/// The fields a submit (TASK payload or `op.queue.submit` arguments) may carry.
/// `max_attempts` is the old spelling of `maxAttempts`, kept for one release.
pub const SUBMIT_FIELDS: [&str; 12] = [
    "kind",
    "bipId",
    "args",
    "repo",
    "branch",
    "idempotencyKey",
    "priority",
    "maxAttempts",
    "max_attempts",
    "timeout",
    "idempotent",
    "traceId",
];

/// What a submitter asks for, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Task kind; also the channel name (`bip-<id>:<kind>`).
    pub kind: String,
    /// Free-form arguments for the consumer.
    pub args: Value,
    /// Repository the task works on.
    pub repo: String,
    /// Branch, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Deduplication key; a repeat within the window returns the original task.
    pub idempotency_key: String,
    /// Priority.
    pub priority: Priority,
    /// The BIP this task belongs to; its room is `bip-<id>`.
    pub bip_id: u64,
    /// Attempts before dead-lettering; `None`: the kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Lease (visibility timeout) in milliseconds; `None`: the kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Whether re-running is harmless; `false` parks failures for a human.
    pub idempotent: bool,
}

impl TaskSpec {
    /// Parses a submit body: `{kind, args?, repo?, branch?, idempotencyKey, priority?,
    /// bipId, max_attempts?, timeout?, idempotent?}`. `timeout` is milliseconds or a
    /// humantime string (`"30s"`). `bip` defaults to `bip_from_room`, `kind` to
    /// `kind_from_channel`, and each must agree with them when both are given.
    ///
    /// # Errors
    /// `missing_field` / `invalid_field` naming the field.
    pub fn parse(
        body: &Value,
        bip_from_room: Option<u64>,
        kind_from_channel: Option<&str>,
    ) -> Result<TaskSpec, WireError> {
        let obj = body
            .as_object()
            .ok_or_else(|| invalid("payload", "an object"))?;
        // Strict, as every command's arguments (PROTOCOL.md, section 8): a misspelt
        // field (`trace_id` for `traceId`) is refused, not silently dropped.
        if let Some(k) = obj.keys().find(|k| !SUBMIT_FIELDS.contains(&k.as_str())) {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                format!(
                    "unknown field `{k}` in a task; known: {}",
                    SUBMIT_FIELDS.join(", ")
                ),
            )
            .with_details(json!({"field": k})));
        }
        let text = |k: &str| -> Result<Option<String>, WireError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME => {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(invalid(k, &format!("a string of 1..={MAX_NAME} bytes"))),
            }
        };
        let (bip_id, kind) = task_place(body, bip_from_room, kind_from_channel)?;
        let idempotency_key = text("idempotencyKey")?.ok_or_else(|| missing("idempotencyKey"))?;
        check_identifier("idempotencyKey", &idempotency_key)?;
        let priority = match obj.get("priority") {
            None | Some(Value::Null) => Priority::Normal,
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| invalid("priority", "one of critical, core, normal"))?,
        };
        let max_attempts = match obj.get("max_attempts").or_else(|| obj.get("maxAttempts")) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=100) => Some(n as u32),
                _ => return Err(invalid("max_attempts", "an integer in 1..=100")),
            },
        };
        let timeout_ms = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                humantime::parse_duration(s)
                    .map_err(|_| invalid("timeout", "a duration such as \"30s\""))?
                    .as_millis() as u64,
            ),
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| invalid("timeout", "milliseconds"))?,
            ),
        };
        if let Some(t) = timeout_ms {
            if !(10..=86_400_000).contains(&t) {
                return Err(invalid("timeout", "between 10 ms and 24 h"));
            }
        }
        let idempotent = match obj.get("idempotent") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("idempotent", "a boolean")),
        };
        Ok(TaskSpec {
            kind,
            args: obj.get("args").cloned().unwrap_or_else(|| json!({})),
            repo: text("repo")?.unwrap_or_else(|| ".".to_owned()),
            branch: text("branch")?,
            idempotency_key,
            priority,
            bip_id,
            max_attempts,
            timeout_ms,
            idempotent,
        })
    }

    /// The task's channel: `bip-<id>:<kind>`.
    pub fn address(&self) -> String {
        format!("bip-{}:{}", self.bip_id, self.kind)
    }
}

/// Where a submit body files its task: `(bip, kind)`, from `bipId` (or `args.bipId`)
/// and `kind`, which must agree with the room's BIP and the channel when both are
/// given. Read before anything else of the body, for the permission check, by the same
/// code that [`TaskSpec::parse`] uses, so the room checked is the room written.
///
/// # Errors
/// `missing_field` / `invalid_field` naming `kind` or `bipId`.
pub fn task_place(
    body: &Value,
    bip_from_room: Option<u64>,
    kind_from_channel: Option<&str>,
) -> Result<(u64, String), WireError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("payload", "an object"))?;
    let kind = match (obj.get("kind"), kind_from_channel) {
        (None | Some(Value::Null), Some(c)) => c.to_owned(),
        (None | Some(Value::Null), None) => return Err(missing("kind")),
        (Some(Value::String(k)), Some(c)) if k != c => {
            return Err(invalid("kind", &format!("equal to the channel `{c}`")))
        }
        (Some(Value::String(k)), _) if !k.is_empty() && k.len() <= MAX_NAME => k.clone(),
        (Some(_), _) => {
            return Err(invalid(
                "kind",
                &format!("a string of 1..={MAX_NAME} bytes"),
            ))
        }
    };
    crate::address::Address::new("bip-0", &kind)
        .map_err(|_| invalid("kind", "a valid channel name ([a-z0-9][a-z0-9._-]*)"))?;
    let bip_field = obj
        .get("bipId")
        .or_else(|| obj.get("args").and_then(|a| a.get("bipId")));
    let bip_id = match (bip_field, bip_from_room) {
        (Some(v), room) => {
            let b = v
                .as_u64()
                .ok_or_else(|| invalid("bipId", "an unsigned integer"))?;
            if room.is_some_and(|r| r != b) {
                return Err(invalid("bipId", "equal to the room's BIP"));
            }
            b
        }
        (None, Some(r)) => r,
        (None, None) => return Err(missing("bipId")),
    };
    Ok((bip_id, kind))
}

/// Longest identifier (idempotency key, trace id), in bytes: the envelope's limit.
pub const MAX_IDENTIFIER: usize = crate::frame::MAX_ID_BYTES;

/// Checks an identifier's grammar: 1..=128 bytes of `[A-Za-z0-9._:/@+=-]`, starting
/// with a letter or digit. Identifiers are matched exactly and become parts of keys,
/// so they are never rewritten: one that looks like a secret is refused by the queue
/// (see `operator`), not redacted.
///
/// # Errors
/// `invalid_field` naming `field`.
pub fn check_identifier(field: &str, v: &str) -> Result<(), WireError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._:/@+=-".contains(c);
    let first_ok = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if v.len() > MAX_IDENTIFIER || !first_ok || !v.chars().all(ok_char) {
        return Err(invalid(
            field,
            &format!("1..={MAX_IDENTIFIER} bytes of [A-Za-z0-9._:/@+=-], starting with a letter or digit"),
        ));
    }
    Ok(())
}

/// The owner of a record written before tasks had owners: local sessions without a
/// credential, which is all there was.
fn anonymous() -> String {
    "anonymous".to_owned()
}

fn invalid(field: &str, want: &str) -> WireError {
    WireError::new(ErrorCode::InvalidField, format!("`{field}` must be {want}"))
        .with_details(json!({"field": field}))
}

fn missing(field: &str) -> WireError {
    WireError::new(ErrorCode::MissingField, format!("`{field}` is required"))
        .with_details(json!({"field": field}))
}

/// One state change of a task, and why: an entry of [`TaskRecord::history`], the
/// task's own audit trail. (Channel history, the replayable frames of an address, is
/// `bus::HistoryPage` and unrelated.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// New state.
    pub state: TaskState,
    /// Attempt number at that moment.
    pub attempt: u32,
    /// Why (consumer session, error summary, human command, ...).
    pub note: String,
}

/// The former name of [`Transition`].
#[deprecated(note = "renamed `Transition`: a task's state change, not channel history")]
pub type HistoryEntry = Transition;

/// Everything the queue keeps about one task; stored as JSON in SQLite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// `t-` and 16 hex digits.
    pub id: String,
    /// Ties the task's frames together; belongs to this task only.
    pub trace_id: String,
    /// The subject of the identity that submitted it (`anonymous` for local sessions
    /// without a credential).
    #[serde(default = "anonymous")]
    pub owner: String,
    /// What was asked.
    pub spec: TaskSpec,
    /// Where it is.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Global submission order, for FIFO within a priority.
    pub seq: u64,
    /// Submission time, wall-clock ms.
    pub created_ms: u64,
    /// Last change, wall-clock ms.
    pub updated_ms: u64,
    /// The RESULT payload once succeeded (or the last failure once failed or dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Every state change.
    pub history: Vec<Transition>,
}

impl TaskRecord {
    /// Appends a history line and moves to `to`, when legal.
    ///
    /// # Errors
    /// `conflict` when the transition table forbids the move.
    pub fn advance(&mut self, to: TaskState, now_ms: u64, note: String) -> Result<(), WireError> {
        self.state.check(to)?;
        self.state = to;
        self.updated_ms = now_ms;
        self.history.push(Transition {
            at_ms: now_ms,
            state: to,
            attempt: self.attempt,
            note,
        });
        Ok(())
    }

    /// The summary a submitter or `task list` sees (camelCase, see `views`).
    pub fn summary(&self) -> Value {
        super::views::summary(self, self.state)
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    const ALL: [TaskState; 9] = TaskState::ALL;

    #[test]
    fn the_transition_table_allows_exactly_the_documented_moves() {
        let legal: &[(TaskState, TaskState)] = &[
            (Submitted, Queued),
            (Submitted, Cancelled),
            (Queued, Leased),
            (Queued, Cancelled),
            (Leased, Queued),
            (Working, Queued),
            (WaitingApproval, Queued),
            (Leased, Working),
            (Leased, WaitingApproval),
            (Working, Working),
            (Working, WaitingApproval),
            (WaitingApproval, Working),
            (WaitingApproval, WaitingApproval),
            (Leased, Leased),
            (Failed, Queued),
            (Failed, Cancelled),
            (Dead, Queued),
        ];
        let mut n = 0;
        for from in ALL {
            for to in ALL {
                let expected = legal.contains(&(from, to))
                    || (from.is_running() && matches!(to, Succeeded | Failed | Dead | Cancelled));
                // Leased -> Leased is not a move (a lease renewal does not change state).
                let expected = expected && !(from == Leased && to == Leased);
                assert_eq!(from.can_move_to(to), expected, "{from:?} -> {to:?}");
                n += usize::from(expected);
            }
        }
        assert_eq!(n, 28);
        for t in [Succeeded, Cancelled] {
            assert!(ALL.iter().all(|to| !t.can_move_to(*to)), "{t:?} is final");
        }
    }

    #[test]
    fn spec_parsing_reports_the_faulty_field() {
        let e = TaskSpec::parse(&json!({"kind": "x"}), None, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingField);
        let e = TaskSpec::parse(
            &json!({"kind": "x", "bipId": 1, "idempotencyKey": "k", "priority": "urgent"}),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.details.unwrap()["field"], "priority");
        let e = TaskSpec::parse(&json!({"idempotencyKey": "k"}), Some(2), Some("Bad Kind"))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        let s = TaskSpec::parse(
            &json!({"idempotencyKey": "k", "timeout": "2s", "priority": "core"}),
            Some(43),
            Some("verify_bip"),
        )
        .unwrap();
        assert_eq!(s.address(), "bip-43:verify_bip");
        assert_eq!(
            (s.timeout_ms, s.priority, s.idempotent),
            (Some(2000), Priority::Core, true)
        );
        let e = TaskSpec::parse(
            &json!({"idempotencyKey": "k", "bipId": 3}),
            Some(2),
            Some("a"),
        )
        .unwrap_err();
        assert_eq!(e.details.unwrap()["field"], "bipId");
    }

    #[test]
    fn priorities_rank_critical_over_core_over_normal() {
        assert!(Priority::Critical > Priority::Core && Priority::Core > Priority::Normal);
        assert_eq!(Priority::from_rank(7), Priority::Critical);
    }
}
