//! The runner on a paused tokio clock, over the embedded bus: firings in order, a
//! recurring rule, a one-shot delay, and the missed-run policy across a reopen of the
//! store. The clock starts at a fixed instant, so each firing's time is asserted to
//! the millisecond. Who may schedule is tested over the wire (`tests/queue/cronkv.rs`).

use super::{Clock, Cron, CronConfig};
use crate::auth::{Identity, Permissions, Role};
use crate::bus::{Bus, Inbox, Member, PeerInfo};
use crate::ops::{Caller, Operator};
use crate::store::StoreOptions;
use crate::Pattern;
use serde_json::{json, Value};
use std::path::PathBuf;

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;

fn caller() -> Caller {
    Caller {
        session: "s-test".into(),
        info: PeerInfo::default(),
        identity: Identity {
            subject: "alice".into(),
            role: Role::Client,
            permissions: Permissions::all(),
            method: "token",
            expires_at: None,
        },
        tags: Default::default(),
    }
}

fn cfg(db: Option<PathBuf>) -> CronConfig {
    CronConfig {
        db_path: db,
        min_interval_ms: 1_000,
        grace_ms: 5_000,
        ..CronConfig::default()
    }
}

fn opts() -> StoreOptions {
    // Acks through spawn_blocking: the paused clock does not run ahead of a commit.
    StoreOptions {
        blocking_acks: true,
        ..StoreOptions::default()
    }
}

fn subscriber(bus: &Bus) -> (Member, Inbox) {
    let (m, inbox) = bus.connect(PeerInfo::default());
    m.join(&Pattern::parse("ops:*").unwrap(), &Default::default())
        .unwrap();
    (m, inbox)
}

async fn schedule(cron: &Cron, args: Value) -> Value {
    cron.command(&caller(), "schedule", args).await.unwrap()
}

/// The next firing: its payload's `n`, and the clock when it arrived (ms after T0).
async fn next(inbox: &mut Inbox, cron: &Cron) -> (String, u64) {
    let d = inbox.recv().await.unwrap();
    let n = d.envelope().payload["n"].as_str().unwrap().to_owned();
    assert!(d.envelope().from.as_deref().unwrap().starts_with("cron:"));
    (n, cron.clock().now_ms() - T0)
}

#[tokio::test(start_paused = true)]
async fn recurring_and_one_shot_firings_arrive_in_order_on_time() {
    let bus = Bus::new(Default::default()).unwrap();
    let (_m, mut inbox) = subscriber(&bus);
    let cron = Cron::open_with(bus, cfg(None), opts(), Clock::starting_at(T0)).unwrap();
    let every10 = json!({"address": "ops:tick", "cron": "*/10 * * * * *", "tz": "UTC"});
    let mut a = every10.clone();
    a["payload"] = json!({"n": "a"});
    let a = schedule(&cron, a).await;
    assert_eq!(a["next_ms"], T0 + 10_000);
    schedule(
        &cron,
        json!({"address": "ops:once", "delay_ms": 15_000, "payload": {"n": "b"}}),
    )
    .await;
    let mut c = every10;
    c["payload"] = json!({"n": "c"});
    schedule(&cron, c).await;
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(next(&mut inbox, &cron).await);
    }
    let want: Vec<(String, u64)> = [
        ("a", 10_000),
        ("c", 10_000),
        ("b", 15_000),
        ("a", 20_000),
        ("c", 20_000),
        ("a", 30_000),
        ("c", 30_000),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), *t))
    .collect();
    assert_eq!(got, want);
    // The one-shot is gone; the recurring ones counted their runs.
    let list = cron.command(&caller(), "list", json!({})).await.unwrap();
    let runs: Vec<u64> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["runs"].as_u64().unwrap())
        .collect();
    assert_eq!(runs, [3, 3]);
    // The one-shot's payload left the memory bound with it.
    let held = cron.inner.runner.lock().payload_bytes;
    assert_eq!(held, 2 * json!({"n": "a"}).to_string().len());
    cron.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn missed_firings_follow_each_schedules_policy_across_a_reopen() {
    let dir = std::env::temp_dir().join(format!("hive-cron-{}", fastrand::u64(..)));
    let db = dir.join("cron.db");
    let bus = Bus::new(Default::default()).unwrap();
    let (_m, mut inbox) = subscriber(&bus);
    let cron = Cron::open_with(
        bus.clone(),
        cfg(Some(db.clone())),
        opts(),
        Clock::starting_at(T0),
    )
    .unwrap();
    let minutely = |n: &str, missed: &str| json!({"address": "ops:tick", "cron": "* * * * *", "tz": "UTC", "missed": missed, "payload": {"n": n}});
    let skip = schedule(&cron, minutely("skip", "skip")).await;
    schedule(&cron, minutely("once", "run_once")).await;
    schedule(&cron, json!({"address": "ops:x", "delay_ms": 5_000, "missed": "skip", "payload": {"n": "d-skip"}})).await;
    schedule(&cron, json!({"address": "ops:x", "delay_ms": 5_000, "missed": "run_once", "payload": {"n": "d-once"}})).await;
    // The broker stops before anything is due, and is down for ten and a half minutes.
    cron.shutdown().await;
    let back = T0 + 630_000;
    let cron = Cron::open_with(bus, cfg(Some(db)), opts(), Clock::starting_at(back)).unwrap();
    // At once: the missed one-shot and the missed rule of `run_once`, one firing each,
    // in the order they were due; nothing of `skip`.
    assert_eq!(
        next(&mut inbox, &cron).await,
        ("d-once".to_owned(), 630_000)
    );
    assert_eq!(next(&mut inbox, &cron).await, ("once".to_owned(), 630_000));
    // Then both follow the rule from now on.
    assert_eq!(next(&mut inbox, &cron).await, ("skip".to_owned(), 660_000));
    assert_eq!(next(&mut inbox, &cron).await, ("once".to_owned(), 660_000));
    let list = cron.command(&caller(), "list", json!({})).await.unwrap();
    let list = list["schedules"].as_array().unwrap();
    // The skipped one-shot was dropped without firing.
    assert_eq!(list.len(), 2, "{list:?}");
    let s = list.iter().find(|s| s["id"] == skip["id"]).unwrap();
    assert_eq!(
        (s["runs"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(inbox.try_recv().is_none());
    cron.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn bad_rules_and_bounds_are_refused_with_stable_codes() {
    let bus = Bus::new(Default::default()).unwrap();
    let c = CronConfig {
        max_per_identity: 1,
        max_payload_bytes: 32,
        min_interval_ms: 60_000,
        ..cfg(None)
    };
    let cron = Cron::open_with(bus, c, opts(), Clock::starting_at(T0)).unwrap();
    let refuse = |args: Value| {
        let cron = cron.clone();
        async move {
            let e = cron.command(&caller(), "schedule", args).await.unwrap_err();
            (
                e.code.as_str(),
                e.details.unwrap_or_default()["field"].clone(),
            )
        }
    };
    let base = json!({"address": "ops:t", "payload": 1});
    let with = |k: &str, v: Value, k2: &str, v2: Value| {
        let mut a = base.clone();
        a[k] = v;
        a[k2] = v2;
        a
    };
    assert_eq!(
        refuse(with("cron", json!("* * * * * *"), "tz", json!("UTC"))).await,
        ("invalid_field", json!("cron"))
    );
    assert_eq!(
        refuse(with(
            "cron",
            json!("* * * * *"),
            "tz",
            json!("Europe/Paris")
        ))
        .await,
        ("invalid_field", json!("tz"))
    );
    assert_eq!(
        refuse(with("cron", json!("nope"), "tz", json!("UTC"))).await,
        ("invalid_field", json!("cron"))
    );
    assert_eq!(
        refuse(with("delay_ms", json!(5), "payload", json!("x".repeat(40)))).await,
        ("invalid_field", json!("payload"))
    );
    assert_eq!(
        refuse(with("delay_ms", json!(5), "cron", json!("* * * * *"))).await,
        ("missing_field", json!("cron"))
    );
    assert_eq!(
        refuse(with("delay_ms", json!(5), "missed", json!("later"))).await,
        ("invalid_field", json!("missed"))
    );
    assert_eq!(
        refuse(with("delay_ms", json!(5), "extra", json!(1))).await,
        ("invalid_field", json!("extra"))
    );
    schedule(
        &cron,
        with("delay_ms", json!(60_000), "missed", json!("skip")),
    )
    .await;
    let e = cron
        .command(
            &caller(),
            "schedule",
            with("delay_ms", json!(5), "missed", json!("skip")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.as_str(), "overloaded");
    assert_eq!(e.details.unwrap()["limit"], "max_per_identity");
    cron.shutdown().await;
}
