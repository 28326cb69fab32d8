//! Blocking rules, scope globs, size limits and the live policy commands
//! `op.safety.get` / `op.safety.reload`.

use super::harness::{assert_error, config_with, reply_of, start};
use hivebus::auth::authority::{Need, On, Right, SUBMITTERS};
use hivebus::safety::Mode;
use serde_json::json;

const KEY_BLOCK: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----";

#[tokio::test]
async fn a_blocking_rule_refuses_the_publish_with_blocked_and_nothing_reaches_anyone() {
    let mut config = config_with(Mode::Enforce);
    config.safety.rules =
        vec![serde_json::from_value(json!({"name": "private_key", "action": "block"})).unwrap()];
    let srv = start(config).await;
    let mut sub = srv.hello("client", None).await;
    sub.join("ops:deploy").await;
    let mut p = srv.hello("client", None).await;
    p.join("ops:deploy").await;
    let r = p
        .publish("k", "ops:deploy", json!({"key": KEY_BLOCK}))
        .await;
    assert_error(&r, "blocked", Some("k"));
    assert_eq!(r["payload"]["details"]["rule"], "private_key");
    // Nothing was delivered or kept: the next publish is the first thing the
    // subscriber sees, at offset 1.
    reply_of(
        &p.publish("ok", "ops:deploy", json!({"text": "hello"}))
            .await,
        "ok",
    );
    let got = sub.recv().await;
    assert_eq!(
        (got["payload"]["text"].as_str(), got["offset"].as_u64()),
        (Some("hello"), Some(1))
    );
    let h = sub
        .command("h", "history", json!({"address": "ops:deploy"}))
        .await;
    assert_eq!(reply_of(&h, "h")["messages"].as_array().unwrap().len(), 1);
    assert_eq!(srv.safety.stats().blocked, 1);
    srv.stop().await;
}

#[tokio::test]
async fn oversized_payloads_are_blocked_in_enforce_mode() {
    let mut config = config_with(Mode::Enforce);
    config.safety.max_payload_bytes = 64;
    let srv = start(config).await;
    let mut p = srv.hello("client", None).await;
    p.join("a:b").await;
    let r = p
        .publish("big", "a:b", json!({"text": "x".repeat(100)}))
        .await;
    assert_error(&r, "blocked", Some("big"));
    assert_eq!(r["payload"]["details"]["rule"], "max_payload_bytes");
    reply_of(
        &p.publish("small", "a:b", json!({"text": "x"})).await,
        "small",
    );
    srv.stop().await;
}

#[tokio::test]
async fn scope_globs_decide_which_addresses_are_redacted() {
    let mut config = config_with(Mode::Enforce);
    config.safety.include = vec!["secure-*".into(), "bip-*:review_*".into()];
    config.safety.exclude = vec!["secure-lab:*".into()];
    let srv = start(config).await;
    let mut p = srv.hello("client", None).await;
    let secret = "AKIAIOSFODNN7EXAMPL3";
    for (addr, redacted) in [
        ("secure-ops:general", true),
        ("bip-43:review_bip", true),
        ("bip-43:implement_bip", false),
        ("secure-lab:notes", false),
        ("lobby:general", false),
    ] {
        p.join(addr).await;
        let r = p.publish(addr, addr, json!({"text": secret})).await;
        reply_of(&r, addr);
        let hid = format!("h-{addr}");
        let h = p.command(&hid, "history", json!({"address": addr})).await;
        let text = reply_of(&h, &hid)["messages"][0]["payload"]["text"].clone();
        assert_eq!(text != secret, redacted, "{addr}: {text}");
        p.command(&format!("leave-{addr}"), "leave", json!({"address": addr}))
            .await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn op_safety_get_and_reload_are_admin_only_and_reload_takes_effect_live() {
    let srv = start(config_with(Mode::Monitor)).await;
    let mut client = srv.hello("client", None).await;
    for (i, name) in ["op.safety.get", "op.safety.reload"].iter().enumerate() {
        let id = format!("c{i}");
        assert_error(
            &client.command(&id, name, json!({})).await,
            "forbidden",
            Some(&id),
        );
    }
    let mut admin = srv.hello("admin", None).await;
    let g = admin.command("g", "op.safety.get", json!({})).await;
    let got = reply_of(&g, "g");
    assert_eq!(got["policy"]["mode"], "monitor");
    assert!(got["rules"].as_array().unwrap().len() >= 12);
    // Monitor: the secret passes as is.
    client.join("a:b").await;
    reply_of(
        &client
            .publish(
                "p1",
                "a:b",
                json!({"text": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}),
            )
            .await,
        "p1",
    );
    let r = admin
        .command(
            "r",
            "op.safety.reload",
            json!({"policy": {"mode": "enforce"}}),
        )
        .await;
    assert_eq!(reply_of(&r, "r")["mode"], "enforce");
    reply_of(
        &client
            .publish(
                "p2",
                "a:b",
                json!({"text": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}),
            )
            .await,
        "p2",
    );
    let h = client
        .command("h", "history", json!({"address": "a:b"}))
        .await;
    let msgs = reply_of(&h, "h")["messages"].as_array().unwrap().clone();
    assert_eq!(
        msgs[0]["payload"]["text"],
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
    );
    assert_eq!(msgs[1]["payload"]["text"], "[REDACTED:github_token]");
    let g = admin.command("g2", "op.safety.get", json!({})).await;
    assert_eq!(reply_of(&g, "g2")["stats"]["reloads"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_bad_reload_is_refused_and_the_running_policy_stays() {
    let srv = start(config_with(Mode::Enforce)).await;
    let mut admin = srv.hello("admin", None).await;
    for (i, bad) in [
        json!({"policy": {"rules": [{"name": "x", "pattern": "("}]}}),
        json!({"policy": {"include": ["Not A Glob"]}}),
        json!({"policy": {"mode": "loud"}}),
        json!({"policy": {"redact_paths": ["env.*"]}}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("b{i}");
        let r = admin.command(&id, "op.safety.reload", bad).await;
        assert_error(&r, "invalid_field", Some(&id));
    }
    assert_eq!(srv.safety.active().mode(), Mode::Enforce);
    assert_eq!(srv.safety.stats().reloads, 0);
    srv.stop().await;
}

#[tokio::test]
async fn custom_rules_and_redaction_paths_from_the_config_apply_in_order() {
    let mut config = config_with(Mode::Enforce);
    config.safety.rules = vec![serde_json::from_value(json!({
        "name": "ticket", "pattern": "TICKET-[0-9]{6}", "keywords": ["ticket-"]
    }))
    .unwrap()];
    config.safety.redact_paths = vec!["payload.env.*".into()];
    let srv = start(config).await;
    let mut p = srv.hello("client", None).await;
    p.join("a:b").await;
    let payload = json!({"text": "see TICKET-123456", "env": {"HOME": "/root", "PATH": "/bin"}});
    reply_of(&p.publish("1", "a:b", payload).await, "1");
    let h = p.command("h", "history", json!({"address": "a:b"})).await;
    let got = &reply_of(&h, "h")["messages"][0]["payload"];
    assert_eq!(got["text"], "see [REDACTED:ticket]");
    assert_eq!(
        got["env"],
        json!({"HOME": "[REDACTED:payload.env.*]", "PATH": "[REDACTED:payload.env.*]"})
    );
    let g = srv.safety.active();
    assert_eq!(
        g.rule_names()[0],
        "ticket",
        "custom rules run first, in config order"
    );
    srv.stop().await;
}

/// An operator that records what it is handed, as a queue would store it.
#[derive(Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<serde_json::Value>>,
}

impl hivebus::ops::Operator for Recorder {
    fn namespace(&self) -> &str {
        "rec"
    }

    fn command<'a>(
        &'a self,
        _caller: &'a hivebus::ops::Caller,
        _name: &'a str,
        args: serde_json::Value,
    ) -> hivebus::ops::BoxFuture<'a, Result<serde_json::Value, hivebus::WireError>> {
        self.seen.lock().unwrap().push(args);
        Box::pin(async { Ok(json!({"stored": true})) })
    }

    fn command_need(
        &self,
        _: &hivebus::ops::Caller,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<Need, hivebus::WireError> {
        Ok(Need::new(SUBMITTERS, Right::None, On::Nothing).with_content())
    }

    fn frame_need(
        &self,
        _: &hivebus::ops::Caller,
        env: &hivebus::Envelope,
    ) -> Result<Need, hivebus::WireError> {
        let room = env.room.as_deref().unwrap_or_default();
        let addr = hivebus::Address::from_parts(room, env.channel.as_deref())?;
        Ok(Need::new(SUBMITTERS, Right::Publish, On::Address(addr)).with_content())
    }

    fn claims(&self, kind: hivebus::FrameType) -> bool {
        kind == hivebus::FrameType::Task
    }

    fn frame<'a>(
        &'a self,
        _caller: &'a hivebus::ops::Caller,
        env: hivebus::Envelope,
    ) -> hivebus::ops::BoxFuture<'a, Result<Option<serde_json::Value>, hivebus::WireError>> {
        self.seen.lock().unwrap().push(env.payload);
        Box::pin(async { Ok(Some(json!({"queued": true}))) })
    }
}

#[tokio::test]
async fn operators_are_handed_redacted_frames_and_command_args() {
    let rec = std::sync::Arc::new(Recorder::default());
    let srv =
        super::harness::start_full("127.0.0.1:0", config_with(Mode::Enforce), vec![rec.clone()])
            .await;
    let mut c = srv.hello("client", None).await;
    let key = "sk-proj-Xy7Qe2LmN4pR8sT0uV3wZ6aB9cD1eF5gH";
    c.send(json!({"id": "t", "type": "TASK", "room": "bip-43:implement_bip",
                  "payload": {"kind": "implement_bip", "args": {"env": format!("OPENAI_API_KEY={key}")}}}))
        .await;
    reply_of(&c.recv().await, "t");
    let r = c
        .command(
            "s",
            "op.rec.submit",
            json!({"args": {"note": format!("use {key}")}}),
        )
        .await;
    reply_of(&r, "s");
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for v in &seen {
        assert!(!v.to_string().contains(key), "{v}");
        assert!(v.to_string().contains("[REDACTED:provider_api_key]"), "{v}");
    }
    srv.stop().await;
}
