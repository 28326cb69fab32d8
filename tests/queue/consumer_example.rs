//! `examples/consumer.rs` as people run it: it survives a broker restart (reconnects
//! with backoff, finds the new port through `.hive/port`), says `Disconnected` rather
//! than `Expired` when the broker went away, logs each task's end, and on SIGTERM
//! drains: no new leases, running tasks finish, then it exits 0.

use crate::cli::{broker, example, run};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn state(dir: &std::path::Path, task: &str) -> String {
    let out = run(dir, &["task", "show", task]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["state"].as_str().unwrap_or_default().to_owned()
}

/// Polls until `task` is `want`; on failure shows the task and the consumer's log.
fn wait_state(dir: &std::path::Path, task: &str, want: &str, log: &Mutex<String>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while state(dir, task) != want {
        if Instant::now() > deadline {
            let shown = run(dir, &["task", "show", task]);
            panic!(
                "{task} never {want}: {}\n--- consumer log\n{}",
                String::from_utf8_lossy(&shown.stdout),
                log.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn submit(dir: &std::path::Path) -> String {
    let out = run(dir, &["task", "submit", "verify_bip", "--bip", "43"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["task"].as_str().unwrap().to_owned()
}

#[test]
fn the_example_consumer_reconnects_after_a_broker_restart_and_drains_on_sigterm() {
    let dir = crate::harness::temp_dir("consumer-example");
    let (first, _) = broker(&dir, &["--backoff-base-ms", "50"]);
    let mut child = Command::new(example("consumer"))
        .arg("--dir")
        .arg(&dir)
        .args(["--kinds", "verify_bip", "--steps", "20", "--step-ms", "100"])
        .env_remove("HIVE_WS_PORT")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(l + "\n"));
        }
    });
    let mut consumer = crate::cli::Reaped(child);

    // The broker dies under a running task; a new one starts on the same directory.
    let t1 = submit(&dir);
    wait_state(&dir, &t1, "working", &log);
    drop(first);
    let (_second, _) = broker(&dir, &["--backoff-base-ms", "50"]);
    wait_state(&dir, &t1, "succeeded", &log);
    {
        let log = log.lock().unwrap();
        assert!(log.contains("Disconnected"), "{log}");
        assert!(!log.contains("Expired"), "{log}");
        assert!(log.contains("reconnecting"), "{log}");
        assert!(log.contains("task ended"), "{log}");
    }

    // SIGTERM while a task runs: it finishes, nothing new is leased, exit 0.
    let t2 = submit(&dir);
    wait_state(&dir, &t2, "working", &log);
    Command::new("kill")
        .args(["-TERM", &consumer.0.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t3 = submit(&dir);
    wait_state(&dir, &t2, "succeeded", &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = consumer.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert_eq!(state(&dir, &t3), "queued");
    assert!(log.lock().unwrap().contains("draining"));
}
