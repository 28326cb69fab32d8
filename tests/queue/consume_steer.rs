//! `hive exec` and consumer control, end to end: `hive broker` and `hive consume` as
//! child processes, agents that are bash scripts (`tests/agents/wrapped.sh` asks
//! only through `hive exec`; `scripted.sh listen` is steered by control frames), and
//! real WebSocket clients with real credentials.

use crate::cli::{broker, hive, Reaped};
use crate::consume::{client, events_with, script, stream, submit, wait_state};
use crate::harness;
use hivebus::client::{Client, ClientError, Hello};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wrapped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/agents/wrapped.sh")
}

/// `hive consume` for kind `agent` in `dir` with `flags`, running `template`.
fn consume(dir: &Path, flags: &[&str], template: &[&str]) -> Reaped {
    Reaped(
        Command::new(hive())
            .arg("--dir")
            .arg(dir)
            .args(["consume", "--kinds", "agent", "--kill-grace", "1s"])
            .args(flags)
            .arg("--")
            .args(template)
            .env_remove("HIVE_WS_PORT")
            .env_remove("HIVE_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The plain output lines of a task's agent, as `stream:line`.
async fn lines(c: &Client, id: &str) -> Vec<String> {
    events_with(c, id, "line")
        .await
        .iter()
        .map(|l| {
            format!(
                "{}:{}",
                l["stream"].as_str().unwrap_or(""),
                l["line"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_exec_runs_allowed_asks_for_others_and_refuses_denied_ones_with_126() {
    let dir = harness::temp_dir("exec");
    let cfg = dir.join("hive.toml");
    std::fs::write(
        &cfg,
        "[[approval.rules]]\nname = \"harmless\"\ncommand = [\"echo\", \"false\"]\ndecision = \"allow\"\n",
    )
    .unwrap();
    let (_broker, port) = broker(&dir, &["--config", cfg.to_str().unwrap()]);
    let w = wrapped();
    let _consume = consume(
        &dir,
        &[],
        &["bash", w.to_str().unwrap(), "{args.mode}", "{args.cmd}"],
    );
    let c = client(port).await;
    let summary = |rec: &Value| rec["result"]["summary"].as_str().unwrap_or("").to_owned();

    // Allowed by a rule: run at once, its output is the agent's, its status passed on.
    let id = submit(&c, json!({"mode": "exec", "cmd": "echo allowed-ran"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(summary(&rec), "exec exit 0", "{rec}");
    assert!(lines(&c, &id)
        .await
        .contains(&"stdout:allowed-ran".to_owned()));
    // The same APPROVAL request as a JSON-lines agent's, judged by the same policy.
    let frames = stream(&c, &id).await;
    let asked = frames
        .iter()
        .find(|f| f["type"] == "APPROVAL" && f["payload"]["command"] == "echo allowed-ran")
        .expect("the request in the task's stream");
    assert_eq!(asked["payload"]["tool"], "shell");
    assert_eq!(asked["payload"]["reason"], "scripted");
    assert!(asked["payload"].get("secret").is_none(), "{asked}");
    let text = serde_json::to_string(&frames).unwrap();
    assert!(text.contains("policy:harmless"), "{text}");
    let id = submit(&c, json!({"mode": "exec", "cmd": "false"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(
        summary(&rec),
        "exec exit 1",
        "the command's own status: {rec}"
    );

    // Nothing decides `touch`: a person is asked, and it runs only once approved.
    let id = submit(&c, json!({"mode": "exec", "cmd": "touch made-by-exec"})).await;
    wait_state(&c, &id, &["waiting_approval"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !dir.join("made-by-exec").exists(),
        "ran before the decision"
    );
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(summary(&rec), "exec exit 0", "{rec}");
    assert!(dir.join("made-by-exec").exists());

    // Denied by the policy: not run, 126, one line on stderr saying who and why.
    let id = submit(&c, json!({"mode": "exec", "cmd": "rm -rf /"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(summary(&rec), "exec exit 126", "{rec}");
    let out = lines(&c, &id).await;
    assert!(
        out.iter()
            .any(|l| l.starts_with("stderr:hive exec: refused:")
                && l.contains("policy:builtin:rm-rf-root")),
        "{out:?}"
    );

    // Denied by a person: 126 as well.
    let id = submit(&c, json!({"mode": "exec", "cmd": "touch denied-file"})).await;
    wait_state(&c, &id, &["waiting_approval"]).await;
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "deny", "reason": "not today"}),
    )
    .await
    .unwrap();
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(summary(&rec), "exec exit 126", "{rec}");
    assert!(!dir.join("denied-file").exists());
    assert!(lines(&c, &id).await.iter().any(|l| l.contains("not today")));

    // A process with the socket but not the secret asks nothing.
    let id = submit(&c, json!({"mode": "forge", "cmd": "echo forged"})).await;
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(summary(&rec), "exec exit 126", "{rec}");
    assert!(lines(&c, &id)
        .await
        .iter()
        .any(|l| l.contains("wrong or missing secret")));
    assert!(
        !stream(&c, &id)
            .await
            .iter()
            .any(|f| f["type"] == "APPROVAL"),
        "a forged request reached the broker"
    );
}

#[test]
fn hive_exec_outside_hive_consume_refuses_and_says_why() {
    let dir = harness::temp_dir("exec-outside");
    let out = Command::new(hive())
        .args(["exec", "--", "touch"])
        .arg(dir.join("should-not-exist"))
        .env_remove("HIVE_EXEC_SOCKET")
        .env_remove("HIVE_EXEC_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run under `hive consume`"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!dir.join("should-not-exist").exists());
    let help = Command::new(hive())
        .args(["exec", "--help"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&help.stdout);
    assert!(t.contains("Examples") && t.contains("126"), "{t}");
}

/// Tokens of the control test: bob owns the task, carol shares its room but may not
/// manage it, watch observes, root is an admin, agent is `hive consume`.
const TOKENS: &str = r#"
[[auth.tokens]]
token = "tok-bob-0000000000000"
subject = "bob"
role = "client"
publish = ["bip-43:*"]
subscribe = ["bip-43:*"]

[[auth.tokens]]
token = "tok-carol-00000000000"
subject = "carol"
role = "client"
publish = ["bip-43:*"]
subscribe = ["bip-43:*"]

[[auth.tokens]]
token = "tok-watch-00000000000"
subject = "watch"
role = "observer"

[[auth.tokens]]
token = "tok-root-000000000000"
subject = "root"
role = "admin"

[[auth.tokens]]
token = "tok-agent-00000000000"
subject = "agent"
role = "consumer"
"#;

async fn as_(port: u16, who: &str, role: &str) -> Client {
    let mut h = Hello::role(role);
    h.auth = Some(format!("tok-{who}-{}", "0".repeat(21 - 5 - who.len())));
    Client::connect(&format!("ws://127.0.0.1:{port}/"), h)
        .await
        .unwrap()
}

fn code(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Server(w)) => w.code.to_string(),
        other => format!("{other:?}"),
    }
}

/// The `listening` events of a task, as (model, control).
async fn listening(c: &Client, id: &str, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: Vec<(String, String)> = events_with(c, id, "stage")
            .await
            .iter()
            .filter(|e| e["stage"] == "listening")
            .map(|e| {
                (
                    e["model"].as_str().unwrap_or("").to_owned(),
                    e["control"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if seen.len() >= n {
            return seen;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_control_is_acknowledged_for_the_tasks_owner_and_refused_to_others() {
    let dir = harness::temp_dir("control");
    let cfg = dir.join("hive.toml");
    std::fs::write(&cfg, TOKENS).unwrap();
    let (_broker, port) = broker(&dir, &["--config", cfg.to_str().unwrap()]);
    let s = script();
    let _consume = consume(
        &dir,
        &["--token", "tok-agent-00000000000", "--model", "m-1"],
        &["bash", s.to_str().unwrap(), "{args.mode}", "{model}"],
    );
    let bob = as_(port, "bob", "client").await;
    let id = submit(&bob, json!({"mode": "listen"})).await;
    assert_eq!(
        listening(&bob, &id, 1).await[0],
        ("m-1".into(), String::new())
    );
    let consumer = harness::show(&bob, &id).await["lease"]["consumer"]
        .as_str()
        .unwrap()
        .to_owned();
    let control = |action: &str, value: Value| json!({"consumer": consumer, "action": action, "value": value});

    // Not bob's to share: carol (same room, not the owner, no `manage`), an
    // observer, and an unknown consumer.
    let carol = as_(port, "carol", "client").await;
    let r = carol
        .command("op.queue.control", control("model", json!("evil")))
        .await;
    assert_eq!(code(r), "forbidden");
    let watch = as_(port, "watch", "observer").await;
    let r = watch
        .command("op.queue.control", control("chat", json!("hi")))
        .await;
    assert_eq!(code(r), "forbidden");
    let root = as_(port, "root", "admin").await;
    let r = root
        .command(
            "op.queue.control",
            json!({"consumer": "s-nope", "action": "new_session"}),
        )
        .await;
    assert_eq!(code(r), "not_found");
    let r = bob
        .command("op.queue.control", control("reboot", Value::Null))
        .await;
    assert_eq!(code(r), "invalid_field");
    let r = bob
        .command("op.queue.control", control("model", json!("--inject")))
        .await;
    assert_eq!(code(r), "invalid_field");

    // The owner, through the CLI: acknowledged with what the consumer did.
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["--token", "tok-bob-0000000000000", "--json"])
        .args(["agent", "control", &consumer, "model=m-2"])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ack["result"]["model"], "m-2", "{ack}");

    // A chat line reaches the agent's stdin (it speaks the protocol).
    let r = bob
        .command("op.queue.control", control("chat", json!("use v2")))
        .await
        .unwrap();
    assert_eq!(r["result"]["delivered"], 1, "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&bob, &id)
        .await
        .iter()
        .any(|l| l == r#"stdout:got: {"chat":{"by":"bob","message":"use v2"}}"#)
    {
        assert!(Instant::now() < deadline, "{:?}", lines(&bob, &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A new session restarts the agent in the same attempt, with the new model.
    let r = bob
        .command("op.queue.control", control("new_session", Value::Null))
        .await
        .unwrap();
    assert_eq!(r["result"]["restarted"], 1, "{r}");
    let seen = listening(&bob, &id, 2).await;
    assert_eq!(seen[1], ("m-2".into(), "new_session".into()), "{seen:?}");
    assert_eq!(harness::show(&bob, &id).await["attempt"], 1);
    bob.command("op.queue.control", control("chat", json!("finish")))
        .await
        .unwrap();
    let rec = wait_state(&bob, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["result"]["summary"], "finished with model m-2", "{rec}");

    // The next attempt starts with m-2; an idle consumer is the admin's alone.
    let r = bob
        .command("op.queue.control", control("clear_memory", Value::Null))
        .await;
    assert_eq!(code(r), "forbidden");
    let r = root
        .command("op.queue.control", control("model", json!("m-3")))
        .await
        .unwrap();
    assert_eq!(r["result"]["model"], "m-3");
    let id = submit(&bob, json!({"mode": "listen"})).await;
    assert_eq!(listening(&bob, &id, 1).await[0].0, "m-3");
    bob.command("op.queue.control", control("chat", json!("finish")))
        .await
        .unwrap();
    wait_state(&bob, &id, &["succeeded", "dead"]).await;

    // An agent that never printed a protocol line cannot be sent chat; it can be
    // restarted.
    let id = submit(&bob, json!({"mode": "mute"})).await;
    let first = "stdout:working quietly, model m-3, control none";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&bob, &id).await.iter().any(|l| l == first) {
        assert!(Instant::now() < deadline, "{:?}", lines(&bob, &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = bob
        .command("op.queue.control", control("chat", json!("hello?")))
        .await;
    assert_eq!(code(r), "conflict");
    let r = bob
        .command("op.queue.control", control("clear_memory", Value::Null))
        .await
        .unwrap();
    assert_eq!(r["result"]["restarted"], 1, "{r}");
    let again = "stdout:working quietly, model m-3, control clear_memory";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&bob, &id).await.iter().any(|l| l == again) {
        assert!(Instant::now() < deadline, "{:?}", lines(&bob, &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bob.command("op.queue.cancel", json!({"task": id}))
        .await
        .unwrap();

    // An agent waiting for an approval is not restarted (its decision would reach
    // the new one).
    let id = submit(&bob, json!({"mode": "approve-build"})).await;
    wait_state(&bob, &id, &["waiting_approval"]).await;
    let r = bob
        .command("op.queue.control", control("new_session", Value::Null))
        .await;
    assert_eq!(code(r), "conflict");
    bob.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    let rec = wait_state(&bob, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");

    // `hive agent list` shows the consumer to an admin.
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args([
            "--token",
            "tok-root-000000000000",
            "--role",
            "admin",
            "--json",
        ])
        .args(["agent", "list"])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["session"] == consumer.as_str()),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_tail_on_a_terminal_asks_about_a_pending_approval_and_sends_the_answer() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let dir = harness::temp_dir("tail-prompt");
    let (_broker, port) = broker(&dir, &[]);
    let s = script();
    let _consume = consume(&dir, &[], &["bash", s.to_str().unwrap(), "{args.mode}"]);
    let c = client(port).await;
    let id = submit(&c, json!({"mode": "approve-build"})).await;
    wait_state(&c, &id, &["waiting_approval"]).await;
    // `hive tail` on a pseudo-terminal (script(1)), a person typing on it.
    let tail = format!("{} --dir {} tail {id}", hive().display(), dir.display());
    let mut child = Reaped(
        Command::new("script")
            .args(["-qec", &tail, "/dev/null"])
            .env_remove("HIVE_WS_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.0.stdout.take().unwrap();
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let text = || seen.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text().contains("approve? [y]es once / [n]o / [s]ession / [a]lways") {
        assert!(Instant::now() < deadline, "no question: {}", text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text().contains("APPROVAL asks to run: rm -rf build"),
        "{}",
        text()
    );
    let mut stdin = child.0.stdin.take().unwrap();
    // Not an answer: asked again, and nothing is sent.
    stdin.write_all(b"maybe\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while text().matches("approve? [y]es").count() < 2 {
        assert!(Instant::now() < deadline, "not asked again: {}", text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(harness::show(&c, &id).await["state"], "waiting_approval");
    stdin.write_all(b"y\n").unwrap();
    let rec = wait_state(&c, &id, &["succeeded", "dead"]).await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    let decided = stream(&c, &id)
        .await
        .into_iter()
        .find(|f| f["type"] == "APPROVAL" && f["payload"]["decision"] == "approve")
        .expect("the decision in the stream");
    assert_eq!(decided["payload"]["scope"], "once", "{decided}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "tail did not end: {}", text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", text());
    drop(stdin);
}

#[tokio::test]
async fn a_control_is_answered_only_by_its_consumer_and_fails_when_that_consumer_leaves() {
    let q = harness::start(harness::config()).await;
    let mut w1 = q.consumer(&["job"], 1).await;
    let w2 = q.consumer(&["job"], 1).await;
    let target = w1.session().to_owned();
    let ask = |value: &str| {
        let (url, target, value) = (q.url.clone(), target.clone(), value.to_owned());
        tokio::spawn(async move {
            let admin = Client::connect(&url, Hello::role("admin")).await.unwrap();
            admin
                .command(
                    "op.queue.control",
                    json!({"consumer": target, "action": "chat", "value": value}),
                )
                .await
        })
    };
    let asked = ask("hi");
    let e = harness::next_notice(&mut w1).await;
    assert_eq!(
        (
            &e.payload["event"],
            &e.payload["action"],
            &e.payload["value"]
        ),
        (&json!("control"), &json!("chat"), &json!("hi")),
        "{}",
        e.to_text()
    );
    let id = e.payload["control"].clone();
    // Another consumer cannot answer it (nor cancel it by trying).
    let r = w2
        .command("op.queue.control.ack", json!({"control": id, "ok": true}))
        .await;
    assert_eq!(code(r), "not_found");
    w1.command(
        "op.queue.control.ack",
        json!({"control": id, "ok": false, "code": "conflict", "message": "busy"}),
    )
    .await
    .unwrap();
    assert_eq!(code(asked.await.unwrap()), "conflict");
    // Answered twice: the second finds nothing.
    let r = w1
        .command("op.queue.control.ack", json!({"control": id, "ok": true}))
        .await;
    assert_eq!(code(r), "not_found");

    // A consumer that leaves without answering: the sender hears so at once.
    let asked = ask("anyone?");
    harness::next_notice(&mut w1).await;
    drop(w1);
    let r = asked.await.unwrap();
    assert_eq!(code(r), "operator_error");
    // A client may not steer a consumer that runs none of its tasks.
    let c = q.client().await;
    let r = c
        .command(
            "op.queue.control",
            json!({"consumer": w2.session(), "action": "new_session"}),
        )
        .await;
    assert_eq!(code(r), "forbidden");
    q.stop().await;
}
