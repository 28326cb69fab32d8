//! One leased attempt, start to end: prepare the directory, render the command,
//! start the agent, relay its output and its protocol lines, answer its approval
//! requests on stdin, and end it with exactly one outcome.
//!
//! The loop watches, at once: the lease (a cancel, an expiry or a lost connection
//! ends the attempt and kills the agent's group, with nothing sent: the queue has
//! already moved on), the drain deadline, the attempt's time limit, a pending
//! approval, the agent's lines and its exit. An agent that exits is given
//! [`LINGER`] for its last lines to arrive (a grandchild holding the pipe open would
//! otherwise keep it waiting for ever).

use super::agent::{Agent, Line, Stream};
use super::output::Relay;
use super::template::Fields;
use super::{workdir, Ctx};
use hivebus::client::ClientError;
use hivebus::consumer::{Lease, LeaseLoss};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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
}

/// A protocol line of the agent's stdout.
enum Proto {
    Event(Value),
    Approval(Value),
    Result(Value),
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
    let fields = Fields {
        payload: &lease.payload,
        trace_id: &lease.trace_id,
        branch: &work.branch,
    };
    let argv = match ctx.template.render(&fields) {
        Ok(a) => a,
        Err(e) => {
            workdir::cleanup(&work, &ctx.git_lock).await;
            return refuse(lease, &format!("cannot build the agent command: {e}")).await;
        }
    };
    let limit = own_limit(&lease.payload).map_or(ctx.timeout, |t| t.min(ctx.timeout));
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
    let (mut agent, mut lines) = match Agent::spawn(&argv, &work.cwd, &env) {
        Ok(a) => a,
        Err(e) => {
            workdir::cleanup(&work, &ctx.git_lock).await;
            return refuse(lease, &e).await;
        }
    };
    let _ = lease
        .event_payload(json!({
            "stage": "started",
            "message": format!("agent `{}` started, pid {}", argv[0], agent.pgid()),
            "pid": agent.pgid(),
            "worktree": work.worktree().map(|w| w.to_string_lossy().into_owned()),
        }))
        .await;
    let mut relay = Relay::default();
    let outcome = drive(
        &lease, &work.cwd, &mut agent, &mut lines, &ctx, limit, &mut relay,
    )
    .await;
    if !matches!(outcome, Outcome::Lost(_) | Outcome::Aborted) {
        if let Some(note) = relay.limiter.flush() {
            let _ = lease.event_payload(note).await;
        }
    }
    // Whatever the outcome, nothing the agent started outlives its attempt.
    if let Outcome::Result { .. } = outcome {
        let _ = tokio::time::timeout(ctx.grace, agent.wait()).await;
    }
    let status = agent.terminate(ctx.grace).await;
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
        Outcome::Aborted => {
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

/// Reads a protocol line: one JSON object with exactly one key `event`, `approval`
/// or `result`, whose value is an object.
fn protocol(text: &str) -> Option<Proto> {
    if !text.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if o.len() != 1 {
        return None;
    }
    let (k, v) = o.iter_mut().next()?;
    if !v.is_object() {
        return None;
    }
    let v = v.take();
    match k.as_str() {
        "event" => Some(Proto::Event(v)),
        "approval" => Some(Proto::Approval(v)),
        "result" => Some(Proto::Result(v)),
        _ => None,
    }
}

/// The decision line written to the agent's stdin, echoing the request's `id`.
fn decision_line(d: Result<Option<Value>, ClientError>, id: Option<Value>) -> String {
    let mut v = match d {
        Ok(Some(p)) => {
            // Anything but an explicit approve is a deny: fail closed.
            let decision = if p["decision"] == "approve" {
                "approve"
            } else {
                "deny"
            };
            let given = p["decision"]
                .as_str()
                .filter(|d| !matches!(*d, "approve" | "deny"));
            let mut o = Map::new();
            o.insert("decision".into(), json!(decision));
            o.insert("by".into(), p["by"].clone());
            o.insert("reason".into(), p["reason"].clone());
            if let Some(s) = p.get("scope") {
                o.insert("scope".into(), s.clone());
            }
            // `expired` (nobody decided in time), or a decision this version does not
            // know: the agent hears `deny` and what was said.
            if let Some(g) = given {
                o.insert("given".into(), json!(g));
            }
            Value::Object(o)
        }
        Ok(None) => deny("the lease was lost"),
        Err(e) => deny(&format!("the broker is unreachable: {e}")),
    };
    if let Some(id) = id {
        v["id"] = id;
    }
    v.to_string()
}

/// A decision `hive consume` makes itself: always a deny.
fn deny(reason: &str) -> Value {
    json!({"decision": "deny", "by": "hive consume", "reason": reason})
}

async fn drive<'a>(
    lease: &'a Lease,
    cwd: &Path,
    agent: &mut Agent,
    lines: &mut mpsc::Receiver<Line>,
    ctx: &Ctx,
    limit: Duration,
    relay: &mut Relay,
) -> Outcome {
    let deadline = Instant::now() + limit;
    let mut abort = ctx.abort.clone();
    let mut pending: Option<Pending<'a>> = None;
    // The `id` the agent gave its pending request, echoed in the decision.
    let mut pending_id: Option<Value> = None;
    let here = Value::String(cwd.to_string_lossy().into_owned());
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut open = true;
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
                agent.tell(&decision_line(d, pending_id.take())).await;
            }
            l = lines.recv(), if open => match l {
                None => open = false,
                Some(l) => {
                    let proto = (l.stream == Stream::Stdout && !l.cut)
                        .then(|| protocol(&l.text))
                        .flatten();
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
                                // The policy judges paths against the worktree: that is
                                // ours to say, not the agent's (it could claim `/`).
                                v["worktree"] = here.clone();
                                if !v.get("cwd").is_some_and(Value::is_string) {
                                    v["cwd"] = here.clone();
                                }
                                pending_id = id;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_line_fails_closed_and_echoes_the_id() {
        let d = |p: Value| {
            serde_json::from_str::<Value>(&decision_line(Ok(Some(p)), Some(json!("a1")))).unwrap()
        };
        let ok = d(json!({"decision": "approve", "by": "ann", "reason": "fine", "lease": "l-1"}));
        assert_eq!(
            ok,
            json!({"decision": "approve", "by": "ann", "reason": "fine", "id": "a1"})
        );
        let exp = d(json!({"decision": "expired", "by": "timeout"}));
        assert_eq!(
            (exp["decision"].as_str(), exp["given"].as_str()),
            (Some("deny"), Some("expired"))
        );
        let lost: Value = serde_json::from_str(&decision_line(Ok(None), None)).unwrap();
        assert_eq!(lost["decision"], "deny");
        assert!(lost.get("id").is_none());
    }

    #[test]
    fn only_one_key_objects_are_protocol_lines() {
        assert!(matches!(
            protocol(r#"{"event": {"pct": 1}}"#),
            Some(Proto::Event(_))
        ));
        assert!(matches!(
            protocol(r#"{"result": {"status": "ok"}}"#),
            Some(Proto::Result(_))
        ));
        assert!(protocol(r#"{"event": 1}"#).is_none());
        assert!(protocol(r#"{"event": {}, "x": 1}"#).is_none());
        assert!(protocol(r#"{"other": {}}"#).is_none());
        assert!(protocol("plain {\"event\": {}}").is_none());
    }
}
