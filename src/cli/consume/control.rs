//! Consumer control as `hive consume` applies it (docs/CONSUME.md, "Control"): the
//! broker delivered an `op.queue.control` request (who may send one was checked
//! there); this maps it onto the agents.
//!
//! - `model`: becomes the `{model}` of the template (and `HIVE_MODEL`) for every
//!   agent started from now on: the next attempt, or a restart. Running agents keep
//!   theirs.
//! - `clear_memory`, `new_session`: every running agent is ended (its group, as at
//!   any end) and started again in the same attempt, lease and worktree, with
//!   `HIVE_CONTROL` naming why. Refused (`conflict`) for an agent that waits for an
//!   approval: its pending decision would otherwise reach the new agent.
//! - `chat`: one line `{"chat": {"message", "by"}}` on the stdin of every running
//!   agent that speaks the JSON-lines protocol (it printed a protocol line), refused
//!   (`conflict`) when none does, or while one waits for an approval decision.
//!
//! Each running attempt registers a channel in [`Attempts`] and answers each request
//! it is given; the control is acknowledged when every attempt has answered.

use super::Ctx;
use hivebus::consumer::Control;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// What an attempt is asked to do.
pub(super) enum Order {
    /// End the agent and start it again (`clear_memory` or `new_session`).
    Restart(&'static str),
    /// Write this chat line to the agent's stdin.
    Chat(String),
}

/// An order and where its outcome goes: `Ok` done, `Err` why not.
pub(super) struct Asked {
    pub(super) order: Order,
    pub(super) done: oneshot::Sender<Result<(), String>>,
}

/// The running attempts, by task.
#[derive(Default)]
pub(super) struct Attempts {
    map: Mutex<HashMap<String, mpsc::Sender<Asked>>>,
}

impl Attempts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Asked>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a running attempt; its orders arrive on the returned channel.
    pub(super) fn join(&self, task: &str) -> mpsc::Receiver<Asked> {
        let (tx, rx) = mpsc::channel(4);
        self.lock().insert(task.to_owned(), tx);
        rx
    }

    /// The attempt of `task` ended.
    pub(super) fn leave(&self, task: &str) {
        self.lock().remove(task);
    }
}

/// Applies one control request and answers it.
pub(super) async fn apply(c: Control, ctx: std::sync::Arc<Ctx>) {
    let ctx = &*ctx;
    let r = match c.action.as_str() {
        "model" => match c.value.as_str() {
            Some(m) => {
                *ctx.model.write().unwrap_or_else(|p| p.into_inner()) = Some(m.to_owned());
                Ok(json!({"model": m, "applies": "to agents started from now on"}))
            }
            None => Err("`model` needs a name".to_owned()),
        },
        "clear_memory" | "new_session" => {
            let why = if c.action == "clear_memory" {
                "clear_memory"
            } else {
                "new_session"
            };
            order_all(ctx, || Order::Restart(why))
                .await
                .map(|n| json!({"restarted": n}))
        }
        "chat" => {
            let line = json!({"chat": {"message": c.value, "by": c.by}}).to_string();
            match order_all(ctx, || Order::Chat(line.clone())).await {
                Ok(0) => Err("no running agent to chat with".to_owned()),
                other => other.map(|n| json!({"delivered": n})),
            }
        }
        other => Err(format!("this consumer does not know the action `{other}`")),
    };
    let sent = match r {
        Ok(v) => c.ack(v).await,
        Err(why) => c.refuse("conflict", &why).await,
    };
    if let Err(e) = sent {
        eprintln!("hive: cannot answer a control request: {e}");
    }
}

/// Gives every running attempt an order; how many carried it out, or the first
/// refusal. Attempts that end meanwhile do not count.
async fn order_all(ctx: &Ctx, make: impl Fn() -> Order) -> Result<u64, String> {
    let targets: Vec<mpsc::Sender<Asked>> = ctx.attempts.lock().values().cloned().collect();
    let mut waits = Vec::new();
    for t in targets {
        let (done, rx) = oneshot::channel();
        if t.send(Asked {
            order: make(),
            done,
        })
        .await
        .is_ok()
        {
            waits.push(rx);
        }
    }
    let mut n = 0;
    let mut refused: Option<String> = None;
    for w in waits {
        match w.await {
            Ok(Ok(())) => n += 1,
            Ok(Err(why)) => refused = refused.or(Some(why)),
            Err(_) => {}
        }
    }
    match refused {
        // Some carried it out, some could not: the sender hears both.
        Some(why) if n > 0 => Err(format!("{why} (done for {n} other agent(s))")),
        Some(why) => Err(why),
        None => Ok(n),
    }
}
