//! The webhook operator over the wire, in the assembled broker (`hivebus::broker`,
//! safety in enforce mode, tokens): a real HTTP receiver on 127.0.0.1:0 written here
//! (a small HTTP/1.1 server on a tokio socket), signatures checked with the test's own
//! HMAC, and the attacks a hostile local client would try: registering on a pattern
//! its token cannot read, listing or removing another identity's webhook, pointing a
//! webhook at a private address.

mod receiver;

use crate::harness::temp_dir;
use hivebus::broker::{self, BrokerOptions};
use hivebus::client::{Client, ClientError, Hello};
use hivebus::server::port::{self, Want};
use hivebus::Config;
use receiver::{receiver, slow_receiver, verify, Hit};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;

const T: Duration = Duration::from_secs(10);

fn tokens() -> Value {
    json!({"tokens": [
        {"token": "tok-root-0000000000", "subject": "root", "role": "admin"},
        {"token": "tok-alice-000000000", "subject": "alice", "role": "client",
         "publish": ["bip-1:*"], "subscribe": ["bip-1:*"]},
        {"token": "tok-bob-00000000000", "subject": "bob", "role": "client",
         "publish": ["bip-2:*"], "subscribe": ["bip-2:*"]},
        {"token": "tok-watch-000000000", "subject": "watch", "role": "observer"}
    ]})
}

struct Broker {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), String>>,
}

/// The assembled broker on `dir`, with `[webhook]` = `webhook`.
async fn start(dir: &Path, webhook: Value) -> Broker {
    let mut config: Config = serde_json::from_value(json!({
        "auth": tokens(), "safety": {"mode": "enforce"}, "webhook": webhook,
    }))
    .unwrap();
    config.server.idle_timeout_ms = 86_400_000;
    let _ = std::fs::remove_file(port::port_file(dir));
    let (tx, rx) = oneshot::channel::<()>();
    let opts = BrokerOptions {
        host: [127, 0, 0, 1].into(),
        want: Want::Exactly(0),
        dir: dir.to_owned(),
        config,
        config_path: None,
    };
    let handle = tokio::spawn(broker::run(opts, async {
        let _ = rx.await;
    }));
    let mut found = None;
    for _ in 0..400 {
        if let Ok(p) = port::read_port_file(&port::port_file(dir)) {
            found = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let port = found.expect("the broker wrote its port file");
    Broker {
        url: format!("ws://127.0.0.1:{port}/"),
        stop: Some(tx),
        handle,
    }
}

impl Broker {
    async fn as_(&self, who: &str) -> Client {
        let role = match who {
            "root" => "admin",
            "watch" => "observer",
            _ => "client",
        };
        let mut h = Hello::role(role);
        h.auth = Some(format!("tok-{who}-{}", "0".repeat(19 - 5 - who.len())));
        let mut c = Client::connect(&self.url, h).await.unwrap();
        c.set_timeout(T);
        c
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.unwrap().unwrap();
    }
}

/// Private targets allowed (the receiver is on 127.0.0.1), quick retries.
fn local() -> Value {
    json!({"allow_private": true, "retry_base_ms": 10, "retry_max_ms": 50, "max_attempts": 3})
}

fn code(r: &Result<Value, ClientError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().unwrap_or("transport"),
    }
}

fn reason(r: &Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Server(e)) => e
            .details
            .as_ref()
            .and_then(|d| d["reason"].as_str())
            .unwrap_or("")
            .to_owned(),
        other => format!("{other:?}"),
    }
}

async fn register(c: &Client, pattern: &str, url: &str) -> Result<Value, ClientError> {
    c.command(
        "op.webhook.register",
        json!({"pattern": pattern, "url": url}),
    )
    .await
}

/// The `list` row of `id` as `c` sees it.
async fn row(c: &Client, id: &str) -> Value {
    let l = c.command("op.webhook.list", json!({})).await.unwrap();
    l["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Joins `addr` as `c` and publishes `payload` there.
async fn say(c: &Client, addr: &str, payload: Value) -> Result<(), ClientError> {
    c.join(addr).await?;
    c.publish(addr, payload).await.map(drop)
}

/// The dead letters of `id`, as `c` reads them.
async fn letters(c: &Client, id: &Value) -> Vec<Value> {
    let r = c.command("op.webhook.deadletters", json!({"id": id})).await;
    r.unwrap()["deadletters"].as_array().unwrap().clone()
}

/// The ids `c` sees in `list`, which never shows a secret.
async fn listed(c: &Client) -> Vec<String> {
    let l = c.command("op.webhook.list", json!({})).await.unwrap();
    assert!(
        !l.to_string().contains("whsec_"),
        "list never shows secrets: {l}"
    );
    l["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_publish_on_a_matching_channel_is_posted_redacted_and_signed() {
    let b = start(&temp_dir("wh-sign"), local()).await;
    let mut rx = receiver(&[], 200).await;
    let bob = b.as_("bob").await;
    let reg = register(&bob, "bip-2:*", &rx.url).await.unwrap();
    let (id, secret) = (reg["id"].as_str().unwrap(), reg["secret"].as_str().unwrap());
    assert!(secret.starts_with("whsec_"), "{reg}");
    assert_eq!(reg["owner"], "bob");
    let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    say(
        &bob,
        "bip-2:review",
        json!({"text": format!("see {token}")}),
    )
    .await
    .unwrap();
    // Not covered by the pattern: never posted.
    let root = b.as_("root").await;
    say(&root, "bip-3:review", json!({"text": "elsewhere"}))
        .await
        .unwrap();
    let hit = rx.next().await;
    assert_eq!(hit.path, "/hook");
    assert!(verify(secret, &hit), "signature must verify: {hit:?}");
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["x-hive-webhook"], id);
    let env: Value = serde_json::from_str(&hit.body).unwrap();
    assert_eq!(
        (env["room"].as_str(), env["channel"].as_str()),
        (Some("bip-2"), Some("review"))
    );
    assert_eq!(env["type"], "MESSAGE");
    assert!(
        !hit.body.contains(token),
        "the safety layer redacted it first: {}",
        hit.body
    );
    // Another secret does not verify, nor does a changed body.
    assert!(!verify("whsec_not-the-secret", &hit));
    let tampered = Hit {
        body: hit.body.replace("review", "reviev"),
        ..hit
    };
    assert!(!verify(secret, &tampered));
    rx.nothing_within(Duration::from_millis(300)).await;
    assert_eq!(row(&bob, id).await["delivered"], 1);
    b.stop().await;
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_delivery_id_until_it_succeeds() {
    let b = start(&temp_dir("wh-retry"), local()).await;
    let mut rx = receiver(&[(500, ""), (503, "")], 200).await;
    let root = b.as_("root").await;
    let reg = register(&root, "ops:deploys", &rx.url).await.unwrap();
    let id = reg["id"].as_str().unwrap();
    say(&root, "ops:deploys", json!({"v": 1})).await.unwrap();
    let hits = [rx.next().await, rx.next().await, rx.next().await];
    let delivery = &hits[0].headers["x-hive-delivery"];
    for h in &hits {
        assert_eq!(&h.headers["x-hive-delivery"], delivery);
        assert!(verify(reg["secret"].as_str().unwrap(), h));
        assert_eq!(h.body, hits[0].body);
    }
    rx.nothing_within(Duration::from_millis(300)).await;
    let r = row(&root, id).await;
    assert_eq!(
        (r["delivered"].as_u64(), r["failedAttempts"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    assert_eq!(r["deadLetters"], 0);
    b.stop().await;
}

#[tokio::test]
async fn deliveries_that_keep_failing_are_dead_lettered_and_redirects_are_not_followed() {
    let b = start(&temp_dir("wh-dead"), local()).await;
    let root = b.as_("root").await;
    let mut failing = receiver(&[], 500).await;
    let dead = register(&root, "ops:a", &failing.url).await.unwrap();
    // A receiver that redirects to another one: the other must never be asked.
    let mut elsewhere = receiver(&[], 200).await;
    let location = format!("location: {}\r\n", elsewhere.url);
    let mut bouncing = receiver(&[(302, location.as_str())], 302).await;
    let bounced = register(&root, "ops:b", &bouncing.url).await.unwrap();
    say(&root, "ops:a", json!({"n": 1})).await.unwrap();
    say(&root, "ops:b", json!({"n": 2})).await.unwrap();
    for _ in 0..3 {
        failing.next().await;
    }
    bouncing.next().await;
    failing.nothing_within(Duration::from_millis(300)).await;
    bouncing.nothing_within(Duration::from_millis(10)).await;
    elsewhere.nothing_within(Duration::from_millis(10)).await;

    let d = letters(&root, &dead["id"]).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0]["reason"].as_str(), d[0]["status"].as_u64()),
        (Some("http_status"), Some(500))
    );
    assert_eq!(d[0]["attempts"], 3);
    let env: Value = serde_json::from_str(d[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(env["payload"]["n"], 1);
    let r = letters(&root, &bounced["id"]).await;
    assert_eq!(
        (r[0]["reason"].as_str(), r[0]["attempts"].as_u64()),
        (Some("redirect"), Some(1))
    );
    b.stop().await;
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_and_counts_it() {
    let mut cfg = local();
    cfg["queue_max"] = json!(2);
    let b = start(&temp_dir("wh-full"), cfg).await;
    // The first request is answered only after 1.5 s: meanwhile the outbox fills.
    let mut rx = slow_receiver(&[(200, "", 1500)], 200).await;
    let root = b.as_("root").await;
    let reg = register(&root, "ops:burst", &rx.url).await.unwrap();
    say(&root, "ops:burst", json!({"n": 0})).await.unwrap();
    let first = rx.next().await;
    for n in 1..=5 {
        root.publish("ops:burst", json!({"n": n})).await.unwrap();
    }
    let n_of = |h: &Hit| serde_json::from_str::<Value>(&h.body).unwrap()["payload"]["n"].clone();
    assert_eq!(n_of(&first), 0);
    // 1, 2 and 3 made room for 4 and 5.
    assert_eq!(n_of(&rx.next().await), 4);
    assert_eq!(n_of(&rx.next().await), 5);
    rx.nothing_within(Duration::from_millis(300)).await;
    let r = row(&root, reg["id"].as_str().unwrap()).await;
    assert_eq!(
        (r["dropped"].as_u64(), r["delivered"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    b.stop().await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_config_allows_them() {
    let b = start(&temp_dir("wh-ssrf"), json!({})).await;
    let root = b.as_("root").await;
    let rx = receiver(&[], 200).await;
    let port = rx.url.rsplit(':').next().unwrap();
    for url in [
        rx.url.clone(),
        format!("http://localhost:{port}"),
        "http://[::1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://0.0.0.0:80/".to_owned(),
        "http://2130706433/".to_owned(),
        "http://[::ffff:10.0.0.1]/".to_owned(),
    ] {
        let r = register(&root, "ops:x", &url).await;
        assert_eq!(
            (code(&r), reason(&r).as_str()),
            ("forbidden", "private_target"),
            "{url}"
        );
    }
    for (url, why) in [
        ("ftp://example.com/", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
    ] {
        let r = register(&root, "ops:x", url).await;
        assert_eq!((code(&r), reason(&r).as_str()), ("invalid_field", why));
    }
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert_eq!(
        reason(&register(&root, "ops:x", &long).await),
        "url_too_long"
    );
    let l = root.command("op.webhook.list", json!({})).await.unwrap();
    assert_eq!(l["webhooks"], json!([]));
    b.stop().await;
}

#[tokio::test]
async fn a_restricted_token_cannot_register_on_what_it_cannot_read() {
    let mut cfg = local();
    cfg["max_per_owner"] = json!(2);
    let b = start(&temp_dir("wh-authz"), cfg).await;
    let rx = receiver(&[], 200).await;
    let alice = b.as_("alice").await;
    for pattern in ["bip-2:review", "bip-2:*", "bip-*:*", "*:*", "bip-1"] {
        let r = register(&alice, pattern, &rx.url).await;
        let want = if pattern == "bip-1" {
            "ok"
        } else {
            "forbidden"
        };
        assert_eq!(code(&r), want, "{pattern}: {r:?}");
    }
    assert_eq!(
        code(&register(&alice, "bip-1:general", &rx.url).await),
        "ok"
    );
    // Observers read but create nothing.
    let watch = b.as_("watch").await;
    assert_eq!(
        code(&register(&watch, "bip-1:general", &rx.url).await),
        "forbidden"
    );
    // Forged or oversized fields.
    let r = alice
        .command(
            "op.webhook.register",
            json!({"pattern": "bip-1:x", "url": rx.url, "owner": "bob"}),
        )
        .await;
    assert_eq!(code(&r), "invalid_field");
    assert_eq!(
        code(&register(&alice, "bip-1:a:b", &rx.url).await),
        "invalid_address"
    );
    // Two webhooks are all one owner may hold here; another owner still may.
    let third = register(&alice, "bip-1:third", &rx.url).await;
    assert_eq!(code(&third), "overloaded");
    let bob = b.as_("bob").await;
    assert_eq!(code(&register(&bob, "bip-2:x", &rx.url).await), "ok");
    b.stop().await;
}

#[tokio::test]
async fn another_identitys_webhook_is_neither_listed_nor_removable() {
    let b = start(&temp_dir("wh-owner"), local()).await;
    let mut rx = receiver(&[], 500).await;
    let (alice, bob, root) = (
        b.as_("alice").await,
        b.as_("bob").await,
        b.as_("root").await,
    );
    let mine = register(&bob, "bip-2:*", &rx.url).await.unwrap();
    let id = mine["id"].as_str().unwrap();
    let theirs = register(&alice, "bip-1:*", &rx.url).await.unwrap();
    assert_eq!(listed(&alice).await, [theirs["id"].as_str().unwrap()]);
    assert_eq!(listed(&bob).await, [id]);
    assert_eq!(listed(&root).await.len(), 2);
    for cmd in ["op.webhook.unregister", "op.webhook.deadletters"] {
        let r = alice.command(cmd, json!({"id": id})).await;
        assert_eq!(code(&r), "forbidden", "{cmd}: {r:?}");
        let r = alice.command(cmd, json!({"id": "wh-nosuch"})).await;
        assert_eq!(code(&r), "not_found", "{cmd}");
    }
    // Still there, still delivering.
    say(&bob, "bip-2:x", json!({})).await.unwrap();
    rx.next().await;
    assert_eq!(
        code(
            &bob.command("op.webhook.deadletters", json!({"id": id}))
                .await
        ),
        "ok"
    );
    assert_eq!(
        code(
            &bob.command("op.webhook.unregister", json!({"id": id}))
                .await
        ),
        "ok"
    );
    assert_eq!(listed(&bob).await, Vec::<String>::new());
    let t = theirs["id"].as_str().unwrap();
    assert_eq!(
        code(
            &root
                .command("op.webhook.unregister", json!({"id": t}))
                .await
        ),
        "ok"
    );
    assert!(listed(&root).await.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn registrations_survive_a_broker_restart() {
    let dir = temp_dir("wh-restart");
    let mut rx = receiver(&[], 200).await;
    let b = start(&dir, local()).await;
    let root = b.as_("root").await;
    let reg = register(&root, "ops:*", &rx.url).await.unwrap();
    let gone = register(&root, "ops:gone", &rx.url).await.unwrap();
    root.command("op.webhook.unregister", json!({"id": gone["id"]}))
        .await
        .unwrap();
    // A dead letter, made before the restart.
    let mut failing = receiver(&[], 500).await;
    let dead = register(&root, "dl:x", &failing.url).await.unwrap();
    say(&root, "dl:x", json!({"lost": true})).await.unwrap();
    for _ in 0..3 {
        failing.next().await;
    }
    let mut before = Vec::new();
    for _ in 0..200 {
        before = letters(&root, &dead["id"]).await;
        if !before.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(before.len(), 1);
    drop(root);
    b.stop().await;
    assert!(dir.join(".hive/webhook.db").exists());

    let b = start(&dir, local()).await;
    let root = b.as_("root").await;
    let l = root.command("op.webhook.list", json!({})).await.unwrap();
    let rows = l["webhooks"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{l}");
    assert_eq!(rows[0]["id"], reg["id"]);
    assert_eq!(rows[0]["pattern"], "ops:*");
    assert_eq!(letters(&root, &dead["id"]).await, before);
    say(&root, "ops:after", json!({"again": true}))
        .await
        .unwrap();
    let hit = rx.next().await;
    assert!(
        verify(reg["secret"].as_str().unwrap(), &hit),
        "the same secret signs"
    );
    b.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_hive_webhook_cli_registers_lists_and_unregisters() {
    use crate::cli::{broker as hive_broker, json_of, run, text};
    let dir = temp_dir("wh-cli");
    let config = dir.join("hive.toml");
    std::fs::write(&config, "[webhook]\nallow_private = true\n").unwrap();
    let (_broker, port) = hive_broker(&dir, &["--config", config.to_str().unwrap()]);
    let mut rx = receiver(&[], 200).await;
    let d = dir.clone();
    let url = rx.url.clone();
    let cli = move |args: Vec<String>| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&d, &a)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = cli(args(&["webhook", "register", "ops:*", &url]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let reg = json_of(&out);
    let (id, secret) = (reg["id"].as_str().unwrap(), reg["secret"].as_str().unwrap());
    let out = cli(args(&["webhook", "list"])).await.unwrap();
    assert_eq!(json_of(&out)["webhooks"][0]["id"], id);

    let c = Client::connect(&format!("ws://127.0.0.1:{port}/"), Hello::role("client"))
        .await
        .unwrap();
    say(&c, "ops:cli", json!({"from": "cli test"}))
        .await
        .unwrap();
    assert!(verify(secret, &rx.next().await));

    let out = cli(args(&[
        "webhook",
        "register",
        "ops:*",
        "ftp://example.com/",
    ]))
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("http or https"), "{}", text(&out));
    let out = cli(args(&["webhook", "unregister", id])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(args(&["webhook", "deadletters", id])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    let out = cli(args(&["webhook", "list", "--json"])).await.unwrap();
    assert_eq!(json_of(&out)["webhooks"], json!([]));
}
