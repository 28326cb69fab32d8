//! `hive tail <traceId>`: replays a task's stored stream from the start, then follows
//! it live, printing a progress bar from EVENT `pct`; exits with the task's status.
//!
//! The verdict is the task's *state*, never the first RESULT in its stream: a dead
//! task that was requeued, or a parked one retried, has an old `RESULT fail` in its
//! stream and then a new run. So tail prints every frame, and on a RESULT (or when
//! nothing arrives) asks `op.queue.show`: a final state ends the tail with its exit
//! code, anything else keeps it following. The state is read *before* the stored
//! stream, so a final state's RESULT (published before the state was visible) is
//! always in that read.
//!
//! Gap-free by construction: it joins the task's channel *before* reading the stored
//! stream, so a frame is either in the stored page or arrives live (frames seen in
//! both are recognised by their channel offset). While nothing arrives it re-reads
//! the stored stream every `--poll-ms`, so even a missed live frame is found.
//!
//! On a terminal, a person who may decide approvals is asked about a pending one in
//! place (`prompt`).
//!
//! Exit codes: 0 succeeded, 1 failed or dead, 3 cancelled, 4 not finished yet (only
//! with `--no-follow`), 2 errors.

#[path = "tail/prompt.rs"]
mod prompt;

use super::output::Out;
use clap::Args;
use hivebus::client::Client;
use hivebus::frame::{Envelope, FrameType};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of `tail --no-follow` on a task that has not finished.
pub(crate) const UNFINISHED: u8 = 4;

/// Flags of `hive tail`.
#[derive(Args)]
pub(crate) struct TailArgs {
    /// The task's traceId (or its task id).
    trace: String,
    /// Print the stored stream and stop, do not follow: exits 4 when the task has
    /// not finished.
    #[arg(long)]
    no_follow: bool,
    /// Re-read the stored stream after this long without a live frame (ms).
    #[arg(long, default_value_t = 2_000)]
    poll_ms: u64,
}

/// The exit code of a final state; `None` while the task may still run.
fn verdict(state: &str) -> Option<ExitCode> {
    match state {
        "succeeded" => Some(ExitCode::SUCCESS),
        "cancelled" => Some(ExitCode::from(3)),
        "failed" | "dead" => Some(ExitCode::FAILURE),
        _ => None,
    }
}

struct Tail {
    trace: String,
    task: String,
    seen: HashSet<(String, u64)>,
    last_seq: u64,
    /// Whether the last frame printed was a RESULT (else the record's result is
    /// printed at the end: the stream's final frame can be missing after a crash).
    last_was_result: bool,
    /// NDJSON frames instead of text lines.
    json: bool,
    /// A request was printed and no decision after it yet.
    asking: bool,
}

impl Tail {
    /// Prints a frame once; true when it is a RESULT (printed now or before).
    fn show(&mut self, f: &Envelope) -> bool {
        if let (Some(e), Some(o)) = (&f.epoch, f.offset) {
            if !self.seen.insert((e.clone(), o)) {
                return f.kind == FrameType::Result;
            }
        }
        self.last_was_result = f.kind == FrameType::Result;
        if self.json {
            println!("{}", f.to_text());
            return self.last_was_result;
        }
        let p = &f.payload;
        // Text written by submitters and consumers: made safe for a terminal.
        let s = |k: &str| super::output::safe(p.get(k).and_then(Value::as_str).unwrap_or(""));
        match f.kind {
            FrameType::Task => println!(
                "TASK    {} {} queued (priority {})",
                s("task"),
                s("kind"),
                s("priority")
            ),
            // A line of an agent's output, as `hive consume` streams it.
            FrameType::Event if p.get("line").is_some() => {
                let stream = if s("stream") == "stderr" {
                    "ERR"
                } else {
                    "OUT"
                };
                println!("{stream:<7} {}", s("line"));
            }
            FrameType::Event => match p.get("pct").and_then(Value::as_u64) {
                Some(pct) => {
                    let pct = pct.min(100) as usize;
                    let bar = format!("{}{}", "#".repeat(pct / 5), ".".repeat(20 - pct / 5));
                    println!("EVENT   [{bar}] {pct:>3}% {}: {}", s("stage"), s("message"));
                }
                None => println!("EVENT   {}: {}", s("stage"), s("message")),
            },
            FrameType::Approval => match p.get("decision").and_then(Value::as_str) {
                // A request: what the agent wants to do, and how to answer it.
                None => {
                    self.asking = true;
                    let what = p
                        .get("command")
                        .or_else(|| p.get("action"))
                        .and_then(Value::as_str)
                        .map_or_else(|| super::output::safe(&p.to_string()), super::output::safe);
                    let why = s("reason");
                    println!(
                        "APPROVAL asks to run: {what}{}",
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" (because: {why})")
                        }
                    );
                    println!(
                        "         decide: hive approvals approve {0} [--scope task|session|always]  |  hive approvals deny {0} --reason ...",
                        s("task")
                    );
                }
                Some(_) => {
                    self.asking = false;
                    let scope = s("scope");
                    let why = s("reason");
                    println!(
                        "APPROVAL {} by {}{}{}",
                        s("decision"),
                        s("by"),
                        if scope.is_empty() {
                            String::new()
                        } else {
                            format!(" (scope {scope})")
                        },
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(": {why}")
                        }
                    );
                }
            },
            FrameType::System
                if p.get("event").and_then(Value::as_str) == Some("approval_expiring") =>
            {
                let left = p.get("expiresInMs").and_then(Value::as_u64).unwrap_or(0) / 1000;
                println!(
                    "APPROVAL expires in {left}s without a decision (then refused as `expired`)"
                );
            }
            FrameType::Error => println!(
                "ERROR   {}: {} {}",
                s("code"),
                s("message"),
                p.get("details").unwrap_or(&Value::Null)
            ),
            FrameType::Result => {
                println!("RESULT  {} ({}): {}", s("status"), s("state"), s("summary"));
            }
            other => println!("{:<7} {}", other.as_str(), p),
        }
        self.last_was_result
    }

    /// Prints every stored frame after `last_seq`.
    async fn replay(&mut self, c: &Client) -> Result<(), String> {
        loop {
            let page = c
                .command(
                    "op.queue.stream",
                    json!({"task": self.task, "after": self.last_seq}),
                )
                .await
                .map_err(|e| e.to_string())?;
            let frames = page["frames"].as_array().cloned().unwrap_or_default();
            if frames.is_empty() {
                return Ok(());
            }
            for f in frames {
                self.last_seq = f["seq"].as_u64().unwrap_or(self.last_seq);
                if let Ok(env) = serde_json::from_value::<Envelope>(f["frame"].clone()) {
                    self.show(&env);
                }
            }
        }
    }

    /// Reads the task's state, then prints the stored frames not printed yet; the
    /// exit code when the state is final, plus the state.
    async fn settle(&mut self, c: &Client) -> Result<(Option<ExitCode>, String), String> {
        let rec = c
            .command("op.queue.show", json!({"task": self.task}))
            .await
            .map_err(|e| e.to_string())?;
        let state = rec["state"].as_str().unwrap_or_default().to_owned();
        self.replay(c).await?;
        let code = verdict(&state);
        if code.is_some() && !self.last_was_result {
            let mut env = Envelope::new(FrameType::Result, rec["result"].clone());
            env.payload["state"] = json!(state);
            self.show(&env);
        }
        Ok((code, state))
    }
}

/// Runs `hive tail`.
pub(crate) async fn run(mut c: Client, a: &TailArgs, out: &Out) -> Result<ExitCode, String> {
    let shown = c
        .command("op.queue.show", json!({"task": a.trace}))
        .await
        .map_err(|e| e.to_string())?;
    let address = shown["address"].as_str().unwrap_or_default().to_owned();
    let mut t = Tail {
        trace: shown["traceId"].as_str().unwrap_or(&a.trace).to_owned(),
        task: shown["task"].as_str().unwrap_or(&a.trace).to_owned(),
        seen: HashSet::new(),
        last_seq: 0,
        last_was_result: false,
        json: out.json_asked,
        asking: false,
    };
    use std::io::IsTerminal;
    let interactive =
        !out.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let role = c.welcome()["role"].as_str().unwrap_or_default().to_owned();
    let mut prompt = prompt::Prompt::new(interactive, &role);
    if !a.no_follow {
        c.join(&address).await.map_err(|e| e.to_string())?;
    }
    let (code, state) = t.settle(&c).await?;
    if let Some(code) = code {
        return Ok(code);
    }
    if a.no_follow {
        eprintln!(
            "hive: task {} is still {state} (exit {UNFINISHED}); drop --no-follow to wait for its end",
            t.task
        );
        return Ok(ExitCode::from(UNFINISHED));
    }
    if state == "queued" {
        let kind = shown["kind"].as_str().unwrap_or_default();
        if let Some((0, _)) = super::task::serving(&c, kind).await {
            eprintln!("hive: warning: no consumer serves `{kind}` now; waiting until one connects (Ctrl-C to stop)");
        }
    }
    let poll = Duration::from_millis(a.poll_ms.max(50));
    // The question is on the screen.
    let mut asked = false;
    loop {
        if prompt.on && t.asking && !asked {
            // Only while the task really waits: a replayed request may be decided.
            if state_of(&c, &t.task).await? == "waiting_approval" {
                prompt.ask();
                asked = true;
            } else {
                t.asking = false;
            }
        }
        let ended = tokio::select! {
            ev = c.next_event_within(poll) => match ev {
                Ok(env) if env.trace_id.as_deref() == Some(t.trace.as_str()) => {
                    if asked {
                        println!();
                    }
                    let end = t.show(&env);
                    // Decided elsewhere (another device, the policy, an expiry):
                    // the question is over; else it is asked again below the frame.
                    if asked && t.asking {
                        prompt.ask();
                    }
                    asked &= t.asking;
                    end
                }
                Ok(_) => false,
                // Nothing for a while: the stored stream and the record decide.
                Err(hivebus::client::ClientError::Timeout) => true,
                Err(e) => return Err(e.to_string()),
            },
            line = prompt.line(), if asked => {
                match line.as_deref().map(prompt::parse) {
                    None => asked = false,
                    Some(Some(answer)) => {
                        asked = false;
                        t.asking = false;
                        prompt.decide(&c, &t.task, answer).await;
                    }
                    Some(None) => prompt.ask(),
                }
                false
            }
        };
        if ended {
            if let (Some(code), _) = t.settle(&c).await? {
                if asked {
                    println!();
                }
                return Ok(code);
            }
        }
    }
}

/// The task's state now.
async fn state_of(c: &Client, task: &str) -> Result<String, String> {
    let rec = c
        .command("op.queue.show", json!({"task": task}))
        .await
        .map_err(|e| e.to_string())?;
    Ok(rec["state"].as_str().unwrap_or_default().to_owned())
}
