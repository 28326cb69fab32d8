//! The Python SDK and the Rust client exchange tasks: `examples/python/consumer.py`
//! (on `clients/python`) runs as a child process against the real broker, the Rust
//! [`Client`](hivebus::client::Client) submits tasks of two kinds, and every task ends
//! as the Python consumer said: succeeded with its summary, artifacts and progress
//! EVENTs, or dead with the Python exception's message. Then SIGTERM: the consumer
//! drains and exits 0.
//!
//! Skipped (with a message, not failed) when `python3 -c "import websockets"` fails.

use crate::harness::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Longest a task may take to end, in real time.
const LIMIT: Duration = Duration::from_secs(60);

async fn python_has_websockets() -> bool {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .await;
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "SKIPPED: the Python SDK test needs `pip install websockets`:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: python3 not found ({e}); install Python 3 and `pip install websockets`"
            );
            false
        }
    }
}

/// Polls `op.queue.show` until the task is final.
async fn final_record(c: &hivebus::client::Client, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let rec = show(c, id).await;
        if matches!(
            rec["state"].as_str(),
            Some("succeeded" | "failed" | "dead" | "cancelled")
        ) {
            return rec;
        }
        assert!(start.elapsed() < LIMIT, "task {id} never ended: {rec}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Real time: the consumer is another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_consumer_runs_the_tasks_a_rust_client_submits() {
    if !python_has_websockets().await {
        return;
    }
    let q = start(config()).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let child = tokio::process::Command::new("python3")
        .arg(format!("{root}/examples/python/consumer.py"))
        .args([
            "--url",
            &q.url,
            "--kinds",
            "py_verify,py_build",
            "--slots",
            "2",
        ])
        .args(["--steps", "2", "--step-ms", "20"])
        .env("PYTHONPATH", format!("{root}/clients/python"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run python3");
    let c = q.client().await;
    let mut ids = Vec::new();
    for (i, kind) in ["py_verify", "py_build", "py_verify"].iter().enumerate() {
        let body = json!({"kind": kind, "bipId": 43, "idempotencyKey": format!("py-{i}"),
                          "args": {"n": i}});
        let r = submit(&c, body).await.unwrap();
        ids.push((r["task"].as_str().unwrap().to_owned(), *kind, i));
    }
    let doomed = json!({"kind": "py_build", "bipId": 43, "idempotencyKey": "py-fail",
                        "maxAttempts": 1, "args": {"fail": true}});
    let doomed = submit(&c, doomed).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();

    for (id, kind, n) in &ids {
        let rec = final_record(&c, id).await;
        assert_eq!(rec["state"], "succeeded", "{rec}");
        assert_eq!(rec["a2aState"], "TASK_STATE_COMPLETED");
        let result = &rec["result"];
        assert_eq!(
            result["summary"],
            format!("python consumer did {kind} {id} (attempt 1)"),
            "{rec}"
        );
        assert_eq!(result["artifacts"]["by"], "examples/python/consumer.py");
        assert_eq!(result["artifacts"]["args"]["n"], *n);
        let stream = c
            .command("op.queue.stream", json!({"task": id}))
            .await
            .unwrap();
        let progress: Vec<&Value> = stream["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["frame"])
            .filter(|f| f["type"] == "EVENT" && f["payload"]["stage"] == "work")
            .collect();
        assert_eq!(progress.len(), 2, "{stream}");
        assert_eq!(progress[1]["payload"]["pct"], 100);
    }
    let rec = final_record(&c, &doomed).await;
    assert_eq!(rec["state"], "dead", "{rec}");
    assert_eq!(rec["a2aState"], "TASK_STATE_FAILED");
    assert_eq!(rec["lastError"], "RuntimeError: asked to fail", "{rec}");

    // SIGTERM: a graceful stop, exit 0.
    let pid = child.id().expect("the consumer exited early").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the consumer did not exit after SIGTERM")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("consumer: stopped"), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("task ended: ").count(), 4, "{stdout}");
    q.stop().await;
}
