//! Crash test: the broker is a child process (`hive broker`) under load (thousands of
//! tasks, several consumers); it is killed with SIGKILL at random moments at least 10
//! times and restarted on the same `.hive/` directory. At the end, read straight from
//! SQLite: every accepted task reached exactly one terminal state, none is lost, no
//! idempotency key made two tasks, and no result was recorded twice.

use crate::cli::broker;
use futures_util::future::join_all;
use hivebus::client::{Client, Hello};
use hivebus::consumer::Consumer;
use hivebus::frame::{Envelope, FrameType};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TASKS: usize = 5_000;
const KILLS: usize = 12;
const CONSUMERS: usize = 4;
const WINDOW: usize = 100;

fn url(dir: &Path) -> Option<String> {
    hivebus::server::port::read_port_file(&dir.join(".hive").join("port"))
        .ok()
        .map(|p| format!("ws://127.0.0.1:{p}/"))
}

/// Submits every key until each one is acknowledged, reconnecting across crashes.
async fn submitter(dir: PathBuf, acked: Arc<Mutex<HashMap<usize, String>>>) {
    loop {
        let todo: Vec<usize> = {
            let a = acked.lock().unwrap();
            (0..TASKS).filter(|i| !a.contains_key(i)).collect()
        };
        if todo.is_empty() {
            return;
        }
        let Some(u) = url(&dir) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(mut c) = Client::connect(&u, Hello::role("client")).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        c.set_timeout(Duration::from_secs(5));
        for chunk in todo.chunks(WINDOW) {
            let reqs = chunk.iter().map(|&i| {
                let mut e = Envelope::new(
                    FrameType::Task,
                    json!({"idempotencyKey": format!("crash-{i}"), "args": {"i": i}}),
                );
                e.room = Some("bip-7".into());
                e.channel = Some("noop".into());
                let c = &c;
                async move { (i, c.request(e).await) }
            });
            let mut lost = false;
            for (i, r) in join_all(reqs).await {
                match r {
                    Ok(v) => {
                        acked
                            .lock()
                            .unwrap()
                            .insert(i, v["task"].as_str().unwrap().to_owned());
                    }
                    Err(_) => lost = true,
                }
            }
            if lost {
                break; // reconnect (the broker is probably down)
            }
            // Spread the load over the kills.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Completes every lease it gets, reconnecting across crashes.
async fn consumer(dir: PathBuf, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(u) = url(&dir) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(mut c) = Consumer::connect(&u, &["noop"], 8).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        loop {
            tokio::select! {
                l = c.next_lease() => match l {
                    Some(lease) => {
                        if lease.complete("done", None).await.is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_task_and_records_no_result_twice() {
    let started = Instant::now();
    let dir = crate::harness::temp_dir("crash");
    let flags = [
        "--lease-ms",
        "3000",
        "--backoff-base-ms",
        "20",
        "--max-attempts",
        "50",
        "--no-logs",
    ];
    let (mut child, _) = broker(&dir, &flags);
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sub = tokio::spawn(submitter(dir.clone(), acked.clone()));
    let workers: Vec<_> = (0..CONSUMERS)
        .map(|_| tokio::spawn(consumer(dir.clone(), stop.clone(), sent.clone())))
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut kills = 0;
    let mut acked_at_kill = Vec::new();
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(rng.u64(100..500))).await;
        drop(child); // SIGKILL (Child::kill) and reap
        kills += 1;
        acked_at_kill.push(acked.lock().unwrap().len());
        child = broker(&dir, &flags).0;
    }
    tokio::time::timeout(Duration::from_secs(120), sub)
        .await
        .expect("submitter stuck")
        .unwrap();
    // Wait until every accepted task is final, reading SQLite beside the broker.
    let db = dir.join(".hive").join("queue.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let open: i64 = conn
            .query_row("SELECT COUNT(*) FROM tasks WHERE state NOT IN ('succeeded','dead','cancelled','failed')", [], |r| r.get(0))
            .unwrap();
        let total: i64 = conn
            .query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
            .unwrap();
        if open == 0 && total as usize >= TASKS {
            break;
        }
        assert!(Instant::now() < deadline, "{open} tasks still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    drop(child);
    for w in workers {
        let _ = w.await;
    }

    let acked = acked.lock().unwrap().clone();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut states: HashMap<String, (String, String)> = HashMap::new();
    let mut q = conn.prepare("SELECT id, state, idem FROM tasks").unwrap();
    for row in q
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap()
    {
        let (id, state, idem) = row.unwrap();
        states.insert(id, (state, idem));
    }
    let mut results: HashMap<String, i64> = HashMap::new();
    let mut q = conn
        .prepare("SELECT task, COUNT(*) FROM results GROUP BY task")
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (t, n) = row.unwrap();
        results.insert(t, n);
    }
    let mut by_state: HashMap<String, usize> = HashMap::new();
    for (s, _) in states.values() {
        *by_state.entry(s.clone()).or_default() += 1;
    }
    let twice = results.values().filter(|n| **n > 1).count();
    let keys: std::collections::HashSet<&String> = states.values().map(|(_, k)| k).collect();
    println!(
        "crash test: {kills} SIGKILLs (accepted so far at each: {acked_at_kill:?}); accepted {} tasks; \
         stored {}; by state {by_state:?}; results recorded {} (twice: {twice}); RESULT frames sent by consumers {}; {:.1}s",
        acked.len(),
        states.len(),
        results.values().sum::<i64>(),
        sent.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= 10);
    assert_eq!(acked.len(), TASKS, "every key was accepted in the end");
    assert_eq!(
        states.len(),
        TASKS,
        "one task per idempotency key, none lost, none doubled"
    );
    assert_eq!(keys.len(), TASKS);
    for (i, id) in &acked {
        let (state, idem) = states
            .get(id)
            .unwrap_or_else(|| panic!("accepted task {id} lost"));
        assert_eq!(idem, &format!("crash-{i}"));
        assert_eq!(state, "succeeded", "task {id}");
        assert_eq!(results.get(id), Some(&1), "task {id}: one result recorded");
    }
    assert_eq!(twice, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Copies the queue's SQLite files as they are on disk right now: what a broker killed
/// at this instant would leave behind (WAL mode: the database, its log and index).
fn snapshot(from: &Path) -> PathBuf {
    let to = crate::harness::temp_dir("snap");
    for f in ["queue.db", "queue.db-wal", "queue.db-shm"] {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
    to
}

#[tokio::test]
async fn crashes_during_an_attempt_do_not_use_up_its_attempts() {
    use crate::harness::{about, config, next_lease, show, start_in, task, temp_dir};
    use hivebus::frame::FrameType;
    let mut cfg = config();
    cfg.lease_ms = 60_000;
    let mut body = task("work", "crashy", "normal");
    body["max_attempts"] = serde_json::json!(2);
    let mut q = start_in(cfg.clone(), temp_dir("crashy")).await;
    let c = q.client().await;
    let id = crate::harness::submit(&c, body).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    // Three times: the attempt starts (leased, progress written), then the broker
    // "dies": a new broker starts from the files as they are at that moment.
    drop(c);
    for round in 0..3 {
        let c = q.client().await;
        let mut w = q.consumer(&["work"], 1).await;
        let lease = next_lease(&mut w).await;
        assert_eq!(
            lease.payload["attempt"],
            1,
            "round {round}: {}",
            lease.to_text()
        );
        w.request(about(
            &lease,
            FrameType::Event,
            serde_json::json!({"pct": 10}),
        ))
        .await
        .unwrap();
        // The EVENT's row (working, attempt 1) is committed with the next commit.
        crate::harness::submit(&c, task("other", &format!("flush-{round}"), "normal"))
            .await
            .unwrap();
        let dir = snapshot(&q.dir);
        let next = start_in(cfg.clone(), dir).await;
        drop(w);
        q.stop().await;
        q = next;
    }
    let c = q.client().await;
    assert_eq!(show(&c, &id).await["state"], "queued");
    let mut w = q.consumer(&["work"], 1).await;
    let lease = next_lease(&mut w).await;
    crate::harness::finish(&w, &lease, "ok").await.unwrap();
    let rec = show(&c, &id).await;
    assert_eq!(
        (rec["state"].as_str(), rec["attempt"].as_u64()),
        (Some("succeeded"), Some(1)),
        "{rec}"
    );
    q.stop().await;
}
