//! Gitops over the bus: the branch lock of a BIP, held by a real task of the queue,
//! seen through `op.git.status` / `op.git.locks`, released when the consumer's RESULT
//! ends the task; the commands are admin-only and strict about their arguments.
//! Real broker on 127.0.0.1:0, real WebSocket clients, real SQLite, real git.

use crate::harness::*;
use hivebus::client::{Client, Hello};
use hivebus::ops::approval::{ApprovalConfig, Policy};
use hivebus::ops::gitops::{lock, Gitops, GitopsConfig, GitopsOperator, Locks};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=setup", "-c", "user.email=setup@x.org"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with one commit on `main` and a bare remote, under `dir`.
fn repo(dir: &Path) -> std::path::PathBuf {
    git(dir, &["init", "-q", "-b", "main", "repo"]);
    git(dir, &["init", "-q", "--bare", "remote.git"]);
    let repo = dir.join("repo");
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    git(&repo, &["remote", "add", "origin", "../remote.git"]);
    repo
}

async fn admin(q: &Q) -> Client {
    let mut c = Client::connect(&q.url, Hello::role("admin")).await.unwrap();
    c.set_timeout(WAIT);
    c
}

async fn status(c: &Client, bip: &str) -> serde_json::Value {
    c.command("op.git.status", json!({"bip": bip}))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_lock_of_a_bip_is_held_by_its_task_and_released_when_the_task_ends() {
    let dir = temp_dir("gitops");
    let cfg = GitopsConfig {
        repo: Some(repo(&dir)),
        ..GitopsConfig::default()
    };
    let policy = Arc::new(Policy::from_config(&ApprovalConfig::default()).unwrap());
    let locks = Locks::open(Some(&dir.join("gitops.db"))).unwrap();
    let g = Gitops::from_config(cfg, policy, locks, &dir).unwrap();
    let q = start_with(
        config(),
        dir.clone(),
        vec![Arc::new(GitopsOperator::new(g.clone()))],
    )
    .await;
    g.locks()
        .watch(q.queue.events_of(lock::WATCH_CAPACITY, &Locks::WATCHED));

    let root = admin(&q).await;
    let mut w = q.consumer(&["implement_bip"], 2).await;
    submit(&root, task("implement_bip", "impl-1", "normal"))
        .await
        .unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    let started = g.start("43", &id).await.unwrap();

    let s = status(&root, "43").await;
    assert_eq!(s["locked"], true, "{s}");
    assert_eq!(s["lock"]["task"], id.as_str());
    assert_eq!(s["lock"]["branch"], started.branch.as_str());
    let all = root.command("op.git.locks", json!({})).await.unwrap();
    assert_eq!(all["locks"].as_array().unwrap().len(), 1, "{all}");

    // A second task on the same BIP is refused while the first runs.
    submit(&root, task("implement_bip", "impl-2", "normal"))
        .await
        .unwrap();
    let second = task_id(&next_lease(&mut w).await);
    assert_eq!(
        g.start("43", &second).await.unwrap_err().code(),
        "bip_locked"
    );

    // The first task ends: its lock goes with it.
    finish(&w, &lease, "ok").await.unwrap();
    let mut freed = false;
    for _ in 0..200 {
        if status(&root, "43").await["locked"] == false {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(freed, "the lock outlived its task");
    let next = g.start("43", &second).await.unwrap();
    assert_ne!(next.branch, "");
    assert_eq!(status(&root, "43").await["lock"]["task"], second.as_str());
    q.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn git_commands_are_admin_only_and_strict_about_their_arguments() {
    let dir = temp_dir("gitops-authz");
    let cfg = GitopsConfig {
        repo: Some(repo(&dir)),
        ..GitopsConfig::default()
    };
    let policy = Arc::new(Policy::from_config(&ApprovalConfig::default()).unwrap());
    let g = Gitops::from_config(cfg, policy, Locks::open(None).unwrap(), &dir).unwrap();
    let q = start_with(
        config(),
        dir.clone(),
        vec![Arc::new(GitopsOperator::new(g.clone()))],
    )
    .await;
    g.start("9", "held-by-someone").await.unwrap();
    for role in ["client", "consumer", "observer"] {
        let c = Client::connect(&q.url, Hello::role(role)).await.unwrap();
        for (cmd, args) in [
            ("op.git.status", json!({"bip": "9"})),
            ("op.git.locks", json!({})),
            ("op.git.unlock", json!({"bip": "9"})),
        ] {
            let e = c.command(cmd, args).await.unwrap_err();
            assert_eq!(e.code(), Some("forbidden"), "{role} {cmd}");
        }
    }
    assert!(g.locks().get("9").is_some(), "nobody but an admin unlocks");
    let root = admin(&q).await;
    for (cmd, args, code) in [
        (
            "op.git.status",
            json!({"bip": "../../etc"}),
            "invalid_field",
        ),
        (
            "op.git.status",
            json!({"bip": "--upload-pack=x"}),
            "invalid_field",
        ),
        (
            "op.git.status",
            json!({"bip": "x".repeat(4096)}),
            "invalid_field",
        ),
        ("op.git.status", json!({"bip": 9}), "invalid_field"),
        ("op.git.status", json!({}), "missing_field"),
        (
            "op.git.status",
            json!({"bip": "9", "force": true}),
            "invalid_field",
        ),
        ("op.git.locks", json!({"bip": "9"}), "invalid_field"),
        ("op.git.push", json!({}), "unknown_command"),
    ] {
        let e = root.command(cmd, args.clone()).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{cmd} {args}");
    }
    let freed = root
        .command("op.git.unlock", json!({"bip": "9"}))
        .await
        .unwrap();
    assert_eq!(freed["freed"]["task"], "held-by-someone");
    assert_eq!(status(&root, "9").await["locked"], false);
    q.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `hive broker`'s assembly on `dir` with `config` until the returned sender
/// fires; its WebSocket URL.
async fn broker(
    dir: &Path,
    config: hivebus::Config,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    use hivebus::broker::{self, BrokerOptions};
    use hivebus::server::port::Want;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let opts = BrokerOptions {
        host: [127, 0, 0, 1].into(),
        want: Want::Exactly(0),
        dir: dir.to_owned(),
        config,
        config_path: None,
    };
    let handle = tokio::spawn(broker::run_with(
        opts,
        async {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = ready_tx.send(addr);
        },
    ));
    let addr = ready.await.expect("the broker did not start");
    (format!("ws://{addr}/"), stop, handle)
}

#[tokio::test]
async fn the_broker_serves_the_locks_it_finds_in_its_state_directory_after_a_restart() {
    let dir = temp_dir("gitops-broker");
    let repo = repo(&dir);
    // A lock held when the previous broker stopped.
    let held = Locks::open(Some(&dir.join(".hive").join("gitops.db"))).unwrap();
    let rec = lock::LockRecord {
        bip: "12".into(),
        task: "task-before-restart".into(),
        branch: "bip/12/impl/20261203T000000Z".into(),
        worktree: repo
            .join(".hive/worktrees/task-before-restart")
            .to_string_lossy()
            .into_owned(),
        since_ms: 1,
    };
    held.acquire(rec.clone()).await.unwrap();
    held.close();
    let config: hivebus::Config = serde_json::from_value(json!({
        "gitops": {"repo": repo, "provider": {"kind": "local"}}
    }))
    .unwrap();
    let (url, stop, handle) = broker(&dir, config).await;
    let root = Client::connect(&url, Hello::role("admin")).await.unwrap();
    let s = status(&root, "12").await;
    assert_eq!(s["locked"], true, "{s}");
    assert_eq!(s["lock"]["task"], "task-before-restart");
    assert_eq!(s["lock"]["branch"], rec.branch.as_str());
    drop(root);
    let _ = stop.send(());
    handle.await.unwrap().unwrap();

    // A `[gitops]` section the validators refuse stops the broker from starting.
    let bad: hivebus::Config = serde_json::from_value(json!({
        "gitops": {"repo": repo, "remote": "--upload-pack=touch /tmp/x"}
    }))
    .unwrap();
    let opts = hivebus::broker::BrokerOptions {
        host: [127, 0, 0, 1].into(),
        want: hivebus::server::port::Want::Exactly(0),
        dir: dir.clone(),
        config: bad,
        config_path: None,
    };
    let e = hivebus::broker::run(opts, async {}).await.unwrap_err();
    assert!(e.contains("[gitops]") && e.contains("remote"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
