//! The `hive` CLI end to end: `hive broker` and the example consumer as child
//! processes; `hive task submit` then `hive tail` shows the live task and exits with
//! its status, which is the task's final state even after a requeue or a retry;
//! `--help` everywhere shows examples and exit codes.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills and reaps a child on drop, so a failing test leaves no process behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn hive() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hive"))
}

/// The example consumer, built by `cargo test` beside the binaries.
fn example_consumer() -> PathBuf {
    example("consumer")
}

/// An example program, built by `cargo test` beside the binaries.
pub fn example(name: &str) -> PathBuf {
    let p = hive().parent().unwrap().join("examples").join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo test` (it builds the examples)",
        p.display()
    );
    p
}

/// Starts `hive broker` in `dir` and waits for its port file.
pub fn broker(dir: &std::path::Path, extra: &[&str]) -> (Reaped, u16) {
    let port_file = dir.join(".hive").join("port");
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new(hive())
        .arg("--dir")
        .arg(dir)
        .arg("broker")
        .args(extra)
        .env_remove("HIVE_WS_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(p) = hivebus::server::port::read_port_file(&port_file) {
            return (child, p);
        }
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn submit_then_tail_shows_a_live_task_end_to_end() {
    let dir = crate::harness::temp_dir("cli");
    let (_broker, port) = broker(&dir, &[]);
    let _consumer = Reaped(
        Command::new(example_consumer())
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}/"),
                "--kinds",
                "verify_bip",
                "--slots",
                "2",
            ])
            .args(["--steps", "5", "--step-ms", "150"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args([
            "task",
            "submit",
            "verify_bip",
            "--bip",
            "43",
            "--priority",
            "core",
            "--arg",
            "checklist=all",
        ])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = reply["traceId"].as_str().unwrap().to_owned();
    assert_eq!(reply["state"], "queued");
    // Tail right away: the task is live (its 5 steps take ~750 ms).
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["tail", &trace])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("TASK"), "{text}");
    assert!(text.contains("[####################] 100%"), "{text}");
    assert!(text.contains("RESULT  ok (succeeded)"), "{text}");
    // A late tail replays the same history and exits the same way.
    let again = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["tail", &trace])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
    // The other subcommands answer through the same port discovery.
    let run = |args: &[&str]| {
        Command::new(hive())
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env_remove("HIVE_WS_PORT")
            .output()
            .unwrap()
    };
    let list = run(&["task", "list", "--state", "succeeded"]);
    assert!(list.status.success());
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["tasks"][0]["traceId"], trace.as_str());
    let status: serde_json::Value = serde_json::from_slice(&run(&["status"]).stdout).unwrap();
    assert_eq!(status["queue"]["counters"]["succeeded"], 1);
    let dlq: serde_json::Value = serde_json::from_slice(&run(&["dlq", "list"]).stdout).unwrap();
    assert_eq!(dlq["total"], 0);
    let bad = run(&["task", "cancel", &trace]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("conflict"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // `--help` everywhere.
    for args in [
        vec!["--help"],
        vec!["task", "submit", "--help"],
        vec!["dlq", "--help"],
        vec!["tail", "--help"],
    ] {
        let h = Command::new(hive()).args(&args).output().unwrap();
        assert!(h.status.success() && !h.stdout.is_empty(), "{args:?}");
    }
}

/// Runs `hive --dir <dir> <args>` to completion, without `HIVE_WS_PORT`.
pub fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(hive())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("HIVE_WS_PORT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// stdout as JSON (the default when stdout is not a terminal).
pub fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The example consumer on `port` for `kinds`, each task taking `steps` x `step_ms`.
fn consumer(port: u16, kinds: &str, steps: u8, step_ms: u64) -> Reaped {
    Reaped(
        Command::new(example_consumer())
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}/"),
                "--kinds",
                kinds,
            ])
            .args([
                "--steps",
                &steps.to_string(),
                "--step-ms",
                &step_ms.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Submits and returns the task id (also its traceId).
fn submit(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["task", "submit"];
    all.extend_from_slice(args);
    let out = run(dir, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&out)["task"].as_str().unwrap().to_owned()
}

/// Polls `task show` until the task is in `state`.
fn wait_state(dir: &Path, task: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = json_of(&run(dir, &["task", "show", task]));
        if v["state"] == state {
            return;
        }
        assert!(Instant::now() < deadline, "{task} never {state}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tail_follows_the_task_state_after_requeue_and_retry_not_the_old_result() {
    let dir = crate::harness::temp_dir("cli-verdict");
    let (_broker, port) = broker(&dir, &["--max-attempts", "1"]);
    let _consumer = consumer(port, "verify_bip", 1, 20);

    // A task that dies: tail says so (1), and `task retry` points to `dlq requeue`.
    let dead = submit(&dir, &["verify_bip", "--bip", "43", "--arg", "fail=true"]);
    let out = run(&dir, &["tail", &dead]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("RESULT  fail (dead)"), "{}", text(&out));
    let dlq = json_of(&run(&dir, &["dlq", "list"]));
    assert_eq!(dlq["tasks"][0]["task"], dead.as_str());
    assert_eq!(dlq["tasks"][0]["lastError"], "asked to fail", "{dlq}");
    let table = run(&dir, &["--output", "table", "dlq", "list"]);
    assert!(text(&table).contains("LAST ERROR") && text(&table).contains("asked to fail"));
    let wrong = run(&dir, &["task", "retry", &dead]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong).contains(&format!("hive dlq requeue {dead}")),
        "{}",
        text(&wrong)
    );

    // Requeued with args that succeed: the old RESULT stays in the stream, tail
    // follows to the new end and exits 0, live or replayed.
    let out = run(
        &dir,
        &["dlq", "requeue", &dead, "--args-json", r#"{"fail":false}"#],
    );
    assert!(out.status.success(), "{}", text(&out));
    let live = run(&dir, &["tail", &dead]);
    assert_eq!(live.status.code(), Some(0), "{}", text(&live));
    let replay = run(&dir, &["tail", &dead, "--no-follow"]);
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay));
    let t = text(&replay);
    let (old, new) = (
        t.find("RESULT  fail (dead)"),
        t.find("RESULT  ok (succeeded)"),
    );
    assert!(old.is_some() && new > old, "{t}");

    // A parked (not idempotent) task retried by a human: the same.
    let parked = submit(
        &dir,
        &[
            "verify_bip",
            "--bip",
            "43",
            "--arg",
            "fail=true",
            "--not-idempotent",
        ],
    );
    let out = run(&dir, &["tail", &parked]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("RESULT  fail (failed)"),
        "{}",
        text(&out)
    );
    let out = run(&dir, &["task", "retry", &parked, "--args-json", "{}"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&dir, &["tail", &parked]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        json_of(&run(&dir, &["task", "show", &parked]))["state"],
        "succeeded"
    );
}

#[test]
fn tail_no_follow_on_a_running_task_exits_4_and_a_cancel_ends_a_tail_with_3() {
    let dir = crate::harness::temp_dir("cli-running");
    let (_broker, port) = broker(&dir, &[]);
    let _slow = consumer(port, "slow_bip", 100, 200);

    // Nobody serves this kind: submit warns, tail --no-follow says "not finished".
    let out = run(&dir, &["task", "submit", "orphan_kind", "--bip", "43"]);
    assert!(out.status.success());
    assert!(
        text(&out).contains("no consumer serves `orphan_kind`"),
        "{}",
        text(&out)
    );
    let orphan = json_of(&out)["task"].as_str().unwrap().to_owned();
    let out = run(&dir, &["tail", &orphan, "--no-follow"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("still queued"), "{}", text(&out));

    // A running task: --no-follow prints what happened so far and exits 4.
    let slow = submit(&dir, &["slow_bip", "--bip", "43"]);
    wait_state(&dir, &slow, "working");
    let out = run(&dir, &["tail", &slow, "--no-follow"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("TASK"), "{}", text(&out));

    // A following tail ends with 3 when the task is cancelled.
    let follower = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["tail", &slow, "--poll-ms", "200"])
        .env_remove("HIVE_WS_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(&dir, &["task", "cancel", &slow]);
    assert!(out.status.success(), "{}", text(&out));
    let out = follower.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("RESULT  fail (cancelled)"),
        "{}",
        text(&out)
    );
    // A queued task cancelled: the same verdict from the replay.
    assert!(run(&dir, &["task", "cancel", &orphan]).status.success());
    assert_eq!(run(&dir, &["tail", &orphan]).status.code(), Some(3));
}

#[test]
fn every_help_shows_examples_and_exit_codes_and_purge_wants_yes() {
    // Every subcommand, found by walking the help itself: a new one cannot be missed.
    let help = |c: &[String]| {
        let h = Command::new(hive()).args(c).arg("--help").output().unwrap();
        assert!(h.status.success(), "{c:?}");
        String::from_utf8_lossy(&h.stdout).into_owned()
    };
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(c) = todo.pop() {
        let t = help(&c);
        seen += 1;
        assert!(
            t.contains("Examples:") && t.contains("Exit codes:"),
            "{c:?}: {t}"
        );
        assert!(t.contains("hive "), "{c:?}: {t}");
        // Subcommands are listed under `Commands:`, one per line, name first.
        if let Some(list) = t.split("Commands:\n").nth(1) {
            for line in list.lines().take_while(|l| l.starts_with("  ")) {
                let name = line.split_whitespace().next().unwrap_or_default();
                if !name.is_empty() && name != "help" {
                    let mut sub = c.clone();
                    sub.push(name.to_owned());
                    todo.push(sub);
                }
            }
        }
    }
    assert!(seen >= 20, "only {seen} help pages found");
    let bash = Command::new(hive())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_hive"));
    // Destructive without a terminal to ask on: refused before connecting.
    let dir = crate::harness::temp_dir("cli-purge");
    let (_broker, _) = broker(&dir, &[]);
    let out = run(&dir, &["dlq", "purge", "--all"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    let out = run(&dir, &["dlq", "purge", "--all", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json_of(&out)["purged"], serde_json::json!([]));
}
