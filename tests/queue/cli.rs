//! The `hive` CLI end to end: `hive broker` and the example consumer as child
//! processes; `hive task submit` then `hive tail` shows the live task and exits with
//! its status.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills and reaps a child on drop, so a failing test leaves no process behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn hive() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hive"))
}

/// The example consumer, built by `cargo test` beside the binaries.
fn example_consumer() -> PathBuf {
    let p = hive().parent().unwrap().join("examples").join("consumer");
    assert!(
        p.exists(),
        "{} missing: run `cargo test` (it builds the examples)",
        p.display()
    );
    p
}

/// Starts `hive broker` in `dir` and waits for its port file.
pub fn broker(dir: &std::path::Path, extra: &[&str]) -> (Reaped, u16) {
    let port_file = dir.join(".hive").join("port");
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new(hive())
        .arg("--dir")
        .arg(dir)
        .arg("broker")
        .args(extra)
        .env_remove("HIVE_WS_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(p) = hivebus::server::port::read_port_file(&port_file) {
            return (child, p);
        }
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn submit_then_tail_shows_a_live_task_end_to_end() {
    let dir = crate::harness::temp_dir("cli");
    let (_broker, port) = broker(&dir, &[]);
    let _consumer = Reaped(
        Command::new(example_consumer())
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}/"),
                "--kinds",
                "verify_bip",
                "--slots",
                "2",
            ])
            .args(["--steps", "5", "--step-ms", "150"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args([
            "task",
            "submit",
            "verify_bip",
            "--bip",
            "43",
            "--priority",
            "core",
            "--arg",
            "checklist=all",
        ])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = reply["traceId"].as_str().unwrap().to_owned();
    assert_eq!(reply["state"], "queued");
    // Tail right away: the task is live (its 5 steps take ~750 ms).
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["tail", &trace])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("TASK"), "{text}");
    assert!(text.contains("[####################] 100%"), "{text}");
    assert!(text.contains("RESULT  ok (succeeded)"), "{text}");
    // A late tail replays the same history and exits the same way.
    let again = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["tail", &trace])
        .env_remove("HIVE_WS_PORT")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
    // The other subcommands answer through the same port discovery.
    let run = |args: &[&str]| {
        Command::new(hive())
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env_remove("HIVE_WS_PORT")
            .output()
            .unwrap()
    };
    let list = run(&["task", "list", "--state", "succeeded"]);
    assert!(list.status.success());
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["tasks"][0]["traceId"], trace.as_str());
    let status: serde_json::Value = serde_json::from_slice(&run(&["status"]).stdout).unwrap();
    assert_eq!(status["queue"]["counters"]["succeeded"], 1);
    let dlq: serde_json::Value = serde_json::from_slice(&run(&["dlq", "list"]).stdout).unwrap();
    assert_eq!(dlq["total"], 0);
    let bad = run(&["task", "cancel", &trace]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("conflict"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // `--help` everywhere.
    for args in [
        vec!["--help"],
        vec!["task", "submit", "--help"],
        vec!["dlq", "--help"],
        vec!["tail", "--help"],
    ] {
        let h = Command::new(hive()).args(&args).output().unwrap();
        assert!(h.status.success() && !h.stdout.is_empty(), "{args:?}");
    }
}
