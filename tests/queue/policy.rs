//! The approval policy (`ops::approval`) as the queue's action gate, over the wire: a
//! consumer's APPROVAL requests are allowed, denied or left to a person by the
//! `[approval]` rules and the built-in destructive list, each decision named by the
//! rule that made it. Real broker, real clients.

use crate::approval_durable as durable;
use crate::harness::*;
use hivebus::client::Client;
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::approval::{ApprovalConfig, Policy, PolicyGate};
use serde_json::{json, Value};
use std::sync::Arc;

const POLICY: &str = r#"
[approval]
default = "ask"

[[approval.rules]]
name = "tests"
command = "cargo test"
decision = "allow"
reason = "tests only build and run"
examples = { match = ["cargo test --all"], not_match = ["cargo publish"] }

[[approval.rules]]
name = "no-main"
command = "git push * main"
decision = "deny"
reason = "main is protected"

[[approval.rules]]
name = "src-writes"
tool = "write"
paths = ["src/**", "tests/**"]
decision = "allow"
"#;

async fn ask(c: &Client, lease: &Envelope, mut action: Value) -> Value {
    action["reason"] = json!("step 1");
    c.request(about(lease, FrameType::Approval, action))
        .await
        .unwrap()
}

/// Asserts that the policy decided at once, as `decision` by `by`.
async fn decided(w: &mut Client, r: &Value, decision: &str, by: &str) -> Envelope {
    assert_eq!(
        (r["decision"].as_str(), r["by"].as_str()),
        (Some(decision), Some(by)),
        "{r}"
    );
    let d = next_decision(w).await;
    assert_eq!(d.payload["decision"], decision);
    assert_eq!(d.payload["by"], by);
    d
}

/// Asserts that a person is asked, and answers as one.
async fn person_asked(c: &Client, w: &mut Client, id: &str, r: &Value) {
    assert_eq!(r["state"], "waiting_approval", "{r}");
    assert_eq!(show(c, id).await["state"], "waiting_approval");
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    assert_eq!(next_decision(w).await.payload["by"], "anonymous");
}

#[tokio::test]
async fn the_policy_allows_denies_and_asks_part_by_part_over_the_wire() {
    let approval = ApprovalConfig::from_toml(POLICY).unwrap();
    let policy = Policy::from_config(&approval).unwrap();
    let q = start(config()).await;
    q.queue.add_gate(Arc::new(PolicyGate::new(policy)));
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    submit(&c, task("build", "policy-1", "normal"))
        .await
        .unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);

    // Allowed by a rule (no `tool`: a command is a shell command).
    let r = ask(
        &w,
        &lease,
        json!({"command": "cargo test --all", "cwd": "/w"}),
    )
    .await;
    let d = decided(&mut w, &r, "approve", "policy:tests").await;
    assert_eq!(d.payload["reason"], "tests only build and run");

    // Denied by the built-in list, through a wrapper.
    let r = ask(
        &w,
        &lease,
        json!({"tool": "shell", "command": "sudo rm -rf /"}),
    )
    .await;
    let d = decided(&mut w, &r, "deny", "policy:builtin:rm-rf-root").await;
    assert_eq!(d.payload["lease"], lease.payload["lease"]);
    assert_eq!(show(&c, &id).await["state"], "working");

    // A compound command with one denied part is denied, naming that part.
    let r = ask(
        &w,
        &lease,
        json!({"command": "cargo test && git push origin main"}),
    )
    .await;
    let d = decided(&mut w, &r, "deny", "policy:no-main").await;
    let reason = d.payload["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("git push origin main"), "{reason}");
    assert!(reason.contains("main is protected"), "{reason}");

    // A write inside the allowlist is allowed; `..` is resolved first.
    let r = ask(
        &w,
        &lease,
        json!({"tool": "write", "path": "../src/lib.rs", "cwd": "/w/app", "worktree": "/w"}),
    )
    .await;
    decided(&mut w, &r, "approve", "policy:src-writes").await;

    // A write outside it: a person decides.
    let r = ask(
        &w,
        &lease,
        json!({"tool": "write", "path": "../../etc/passwd", "cwd": "/w/app", "worktree": "/w"}),
    )
    .await;
    person_asked(&c, &mut w, &id, &r).await;

    // A command the splitter cannot follow asks; it is never allowed.
    let r = ask(&w, &lease, json!({"command": "cargo test 'unclosed"})).await;
    person_asked(&c, &mut w, &id, &r).await;

    finish(&w, &lease, "ok").await.unwrap();
    q.stop().await;
}

/// `hive policy check` reads `[approval]` from any TOML file and exits with the
/// decision: 0 allow, 1 deny, 3 ask, 2 for a policy whose examples fail.
#[test]
fn hive_policy_check_exits_with_the_decision() {
    let dir = temp_dir("policy-cli");
    let good = dir.join("hive.toml");
    std::fs::write(&good, format!("[server]\nanything = 1\n{POLICY}")).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"allow\"\nexamples = { match = [\"cat x\"] }\n",
    )
    .unwrap();
    let check = |args: &[&str], config: &std::path::Path| {
        let o = std::process::Command::new(crate::cli::hive())
            .args(["policy", "check", "--json", "--config"])
            .arg(config)
            .args(args)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (
            o.status.code(),
            json,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, v, _) = check(&["cargo test --all"], &good);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (Some(0), Some("allow")),
        "{v}"
    );
    let (code, v, _) = check(&["cargo test && git push origin main"], &good);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["parts"][1]["rule"]["name"], "no-main", "{v}");
    assert_eq!(v["parts"][1]["rule"]["index"], 1, "{v}");
    let (code, v, _) = check(&["make install"], &good);
    assert_eq!((code, v["rule"].clone()), (Some(3), Value::Null), "{v}");
    let (code, _, err) = check(&["ls"], &bad);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("rules[0]") && err.contains("`cat x`"), "{err}");
    for args in [&["policy", "--help"][..], &["policy", "check", "--help"]] {
        let h = std::process::Command::new(crate::cli::hive())
            .args(args)
            .output()
            .unwrap();
        let t = String::from_utf8_lossy(&h.stdout);
        assert!(h.status.success(), "{args:?}");
        assert!(
            t.contains("Examples:") && t.contains("3  ask"),
            "{args:?}: {t}"
        );
    }
}

/// Every TOML example in `docs/APPROVALS.md` compiles as a policy (examples checked),
/// so the guide cannot drift from the code.
#[test]
fn the_config_examples_in_approvals_md_compile() {
    let md = include_str!("../../docs/APPROVALS.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match (current.as_mut(), line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 2, "{blocks:?}");
    for b in &blocks {
        let c = ApprovalConfig::from_toml(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert!(!c.rules.is_empty(), "{b}");
        Policy::from_config(&c).unwrap_or_else(|e| panic!("{e}\n{b}"));
    }
    let c = ApprovalConfig::from_toml(&blocks[0]).unwrap();
    let p = Policy::from_config(&c).unwrap();
    let d = p.decide(&hivebus::ops::approval::Action::shell(
        "cargo test --all && git push origin main",
    ));
    assert_eq!(d.rule.map(|r| r.name), Some("no-push-main".to_owned()));
}

#[tokio::test]
async fn hive_broker_applies_its_approval_section_and_refuses_a_policy_whose_examples_fail() {
    // A policy whose example contradicts its rule: the broker does not start.
    let dir = temp_dir("policy-broker");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"allow\"\nexamples = { match = [\"cat x\"] }\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::cli::hive())
        .arg("--dir")
        .arg(&dir)
        .args(["broker", "--no-logs", "--config"])
        .arg(&bad)
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a broken policy");
    assert!(err.contains("[approval]") && err.contains("cat x"), "{err}");
    // A good one: the built-in list denies `rm -rf /` at once; the rule allows tests.
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[approval.rules]]\ncommand = \"cargo test *\"\ndecision = \"allow\"\nreason = \"tests\"\n",
    )
    .unwrap();
    let config = good.to_string_lossy().into_owned();
    let (_broker, port) = crate::cli::broker(&dir, &["--config", &config]);
    let url = format!("ws://127.0.0.1:{port}/");
    let c = Client::connect(&url, hivebus::client::Hello::role("client"))
        .await
        .unwrap();
    let mut h = hivebus::client::Hello::role("consumer");
    h.capabilities = vec!["build".into()];
    let mut w = Client::connect(&url, h).await.unwrap();
    w.command("op.queue.consume", json!({})).await.unwrap();
    submit(&c, task("build", "gate-broker-1", "normal"))
        .await
        .unwrap();
    let lease = next_lease(&mut w).await;
    let r = ask(&w, &lease, json!({"command": "cd build && rm -rf /"})).await;
    assert_eq!(r["decision"], "deny", "{r}");
    assert!(
        r["by"].as_str().unwrap().starts_with("policy:builtin:"),
        "{r}"
    );
    let r = ask(&w, &lease, json!({"command": "cargo test --all"})).await;
    assert_eq!(r["decision"], "approve", "{r}");
}

/// `op.approval.reload` on a real `hive broker` process (see `approval_durable`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reloads_the_policy_and_a_failing_example_keeps_the_old_one() {
    let dir = temp_dir("approval-reload");
    let base = durable::POLICY;
    let b = durable::Broker::start(&dir, &durable::config(base));
    let root = b.as_("root").await;
    let ops = b.as_("ops").await;
    let check = json!({"command": "cargo test --all", "bip": 1, "kind": "job"});
    assert_eq!(
        ops.command("op.approval.check", check.clone())
            .await
            .unwrap()["verdict"],
        "ask"
    );
    let allow_tests = format!(
        "{base}\n[[approval.rules]]\nname = \"tests\"\ncommand = \"cargo test\"\ndecision = \"allow\"\ntimeout_secs = 30\n"
    );
    std::fs::write(&b.config, durable::config(&allow_tests)).unwrap();
    // Not an admin: refused, nothing changes.
    let denied = ops.command("op.approval.reload", json!({})).await;
    assert_eq!(durable::code(denied), "forbidden");
    assert_eq!(
        ops.command("op.approval.check", check.clone())
            .await
            .unwrap()["verdict"],
        "ask"
    );
    let r = root.command("op.approval.reload", json!({})).await.unwrap();
    assert_eq!(r["rules"], 3, "{r}");
    let c = ops
        .command("op.approval.check", check.clone())
        .await
        .unwrap();
    assert_eq!(
        (c["verdict"].as_str(), c["origin"].as_str()),
        (Some("allow"), Some("config")),
        "{c}"
    );
    // An example that fails: refused, naming the rule and the example; the policy
    // in force stays.
    let broken = format!(
        "{base}\n[[approval.rules]]\nname = \"lint\"\ncommand = \"cargo clippy\"\ndecision = \"allow\"\nexamples = {{ match = [\"cargo fmt\"] }}\n"
    );
    std::fs::write(&b.config, durable::config(&broken)).unwrap();
    let e = root
        .command("op.approval.reload", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_field"), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("rules[2]") && msg.contains("cargo fmt"),
        "{msg}"
    );
    let c = ops
        .command("op.approval.check", check.clone())
        .await
        .unwrap();
    assert_eq!(c["verdict"], "allow", "the old policy stays: {c}");
    // A bad timeout is refused the same way.
    std::fs::write(&b.config, durable::config("[approval]\ntimeout_secs = 0\n")).unwrap();
    assert_eq!(
        durable::code(root.command("op.approval.reload", json!({})).await),
        "invalid_field"
    );
    // The CLI, as an admin, with the file fixed.
    std::fs::write(&b.config, durable::config(durable::POLICY)).unwrap();
    let (rc, out) = b.hive("root", &["policy", "reload"]);
    assert_eq!(rc, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["reloaded"].as_str().unwrap().ends_with("hive.toml"),
        "{out}"
    );
    assert_eq!(
        ops.command("op.approval.check", check).await.unwrap()["verdict"],
        "ask"
    );
    let (rc, _) = b.hive("ops", &["policy", "reload"]);
    assert_ne!(rc, 0, "a non-admin's reload fails");
}
