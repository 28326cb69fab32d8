//! One leased attempt, start to end: prepare the directory, render the command,
//! start the agent, relay its output and its protocol lines, answer its approval
//! requests (on stdin, or to a waiting `hive exec` through the attempt's gate), and
//! end it with exactly one outcome. A control order may end the agent and start it
//! again inside the same attempt (same lease, worktree, gate and time limit).
//!
//! The loop watches, at once: the lease (a cancel, an expiry or a lost connection
//! ends the attempt and kills the agent's group, with nothing sent: the queue has
//! already moved on), the drain deadline, the attempt's time limit, a pending
//! approval (one at a time, whoever asked), control orders, `hive exec` requests,
//! the agent's lines and its exit. An agent that exits is given
//! [`LINGER`] for its last lines to arrive (a grandchild holding the pipe open would
//! otherwise keep it waiting for ever).

use super::agent::{Agent, Line, Stream};
use super::control::{Asked, Order};
use super::gate::{Ask, Gate};
use super::output::Relay;
use super::protocol::{decision_line, deny, protocol, Proto};
use super::template::Fields;
use super::{workdir, Ctx};
use hivebus::client::ClientError;
use hivebus::consumer::{Lease, LeaseLoss};
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long the last lines of an exited agent may take to arrive.
const LINGER: Duration = Duration::from_millis(500);

/// How an attempt ended, before the queue is told.
enum Outcome {
    /// The agent's `{"result": ...}` line.
    Result { ok: bool, payload: Value },
    /// The agent exited without a result.
    Exited(ExitStatus),
    /// The time limit passed.
    Timeout(Duration),
    /// The lease is gone (cancelled, expired, disconnected).
    Lost(LeaseLoss),
    /// `hive consume` is stopping and the drain time is up.
    Aborted,
    /// A control asked for a fresh agent (`clear_memory`, `new_session`); told
    /// through the sender once the old one is gone.
    Restart(&'static str, oneshot::Sender<Result<(), String>>),
}

/// What the loop reads besides the lease: the agent's lines, `hive exec` requests,
/// control orders.
struct Chans<'c> {
    lines: &'c mut mpsc::Receiver<Line>,
    asks: &'c mut mpsc::Receiver<Ask>,
    orders: &'c mut mpsc::Receiver<Asked>,
}

/// Where a pending approval's decision goes.
enum Asker {
    /// The agent's stdin, echoing the `id` of its request.
    Agent(Option<Value>),
    /// A waiting `hive exec`.
    Exec(oneshot::Sender<String>),
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<Option<Value>, ClientError>> + Send + 'a>>;

/// Runs `lease` to its end; returns what happened, for the report line.
pub(super) async fn run(lease: Lease, ctx: Arc<Ctx>) -> (String, Value) {
    let task = lease.task.clone();
    let work =
        match workdir::prepare(&lease.payload, &task, &ctx.dir, &ctx.roots, &ctx.git_lock).await {
            Ok(w) => w,
            Err(e) => return refuse(lease, &e).await,
        };
    // The `hive exec` gate lives as long as the attempt, across restarts.
    let (gate, mut asks) = match Gate::open() {
        Ok(g) => g,
        Err(e) => {
            workdir::cleanup(&work, &ctx.git_lock).await;
            return refuse(lease, &format!("cannot open the `hive exec` gate: {e}")).await;
        }
    };
    let limit = own_limit(&lease.payload).map_or(ctx.timeout, |t| t.min(ctx.timeout));
    let deadline = Instant::now() + limit;
    let mut orders = ctx.attempts.join(&task);
    let mut relay = Relay::default();
    let mut restart: Option<&'static str> = None;
    let (outcome, status) = loop {
        // Rendered at each start: a `model` control applies to a restarted agent.
        let model = ctx.model.read().unwrap_or_else(|p| p.into_inner()).clone();
        let fields = Fields {
            payload: &lease.payload,
            trace_id: &lease.trace_id,
            branch: &work.branch,
            model: model.as_deref(),
        };
        let argv = match ctx.template.render(&fields) {
            Ok(a) => a,
            Err(e) => {
                ctx.attempts.leave(&task);
                workdir::cleanup(&work, &ctx.git_lock).await;
                return refuse(lease, &format!("cannot build the agent command: {e}")).await;
            }
        };
        let mut env = ctx.env.clone();
        let mut set = |k: &str, v: String| env.push((k.into(), v.into()));
        set("HIVE_TASK", task.clone());
        set("HIVE_TRACE_ID", lease.trace_id.clone());
        set("HIVE_LEASE", lease.lease.clone());
        set("HIVE_ATTEMPT", lease.attempt.to_string());
        set("HIVE_KIND", lease.kind.clone());
        set("HIVE_BIP", lease.payload["bipId"].to_string());
        set("HIVE_BRANCH", work.branch.clone());
        set("HIVE_WORKTREE", work.cwd.to_string_lossy().into_owned());
        if let Some(m) = &model {
            set("HIVE_MODEL", m.clone());
        }
        if let Some(why) = restart {
            set("HIVE_CONTROL", why.to_owned());
        }
        if let Some(bin) = &ctx.hive_bin {
            set("HIVE_BIN", bin.to_string_lossy().into_owned());
        }
        for (k, v) in gate.env() {
            set(k, v);
        }
        let (mut agent, mut lines) = match Agent::spawn(&argv, &work.cwd, &env) {
            Ok(a) => a,
            Err(e) => {
                ctx.attempts.leave(&task);
                workdir::cleanup(&work, &ctx.git_lock).await;
                return refuse(lease, &e).await;
            }
        };
        let _ = lease
            .event_payload(json!({
                "stage": if restart.is_some() { "restarted" } else { "started" },
                "message": format!("agent `{}` started, pid {}", argv[0], agent.pgid()),
                "pid": agent.pgid(),
                "model": model,
                "control": restart,
                "worktree": work.worktree().map(|w| w.to_string_lossy().into_owned()),
            }))
            .await;
        let mut chans = Chans {
            lines: &mut lines,
            asks: &mut asks,
            orders: &mut orders,
        };
        let outcome = drive(
            &lease, &work.cwd, &mut agent, &mut chans, &ctx, deadline, limit, &mut relay,
        )
        .await;
        if let Outcome::Result { .. } = outcome {
            let grace = Instant::now() + ctx.grace;
            last_lines(&lease, &mut agent, &mut lines, &mut relay, grace).await;
            let _ = tokio::time::timeout_at(grace, agent.wait()).await;
        }
        // Whatever the outcome, nothing the agent started outlives it.
        let status = agent.terminate(ctx.grace).await;
        match outcome {
            Outcome::Restart(why, done) => {
                restart = Some(why);
                let _ = done.send(Ok(()));
            }
            o => break (o, status),
        }
    };
    ctx.attempts.leave(&task);
    drop(gate);
    if !matches!(outcome, Outcome::Lost(_) | Outcome::Aborted) {
        if let Some(note) = relay.limiter.flush() {
            let _ = lease.event_payload(note).await;
        }
    }
    let (end, summary) = match outcome {
        Outcome::Result { ok, payload } => {
            let summary = payload["summary"].as_str().unwrap_or_default().to_owned();
            let sent = if ok {
                lease
                    .complete(&summary, payload.get("artifacts").cloned())
                    .await
            } else {
                lease.fail(&summary).await
            };
            (if ok { "ok" } else { "fail" }, with_send(summary, sent))
        }
        Outcome::Exited(st) => {
            let s = format!(
                "the agent exited with {} without a result{}",
                describe(st),
                relay.tail.render()
            );
            let sent = lease.fail(&s).await;
            ("fail", with_send(s, sent))
        }
        Outcome::Timeout(d) => {
            let s = format!(
                "timed out after {}: the agent's process group was killed ({}){}",
                humantime::format_duration(d),
                describe(status),
                relay.tail.render()
            );
            let sent = lease.fail(&s).await;
            ("fail", with_send(s, sent))
        }
        Outcome::Lost(loss) => {
            let what = match loss {
                LeaseLoss::Cancelled => "cancelled",
                LeaseLoss::Expired => "lease expired",
                LeaseLoss::Disconnected => "disconnected",
            };
            (
                what,
                format!(
                    "the agent's process group was killed ({})",
                    describe(status)
                ),
            )
        }
        // A restart starts the agent again and never ends the loop above; matched
        // here only to stay total.
        Outcome::Aborted | Outcome::Restart(..) => {
            let s = "hive consume stopped before the task finished (drain time up)";
            let _ = lease.error("abandoned", s, json!({})).await;
            ("abandoned", s.to_owned())
        }
    };
    // After the queue heard: removing a large worktree takes a while.
    if !ctx.keep_worktrees {
        workdir::cleanup(&work, &ctx.git_lock).await;
    }
    (end.to_owned(), json!({"task": task, "summary": summary}))
}

/// After a result line, what the agent still prints (its stderr is read by another
/// thread, so a line written before the result may arrive after it) is streamed
/// until its outputs close, [`LINGER`] after it exits (a grandchild may hold them),
/// or `until`; protocol lines are ignored.
async fn last_lines(
    lease: &Lease,
    agent: &mut Agent,
    lines: &mut mpsc::Receiver<Line>,
    relay: &mut Relay,
    mut until: Instant,
) {
    let mut exited = false;
    loop {
        let l = tokio::select! {
            l = lines.recv() => l,
            _ = agent.wait(), if !exited => {
                exited = true;
                until = until.min(Instant::now() + LINGER);
                continue;
            }
            _ = tokio::time::sleep_until(until) => None,
        };
        let Some(l) = l else { return };
        if l.stream == Stream::Stdout && !l.cut && protocol(&l.text).is_some() {
            continue;
        }
        relay.tail.push(&l.text);
        for p in relay.limiter.admit(&l) {
            let _ = lease.event_payload(p).await;
        }
    }
}

/// The attempt fails before an agent ran.
async fn refuse(lease: Lease, why: &str) -> (String, Value) {
    let task = lease.task.clone();
    let sent = lease.fail(why).await;
    (
        "fail".to_owned(),
        json!({"task": task, "summary": with_send(why.to_owned(), sent)}),
    )
}

fn with_send(summary: String, sent: Result<(), ClientError>) -> String {
    match sent {
        Ok(()) => summary,
        Err(e) => format!("{summary} (not delivered: {e})"),
    }
}

/// `exit status 3` or `signal 9`.
fn describe(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => st.to_string(),
    }
}

/// The task's own time limit: a `timeout` in the lease (ms or `"30s"`), else
/// `args.timeout`. It can only shorten `--timeout`.
fn own_limit(p: &Value) -> Option<Duration> {
    let v = p.get("timeout").or_else(|| p["args"].get("timeout"))?;
    match v {
        Value::Number(n) => n.as_u64().map(Duration::from_millis),
        Value::String(s) => humantime::parse_duration(s).ok(),
        _ => None,
    }
}

/// Runs one agent until an outcome: the attempt's end, or a restart.
#[allow(clippy::too_many_arguments)]
async fn drive<'a>(
    lease: &'a Lease,
    cwd: &Path,
    agent: &mut Agent,
    ch: &mut Chans<'_>,
    ctx: &Ctx,
    deadline: Instant,
    limit: Duration,
    relay: &mut Relay,
) -> Outcome {
    let mut abort = ctx.abort.clone();
    let mut pending: Option<Pending<'a>> = None;
    // Who waits for the pending request's decision.
    let mut asker: Option<Asker> = None;
    let here = Value::String(cwd.to_string_lossy().into_owned());
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut open = true;
    // Whether this agent printed a protocol line (then it may be sent chat lines).
    let mut speaks = false;
    // The policy judges paths against the worktree: that is ours to say, not the
    // agent's (it could claim `/`).
    let place = |v: &mut Value| {
        v["worktree"] = here.clone();
        if !v.get("cwd").is_some_and(Value::is_string) {
            v["cwd"] = here.clone();
        }
    };
    loop {
        if let (Some((st, _)), false) = (exited, open) {
            return Outcome::Exited(st);
        }
        let linger = exited.map_or(deadline, |(_, at)| at);
        tokio::select! {
            biased;
            loss = lease.until_lost() => return Outcome::Lost(loss),
            () = async { let _ = abort.wait_for(|a| *a).await; } => return Outcome::Aborted,
            _ = tokio::time::sleep_until(deadline) => return Outcome::Timeout(limit),
            _ = tokio::time::sleep_until(linger), if exited.is_some() => {
                if let Some((st, _)) = exited {
                    return Outcome::Exited(st);
                }
            }
            d = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                match asker.take() {
                    Some(Asker::Exec(tx)) => {
                        let _ = tx.send(decision_line(d, None));
                    }
                    Some(Asker::Agent(id)) => {
                        agent.tell(&decision_line(d, id)).await;
                    }
                    None => {}
                }
            }
            Some(asked) = ch.orders.recv() => {
                let waiting = pending.is_some();
                match asked.order {
                    Order::Restart(_) if waiting => {
                        let _ = asked.done.send(Err("the agent waits for an approval decision; decide it first".into()));
                    }
                    Order::Restart(why) => return Outcome::Restart(why, asked.done),
                    Order::Chat(_) if !speaks => {
                        let _ = asked.done.send(Err("the agent does not speak the JSON-lines protocol (it printed no protocol line), so it cannot read chat".into()));
                    }
                    Order::Chat(_) if waiting => {
                        let _ = asked.done.send(Err("the agent waits for an approval decision on its stdin; chat after it".into()));
                    }
                    Order::Chat(line) => {
                        let r = if agent.tell(&line).await { Ok(()) } else { Err("the agent's stdin is closed".into()) };
                        let _ = asked.done.send(r);
                    }
                }
            }
            // One decision at a time: a `hive exec` waits in the gate's queue.
            Some(ask) = ch.asks.recv(), if pending.is_none() => {
                let mut v = ask.request;
                place(&mut v);
                asker = Some(Asker::Exec(ask.reply));
                pending = Some(Box::pin(lease.ask(v)));
            }
            l = ch.lines.recv(), if open => match l {
                None => open = false,
                Some(l) => {
                    let proto = (l.stream == Stream::Stdout && !l.cut)
                        .then(|| protocol(&l.text))
                        .flatten();
                    speaks |= proto.is_some();
                    match proto {
                        Some(Proto::Event(v)) => {
                            let _ = lease.event_payload(v).await;
                        }
                        Some(Proto::Approval(mut v)) => {
                            // Ours to echo, not the broker's: a remembered decision
                            // matches the action byte for byte.
                            let id = v.as_object_mut().and_then(|o| o.remove("id"));
                            if pending.is_some() {
                                let mut no = deny("one approval at a time: wait for the first decision");
                                if let Some(id) = id {
                                    no["id"] = id;
                                }
                                agent.tell(&no.to_string()).await;
                            } else {
                                place(&mut v);
                                asker = Some(Asker::Agent(id));
                                pending = Some(Box::pin(lease.ask(v)));
                            }
                        }
                        Some(Proto::Result(v)) => {
                            return match v["status"].as_str() {
                                Some("ok") => Outcome::Result { ok: true, payload: v },
                                Some("fail") => Outcome::Result { ok: false, payload: v },
                                _ => Outcome::Result {
                                    ok: false,
                                    payload: json!({"summary": format!(
                                        "the agent's result line has no status ok or fail: {}",
                                        super::output::clip(&v.to_string(), 512).0
                                    )}),
                                },
                            };
                        }
                        None => {
                            relay.tail.push(&l.text);
                            for p in relay.limiter.admit(&l) {
                                let _ = lease.event_payload(p).await;
                            }
                        }
                    }
                }
            },
            st = agent.wait(), if exited.is_none() => {
                exited = Some((st, Instant::now() + LINGER));
            }
        }
    }
}
