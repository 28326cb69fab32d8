//! `hive consume` end to end: `hive broker` and `hive consume` as child processes in a
//! temp directory, the agent a bash script (`tests/agents/scripted.sh`) that speaks
//! the protocol of docs/CONSUME.md, and a real WebSocket client that submits,
//! approves, cancels and reads the task's stream. Also the two SDK fixes it needed
//! (`Lease::fail` is final; heartbeats follow a short `leaseMs`).

use crate::cli::{broker, hive, Reaped};
use crate::harness;
use hivebus::client::{Client, Hello};
use hivebus::consumer::Consumer;
use hivebus::frame::FrameType;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/agents/scripted.sh")
}

/// `hive consume` for kind `agent` in `dir`, running `bash scripted.sh {args.mode}`.
fn consume(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Reaped {
    Reaped(
        Command::new(hive())
            .arg("--dir")
            .arg(dir)
            .args(["consume", "--kinds", "agent", "--slots", "2"])
            .args(["--kill-grace", "1s"])
            .args(extra)
            .arg("--")
            .arg("bash")
            .arg(script())
            .arg("{args.mode}")
            .env_remove("HIVE_WS_PORT")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub(crate) async fn client(port: u16) -> Client {
    Client::connect(&format!("ws://127.0.0.1:{port}/"), Hello::role("client"))
        .await
        .unwrap()
}

/// Submits a task of kind `agent` with `args`, one attempt only; its id.
pub(crate) async fn submit(c: &Client, args: Value) -> String {
    submit_with(c, args, json!({})).await
}

pub(crate) async fn submit_with(c: &Client, args: Value, extra: Value) -> String {
    let mut body = json!({"kind": "agent", "bipId": 43, "args": args, "maxAttempts": 1,
        "idempotencyKey": format!("k-{}", fastrand::u64(..))});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = c.command("op.queue.submit", body).await.unwrap();
    r["task"].as_str().unwrap().to_owned()
}

/// Polls `show` until the task is in one of `states`.
pub(crate) async fn wait_state(c: &Client, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = harness::show(c, id).await;
        if states.iter().any(|s| v["state"] == *s) {
            return v;
        }
        assert!(Instant::now() < deadline, "{id} never {states:?}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The task's stored stream: each frame as `{type, payload}`.
pub(crate) async fn stream(c: &Client, id: &str) -> Vec<Value> {
    let page = c
        .command("op.queue.stream", json!({"task": id}))
        .await
        .unwrap();
    page["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["frame"].clone())
        .collect()
}

/// The EVENT payloads of the stream that have `key`.
pub(crate) async fn events_with(c: &Client, id: &str, key: &str) -> Vec<Value> {
    stream(c, id)
        .await
        .into_iter()
        .filter(|f| f["type"] == "EVENT" && f["payload"].get(key).is_some())
        .map(|f| f["payload"].clone())
        .collect()
}

/// Waits for the grandchild the agent announced, and returns its PID.
async fn grandchild(c: &Client, id: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = events_with(c, id, "grandchild").await.first() {
            let pid = e["grandchild"].as_u64().unwrap() as u32;
            assert!(alive(pid), "the grandchild {pid} should be running");
            return pid;
        }
        assert!(Instant::now() < deadline, "no grandchild announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `pid` is a live process (a zombie waiting for init to reap it is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command name's closing parenthesis.
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_streams_progress_and_output_with_a_scrubbed_environment() {
    let dir = harness::temp_dir("consume-progress");
    let (_broker, port) = broker(&dir, &[]);
    let _consume = consume(
        &dir,
        &[],
        &[
            ("GITHUB_TOKEN", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
            ("INNOCENT", "AKIAIOSFODNN7EXAMPLE"),
        ],
    );
    let c = client(port).await;
    let id = submit(&c, json!({"mode": "progress"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    let frames = stream(&c, &id).await;
    let text = serde_json::to_string(&frames).unwrap();
    let progress: Vec<&Value> = frames
        .iter()
        .filter(|f| f["payload"]["pct"] == 40)
        .collect();
    assert_eq!(progress[0]["payload"]["message"], "compiling", "{text}");
    let lines = events_with(&c, &id, "line").await;
    assert!(
        lines.contains(
            &json!({"line": "hello from the agent", "stream": "stdout", "task": id, "attempt": 1})
        ),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["stream"] == "stderr" && l["line"] == "a warning on stderr"),
        "{text}"
    );
    // Secrets by name and by value never reached the agent; its context did.
    let env = format!("env GITHUB_TOKEN=unset INNOCENT=unset HIVE_TASK={id} HIVE_LEASE=set");
    assert!(
        lines
            .iter()
            .any(|l| l["line"].as_str().unwrap().starts_with(&env)),
        "{text}"
    );
    assert!(
        rec["result"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("done in "),
        "{rec}"
    );
    // Protocol lines are frames of their own, never plain output.
    assert!(!text.contains("{\\\"event\\\""), "{text}");

    // A flood of 2000 lines: the burst is streamed, the rest is counted.
    let id = submit(&c, json!({"mode": "flood"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    let lines = events_with(&c, &id, "line").await;
    assert!(lines.len() < 400, "{}", lines.len());
    let dropped: u64 = lines.iter().filter_map(|l| l["dropped"].as_u64()).sum();
    let streamed = lines.iter().filter(|l| l["stream"] == "stdout").count() as u64;
    assert!(dropped > 1000, "{dropped}");
    assert_eq!(streamed + dropped, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_argument_stays_one_argument_and_an_option_like_one_is_refused() {
    let dir = harness::temp_dir("consume-argv");
    let (_broker, port) = broker(&dir, &[]);
    let _consume = Reaped(
        Command::new(hive())
            .arg("--dir")
            .arg(&dir)
            .args(["consume", "--kinds", "agent", "--"])
            .arg("bash")
            .arg(script())
            .args(["argv", "--title={args.title}", "{args.title}"])
            .env_remove("HIVE_WS_PORT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = client(port).await;
    let hostile = "x\"; touch pwned; echo \"$(touch pwned2)`touch pwned3`\nrm -rf ~";
    let id = submit(&c, json!({"title": hostile})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    let lines: Vec<String> = events_with(&c, &id, "line")
        .await
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect();
    // Two arguments, verbatim (the newline splits the printed text, not the argument).
    let (first, rest) = hostile.split_once('\n').unwrap();
    assert_eq!(
        lines,
        [
            format!("arg: --title={first}"),
            rest.to_owned(),
            format!("arg: {first}"),
            rest.to_owned()
        ]
    );
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(!dir.join(f).exists(), "{f} was created: a shell ran");
    }
    // A value that would start an argument with `-` is refused before anything runs.
    let id = submit(&c, json!({"title": "--upload-pack=touch pwned"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert!(
        rec["result"]["summary"]
            .as_str()
            .unwrap()
            .contains("read as an option"),
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_granted_by_a_person_and_a_destructive_one_denied_by_the_policy() {
    let dir = harness::temp_dir("consume-approval");
    let (_broker, port) = broker(&dir, &[]);
    let _consume = consume(&dir, &[], &[]);
    let c = client(port).await;

    // `rm -rf build` asks (built-in `rm-rf`): a person approves it.
    let id = submit(&c, json!({"mode": "approve-build"})).await;
    wait_state(&c, &id, &["waiting_approval"]).await;
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    assert_eq!(rec["result"]["summary"], "approved; would run it now");
    let lines = events_with(&c, &id, "line").await;
    let said = lines[0]["line"].as_str().unwrap();
    assert!(
        said.starts_with("decision line: {")
            && said.contains(r#""decision":"approve""#)
            && said.contains(r#""id":"a1""#),
        "{said}"
    );

    // `rm -rf /` is denied by the policy at once; the agent reads `deny` and its `by`.
    let id = submit(&c, json!({"mode": "approve-root"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "dead", "{rec}");
    assert_eq!(
        rec["result"]["summary"], "denied by policy:builtin:rm-rf-root",
        "{rec}"
    );
    let frames = stream(&c, &id).await;
    let text = serde_json::to_string(&frames).unwrap();
    assert!(text.contains(r#""decision":"deny""#), "{text}");
    // The request the policy judged names the attempt's directory as the worktree.
    let asked = frames
        .iter()
        .find(|f| f["type"] == "APPROVAL" && f["payload"]["command"] == "rm -rf /")
        .expect("the request in the stream");
    assert_eq!(
        asked["payload"]["worktree"], asked["payload"]["cwd"],
        "{asked}"
    );
    assert!(
        asked["payload"]["worktree"]
            .as_str()
            .unwrap()
            .starts_with('/'),
        "{asked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_agents_output_is_redacted_before_any_subscriber_sees_it() {
    let dir = harness::temp_dir("consume-secret");
    let cfg = dir.join("hive.toml");
    std::fs::write(&cfg, "[safety]\nmode = \"enforce\"\n").unwrap();
    let (_broker, port) = broker(&dir, &["--config", cfg.to_str().unwrap()]);
    let _consume = consume(&dir, &[], &[]);
    let c = client(port).await;
    let mut watcher = client(port).await;
    watcher.join("bip-43:agent").await.unwrap();
    let id = submit(&c, json!({"mode": "secret"})).await;
    let mut seen = Vec::new();
    loop {
        let e = watcher
            .next_event_within(Duration::from_secs(30))
            .await
            .expect("the task's frames");
        let end = e.kind == FrameType::Result;
        seen.push(e.to_text());
        if end {
            break;
        }
    }
    let live = seen.join("\n");
    let stored = serde_json::to_string(&stream(&c, &id).await).unwrap();
    for text in [&live, &stored] {
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert!(!text.contains("ghp_0123456789"), "{text}");
        assert!(text.contains("[REDACTED:aws_access_key]"), "{text}");
        assert!(text.contains("[REDACTED:github_token]"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_kill_the_whole_process_group_and_a_crash_reports_its_status() {
    let dir = harness::temp_dir("consume-kill");
    let (_broker, port) = broker(&dir, &[]);
    let _consume = consume(&dir, &[], &[]);
    let c = client(port).await;

    // Cancelled: the agent and its grandchild (`sleep 1000 &`) are gone.
    let id = submit(&c, json!({"mode": "grandchild"})).await;
    let pid = grandchild(&c, &id).await;
    c.command("op.queue.cancel", json!({"task": id}))
        .await
        .unwrap();
    gone(pid).await;
    assert_eq!(harness::show(&c, &id).await["state"], "cancelled");

    // Timed out (the task's own `args.timeout`): killed, and the attempt fails.
    let id = submit(&c, json!({"mode": "grandchild", "timeout": "1s"})).await;
    let pid = grandchild(&c, &id).await;
    let rec = wait_state(&c, &id, &["dead", "succeeded"]).await;
    let summary = rec["result"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("timed out after 1s"), "{rec}");
    gone(pid).await;

    // Crashed: exit 3, and the last lines (bounded) say why.
    let id = submit(&c, json!({"mode": "crash"})).await;
    let rec = wait_state(&c, &id, &["dead", "succeeded"]).await;
    let summary = rec["result"]["summary"].as_str().unwrap();
    assert!(summary.contains("exit status 3"), "{rec}");
    assert!(summary.contains("line 12 before the crash"), "{rec}");
    assert!(!summary.contains("line 1 before"), "bounded tail: {rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_repo_gets_a_worktree_per_task_and_a_repo_outside_the_roots_is_refused() {
    let dir = harness::temp_dir("consume-git");
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "init"]);
    let (_broker, port) = broker(&dir, &[]);
    let _consume = consume(&dir, &[], &[]);
    let c = client(port).await;
    let extra = json!({"repo": "repo", "branch": "feature/x"});
    let id = submit_with(&c, json!({"mode": "progress"}), extra).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    // The agent ran in `repo/.hive/worktrees/<task>`, which is gone afterwards; the
    // branch stays.
    assert_eq!(rec["result"]["summary"], format!("done in {id}"), "{rec}");
    // (Removed just after the RESULT is sent.)
    let wt = repo.join(".hive/worktrees").join(&id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while wt.exists() {
        assert!(Instant::now() < deadline, "{} stayed", wt.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    git(&["rev-parse", "--verify", "-q", "refs/heads/feature/x"]);

    let id = submit_with(&c, json!({"mode": "progress"}), json!({"repo": "/etc"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert!(
        rec["result"]["summary"]
            .as_str()
            .unwrap()
            .contains("outside the allowed roots"),
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_tasks_then_exits_0() {
    let dir = harness::temp_dir("consume-drain");
    let (_broker, port) = broker(&dir, &[]);
    let mut consume = consume(&dir, &[], &[]);
    let c = client(port).await;
    let id = submit(&c, json!({"mode": "slow"})).await;
    wait_state(&c, &id, &["working"]).await;
    let pid = consume.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = consume.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hive consume did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(harness::show(&c, &id).await["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_kills_the_running_agent_and_the_task_runs_again() {
    let dir = harness::temp_dir("consume-restart");
    let (b, port) = broker(&dir, &[]);
    let _consume = consume(&dir, &[], &[]);
    let c = client(port).await;
    let id = submit_with(&c, json!({"mode": "grandchild"}), json!({"maxAttempts": 3})).await;
    let first = grandchild(&c, &id).await;
    let before = harness::show(&c, &id).await["lease"]["consumer"].clone();
    drop(c);
    drop(b);
    // The connection is gone: the lease with it, so the agent's group is killed.
    gone(first).await;
    let (_b, port) = broker(&dir, &[]);
    let c = client(port).await;
    // `hive consume` found the new port, and the queue ran the task again (an
    // attempt cut by a restart does not count) on the new session.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = harness::show(&c, &id).await;
        let leased = &rec["lease"]["consumer"];
        if rec["state"] == "working" && leased.is_string() && *leased != before {
            assert!(
                rec["history"].to_string().contains("broker restarted"),
                "{rec}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never re-run: {rec}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new run's grandchild is a new process, and a cancel ends it too (a test
    // leaves no process behind).
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let seen = events_with(&c, &id, "grandchild").await;
        if seen.len() == 2 {
            break seen[1]["grandchild"].as_u64().unwrap() as u32;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(first, second);
    c.command("op.queue.cancel", json!({"task": id}))
        .await
        .unwrap();
    gone(second).await;
}

#[tokio::test]
async fn sdk_fail_is_final_and_heartbeats_follow_a_short_lease() {
    let q = harness::start(harness::config()).await;
    let c = q.client().await;
    // A task whose own timeout (600 ms) is far below the kind's 5 s default.
    let mut body = harness::task("work", "sdk-short", "normal");
    body["timeout"] = json!(600);
    body["maxAttempts"] = json!(1);
    let id = harness::submit(&c, body).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = Consumer::connect(&q.url, &["work"], 1).await.unwrap();
    let l = w.next_lease().await.unwrap();
    assert_eq!(l.lease_ms(), Some(600));
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(harness::show(&c, &id).await["state"], "leased");
    l.fail("no luck").await.unwrap();
    // Ends with the RESULT, and no ERROR `abandoned` after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec = harness::show(&c, &id).await;
    assert_eq!(rec["result"]["summary"], "no luck", "{rec}");
    assert!(!rec.to_string().contains("abandoned"), "{rec}");
    assert!(!rec.to_string().contains("dropped the lease"), "{rec}");
    q.stop().await;
}

#[test]
fn consume_help_shows_examples_and_exit_codes() {
    let h = Command::new(hive())
        .args(["consume", "--help"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&h.stdout);
    assert!(h.status.success());
    assert!(
        t.contains("Examples:") && t.contains("Exit codes:") && t.contains("hive consume"),
        "{t}"
    );
    // A template with an unknown placeholder is a usage error, before any connection.
    let out = Command::new(hive())
        .args(["consume", "--kinds", "x", "--", "agent", "{nope}"])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown placeholder"));
    // `{model}` has no value until `--model` gives one.
    let out = Command::new(hive())
        .args(["consume", "--kinds", "x", "--", "agent", "--model={model}"])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"));
}
