//! After the commit: one task answers every frame a commit made durable.
//!
//! A TASK frame (submit) or a consumer's RESULT / ERROR is answered only once the
//! change it made is durable. Instead of parking a task on one ticket per frame, the
//! operator hands the store a callback ([`Store::then`](crate::store::Store::then))
//! that forwards a [`Committed`] note to this task. The writer runs a commit's
//! callbacks back to back, so the task wakes about once per commit, takes the queue
//! lock once for all of that commit's submits, dispatches once, and then sends the
//! answers: one wake-up, one lock and one scan of the consumers per commit instead
//! of one per frame.

use super::core::Core;
use super::Queue;
use crate::error::WireError;
use serde_json::Value;
use std::sync::Weak;
use tokio::sync::mpsc;

/// Most notes handled under one lock; the rest wait for the next turn.
const MAX_NOTES: usize = 4096;

/// What a commit made durable, and who waits for the answer.
pub(crate) enum Committed {
    /// A submit that created task `id`; `reply` goes to `re` once durable.
    Submit {
        id: String,
        reply: Value,
        to: Answer,
        failed: Option<String>,
    },
    /// A frame whose answer `out` waited for the commit (a consumer's RESULT or ERROR
    /// the queue took; refusals are answered at once).
    Answer {
        out: Value,
        to: Answer,
        failed: Option<String>,
    },
}

/// Where an answer goes: the session and the id of the frame it answers.
pub(crate) struct Answer {
    pub(crate) session: String,
    pub(crate) re: Option<String>,
}

fn commit_error(e: &str) -> WireError {
    super::operator::internal(format_args!("commit failed: {e}"))
}

/// Drains notes until every sender is gone (the queue and the store's callbacks).
/// Holds the queue only weakly between turns, so dropping the queue ends it.
pub(crate) async fn run(inner: Weak<super::Inner>, mut rx: mpsc::UnboundedReceiver<Committed>) {
    let mut notes = Vec::with_capacity(256);
    let mut answers = Vec::with_capacity(256);
    while rx.recv_many(&mut notes, MAX_NOTES).await > 0 {
        let Some(me) = inner.upgrade() else { return };
        let queue = Queue { inner: me };
        {
            let mut core = queue.lock();
            for note in notes.drain(..) {
                answers.push(settle(&mut core, note));
            }
            core.dispatch();
        }
        for (to, out) in answers.drain(..) {
            queue.answer(&to.session, to.re, out);
        }
    }
}

/// Applies one note under the lock; returns the answer to send after it.
fn settle(core: &mut Core, note: Committed) -> (Answer, Result<Value, WireError>) {
    match note {
        Committed::Submit {
            id,
            reply,
            to,
            failed: None,
        } => {
            core.mark_durable(&id);
            (to, Ok(reply))
        }
        Committed::Submit {
            id,
            to,
            failed: Some(e),
            ..
        } => {
            core.submit_failed(&id);
            (to, Err(commit_error(&e)))
        }
        Committed::Answer { out, to, failed } => match failed {
            Some(e) => (to, Err(commit_error(&e))),
            None => (to, Ok(out)),
        },
    }
}
