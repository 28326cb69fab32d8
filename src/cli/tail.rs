//! `hive tail <traceId>`: replays a task's stored stream from the start, then follows
//! it live, printing a progress bar from EVENT `pct`; exits with the task's status.
//!
//! Gap-free by construction: it joins the task's channel *before* reading the stored
//! stream, so a frame is either in the stored page or arrives live (frames seen in
//! both are recognised by their channel offset). While nothing arrives it re-reads
//! the stored stream every `--poll-ms`, so even a missed live frame is found.

use clap::Args;
use hivebus::client::Client;
use hivebus::frame::{Envelope, FrameType};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `hive tail`.
#[derive(Args)]
pub(crate) struct TailArgs {
    /// The task's traceId (or its task id).
    trace: String,
    /// Print history and stop, do not follow.
    #[arg(long)]
    no_follow: bool,
    /// Re-read the stored stream after this long without a live frame (ms).
    #[arg(long, default_value_t = 2_000)]
    poll_ms: u64,
}

struct Tail {
    trace: String,
    task: String,
    seen: HashSet<(String, u64)>,
    last_seq: u64,
}

impl Tail {
    /// Prints a frame once; `Some(exit)` when it ends the task.
    fn show(&mut self, f: &Envelope) -> Option<ExitCode> {
        if let (Some(e), Some(o)) = (&f.epoch, f.offset) {
            if !self.seen.insert((e.clone(), o)) {
                return None;
            }
        }
        let p = &f.payload;
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        match f.kind {
            FrameType::Task => println!(
                "TASK    {} {} queued (priority {})",
                s("task"),
                s("kind"),
                s("priority")
            ),
            FrameType::Event => match p.get("pct").and_then(Value::as_u64) {
                Some(pct) => {
                    let pct = pct.min(100) as usize;
                    let bar = format!("{}{}", "#".repeat(pct / 5), ".".repeat(20 - pct / 5));
                    println!("EVENT   [{bar}] {pct:>3}% {}: {}", s("stage"), s("message"));
                }
                None => println!("EVENT   {}: {}", s("stage"), s("message")),
            },
            FrameType::Approval => println!("APPROVAL {}", p),
            FrameType::Error => println!(
                "ERROR   {}: {} {}",
                s("code"),
                s("message"),
                p.get("details").unwrap_or(&Value::Null)
            ),
            FrameType::Result => {
                println!("RESULT  {} ({}): {}", s("status"), s("state"), s("summary"));
                return Some(match s("state").as_str() {
                    "succeeded" => ExitCode::SUCCESS,
                    "cancelled" => ExitCode::from(3),
                    _ => ExitCode::FAILURE,
                });
            }
            other => println!("{:<7} {}", other.as_str(), p),
        }
        None
    }

    /// Prints stored frames after `last_seq`; `Some(exit)` when one ended the task.
    async fn replay(&mut self, c: &Client) -> Result<Option<ExitCode>, String> {
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
                return Ok(None);
            }
            for f in frames {
                self.last_seq = f["seq"].as_u64().unwrap_or(self.last_seq);
                if let Ok(env) = serde_json::from_value::<Envelope>(f["frame"].clone()) {
                    if let Some(code) = self.show(&env) {
                        return Ok(Some(code));
                    }
                }
            }
        }
    }
}

pub(crate) async fn run(mut c: Client, a: &TailArgs) -> Result<ExitCode, String> {
    let shown = c
        .command("op.queue.show", json!({"task": a.trace}))
        .await
        .map_err(|e| e.to_string())?;
    let address = shown["address"].as_str().unwrap_or_default().to_owned();
    let mut t = Tail {
        trace: shown["trace_id"].as_str().unwrap_or(&a.trace).to_owned(),
        task: shown["id"].as_str().unwrap_or(&a.trace).to_owned(),
        seen: HashSet::new(),
        last_seq: 0,
    };
    if !a.no_follow {
        c.join(&address).await.map_err(|e| e.to_string())?;
    }
    if let Some(code) = t.replay(&c).await? {
        return Ok(code);
    }
    if a.no_follow {
        return Ok(ExitCode::SUCCESS);
    }
    let poll = Duration::from_millis(a.poll_ms.max(50));
    loop {
        match c.next_event_within(poll).await {
            Ok(env) => {
                if env.trace_id.as_deref() == Some(t.trace.as_str()) {
                    if let Some(code) = t.show(&env) {
                        return Ok(code);
                    }
                }
            }
            Err(hivebus::client::ClientError::Timeout) => {
                if let Some(code) = t.replay(&c).await? {
                    return Ok(code);
                }
                // The final frame of the stream can be missing after a broker crash
                // (the stored state and the stored stream are separate writes): the
                // task's record decides then.
                let rec = c
                    .command("op.queue.show", json!({"task": t.task}))
                    .await
                    .map_err(|e| e.to_string())?;
                let state = rec["state"].as_str().unwrap_or_default();
                if matches!(state, "succeeded" | "failed" | "dead" | "cancelled") {
                    let mut env = Envelope::new(FrameType::Result, rec["result"].clone());
                    env.payload["state"] = json!(state);
                    if let Some(code) = t.show(&env) {
                        return Ok(code);
                    }
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
