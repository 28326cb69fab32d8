//! How a task's state reads to an A2A (Agent2Agent protocol, v1) client: each
//! [`TaskState`] as one of A2A's `TASK_STATE_*` names, for gateways and for the
//! `a2aState` field of `op.queue.show`.
//!
//! The mapping is many-to-one and total: every state of ours has exactly one A2A
//! name, chosen for what an A2A client should *do* on seeing it (wait, answer, or
//! stop), not for the closest word. Two A2A states are never produced:
//! `TASK_STATE_AUTH_REQUIRED` (credentials are checked at the handshake, before any
//! task exists, and a task never waits for one) and `TASK_STATE_REJECTED` (a submit
//! the queue refuses, `overloaded` or `invalid_field`, is an ERROR and creates no
//! task, so there is nothing to report the state of). `docs/AGENTS.md` has the table
//! with the reasons.

use super::model::TaskState;

/// The A2A v1 name of `state`.
///
/// - `submitted`, `queued` -> `TASK_STATE_SUBMITTED`: accepted, no agent works on it
///   yet (a retry waiting out its backoff is queued too).
/// - `leased`, `working` -> `TASK_STATE_WORKING`: a consumer holds the lease.
/// - `waiting_approval` -> `TASK_STATE_INPUT_REQUIRED`: a person must decide before
///   the work goes on; the decision is input, not a credential.
/// - `succeeded` -> `TASK_STATE_COMPLETED`.
/// - `failed` (parked, not idempotent) and `dead` (out of attempts) ->
///   `TASK_STATE_FAILED`: the run is over and failed; a human `retry` or
///   `dlq.requeue` starts a new run, which reads as submitted again. Parked is not
///   `INPUT_REQUIRED`, because no message to the task resumes it.
/// - `cancelled` -> `TASK_STATE_CANCELED` (A2A's spelling).
///
/// ```
/// use hivebus::ops::queue::{a2a::a2a_state, TaskState};
/// assert_eq!(a2a_state(TaskState::WaitingApproval), "TASK_STATE_INPUT_REQUIRED");
/// ```
pub fn a2a_state(state: TaskState) -> &'static str {
    match state {
        TaskState::Submitted | TaskState::Queued => "TASK_STATE_SUBMITTED",
        TaskState::Leased | TaskState::Working => "TASK_STATE_WORKING",
        TaskState::WaitingApproval => "TASK_STATE_INPUT_REQUIRED",
        TaskState::Succeeded => "TASK_STATE_COMPLETED",
        TaskState::Failed | TaskState::Dead => "TASK_STATE_FAILED",
        TaskState::Cancelled => "TASK_STATE_CANCELED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name A2A v1 defines for a task's state (besides `UNSPECIFIED`).
    const A2A: [&str; 8] = [
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
        "TASK_STATE_INPUT_REQUIRED",
        "TASK_STATE_AUTH_REQUIRED",
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
        "TASK_STATE_CANCELED",
        "TASK_STATE_REJECTED",
    ];

    #[test]
    fn every_state_maps_to_an_a2a_state_and_final_states_stay_final() {
        for s in TaskState::ALL {
            let a = a2a_state(s);
            assert!(A2A.contains(&a), "{s:?} -> {a}");
            // A2A's terminal states are exactly our terminal ones; input-required is
            // an interruption, not an end.
            let a2a_final = matches!(
                a,
                "TASK_STATE_COMPLETED"
                    | "TASK_STATE_FAILED"
                    | "TASK_STATE_CANCELED"
                    | "TASK_STATE_REJECTED"
            );
            assert_eq!(a2a_final, s.is_terminal(), "{s:?} -> {a}");
        }
    }

    #[test]
    fn the_mapping_is_exactly_the_documented_table() {
        let table = [
            ("submitted", "TASK_STATE_SUBMITTED"),
            ("queued", "TASK_STATE_SUBMITTED"),
            ("leased", "TASK_STATE_WORKING"),
            ("working", "TASK_STATE_WORKING"),
            ("waiting_approval", "TASK_STATE_INPUT_REQUIRED"),
            ("succeeded", "TASK_STATE_COMPLETED"),
            ("failed", "TASK_STATE_FAILED"),
            ("dead", "TASK_STATE_FAILED"),
            ("cancelled", "TASK_STATE_CANCELED"),
        ];
        assert_eq!(table.len(), TaskState::ALL.len());
        for (ours, theirs) in table {
            let s = TaskState::parse(ours).unwrap();
            assert_eq!(a2a_state(s), theirs, "{ours}");
        }
    }
}
