//! Identifiers a submitter chooses: the idempotency key, scoped to its owner and room
//! and tied to one body, and the trace id, which belongs to one task.
//!
//! Invariants: two identities never share an idempotency entry; a key seen again
//! within the window with another body is a `conflict`, never a silent duplicate; no
//! trace id names a task id or another task's trace while that task is in memory.

use super::core::Core;
use super::model::TaskSpec;
use crate::error::{ErrorCode, WireError};
use serde_json::json;

/// The key of the idempotency map: a key belongs to its submitter and its room, so
/// another identity cannot take it first and swallow the victim's later submit.
pub(crate) fn idem_scope(owner: &str, bip: u64, key: &str) -> String {
    // NUL cannot occur in a subject from the config or a JWT claim that matters here,
    // nor in a key (its grammar is ASCII without controls).
    format!("{owner}\u{0}{bip}\u{0}{key}")
}

/// A fingerprint of what a submit asks for, to tell a retry (same body) from a reused
/// key (another body). Computed on the inspected spec; recomputed from stored records
/// at recovery, so it need not be stable across builds.
pub(crate) fn fingerprint(spec: &TaskSpec) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(spec).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Whether `s` has the shape of a task id (`t-` and 16 hex digits).
pub(crate) fn is_task_id(s: &str) -> bool {
    s.strip_prefix("t-")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Core {
    /// Refuses a trace id that is another task's: a trace id belongs to one task, and
    /// `show` / `stream` / `hive tail` look tasks up by either.
    pub(crate) fn check_trace(&self, t: &str) -> Result<(), WireError> {
        let taken = is_task_id(t) || self.traces.contains_key(t) || self.tasks.contains_key(t);
        if taken {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!("traceId `{t}` belongs to another task; omit it or use a new one"),
            )
            .with_details(json!({"field": "traceId", "reason": "trace_taken"})));
        }
        Ok(())
    }
}
