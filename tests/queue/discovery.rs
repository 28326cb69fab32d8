//! Port discovery that cannot lie, with real processes: one broker per `.hive/`
//! (a second is refused naming the first), a stale `.hive/port` after a SIGKILL is
//! named as such, an embedded broker leaves another broker's port file alone, and a
//! disagreeing `HIVE_WS_PORT` loses to the live broker's file with a warning.

use crate::cli::{broker, example, hive, run, Reaped};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Lines of a child's pipe, read on a thread so a test can wait with a timeout.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line of `rx` containing `needle`, within 30 s.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line with {needle:?}"));
        if l.contains(needle) {
            return l;
        }
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_broker_on_the_same_directory_is_refused_naming_the_first() {
    let dir = crate::harness::temp_dir("lock");
    let mut first = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .arg("broker")
        .env_remove("HIVE_WS_PORT")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines(first.stderr.take().unwrap());
    let pid = first.id();
    let first = Reaped(first);
    // One readable line on start, even without RUST_LOG.
    let line = wait_line(&err, "listening on ws://127.0.0.1:");
    let port = hivebus::server::port::read_port_file(&dir.join(".hive").join("port")).unwrap();
    assert!(line.contains(&format!("127.0.0.1:{port}/")), "{line}");
    assert!(line.contains(&format!("PID {pid}")), "{line}");

    let second = run(&dir, &["broker"]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(msg.contains("another broker"), "{msg}");
    assert!(msg.contains(&format!("PID {pid}")), "{msg}");
    assert!(msg.contains(&format!("port {port}")), "{msg}");
    // The refused broker did not touch the first one's port file.
    assert_eq!(
        hivebus::server::port::read_port_file(&dir.join(".hive").join("port")).unwrap(),
        port
    );
    assert!(run(&dir, &["task", "list"]).status.success());
    drop(first);
}

#[test]
fn a_port_file_left_by_a_killed_broker_is_named_stale_and_a_new_broker_takes_over() {
    let dir = crate::harness::temp_dir("stale");
    let (b, _) = broker(&dir, &[]);
    let pid = b.0.id();
    drop(b); // SIGKILL, then reaped: the port file stays behind
    assert!(dir.join(".hive").join("port").exists());
    let out = run(&dir, &["task", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = stderr(&out);
    assert!(
        msg.contains("stale") && msg.contains(&format!("broker PID {pid} is gone")),
        "{msg}"
    );
    // The directory is free again: a new broker starts and clients find it.
    let (_b, _) = broker(&dir, &[]);
    assert!(run(&dir, &["task", "list"]).status.success());
}

#[test]
fn hive_ws_port_disagreeing_with_a_live_broker_loses_with_a_warning() {
    let dir = crate::harness::temp_dir("env");
    let (_b, port) = broker(&dir, &[]);
    // Something else listens on the port the environment names.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wrong = other.local_addr().unwrap().port();
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .args(["task", "list"])
        .env("HIVE_WS_PORT", wrong.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains(&format!("HIVE_WS_PORT={wrong} disagrees"))
            && msg.contains(&format!("using {port}")),
        "{msg}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 0);
}

#[test]
fn an_embedded_broker_leaves_another_brokers_port_file_alone() {
    let dir = crate::harness::temp_dir("embedded");
    let (_b, port) = broker(&dir, &[]);
    let port_file = dir.join(".hive").join("port");
    // Started in the broker's directory, without --dir: no port file of its own.
    let mut bot = Command::new(example("embedded_bot"))
        .current_dir(&dir)
        .env_remove("HIVE_WS_PORT")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines(bot.stdout.take().unwrap());
    wait_line(&out, "embedded bot on ws://");
    assert_eq!(
        hivebus::server::port::read_port_file(&port_file).unwrap(),
        port
    );
    // A clean exit (Ctrl-C) must not delete the broker's file either.
    Command::new("kill")
        .args(["-INT", &bot.id().to_string()])
        .status()
        .unwrap();
    assert!(bot.wait().unwrap().success());
    assert_eq!(
        hivebus::server::port::read_port_file(&port_file).unwrap(),
        port
    );
    assert!(run(&dir, &["task", "list"]).status.success());
    // Asked to claim the directory, it is refused like any second broker.
    let claimed = Command::new(example("embedded_bot"))
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(claimed.status.code(), Some(2));
    let said = String::from_utf8_lossy(&claimed.stdout);
    assert!(said.contains("another broker"), "{said}");
}

#[test]
fn a_port_file_no_running_broker_holds_does_not_override_hive_ws_port() {
    // A `.hive/port` copied or checked into a repository, with no broker.lock beside it.
    let planted = crate::harness::temp_dir("planted");
    let decoy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hivebus::server::port::write_port_file(
        &planted.join(".hive").join("port"),
        decoy.local_addr().unwrap().port(),
    )
    .unwrap();
    let real = crate::harness::temp_dir("real");
    let (_b, port) = broker(&real, &[]);
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&planted)
        .args(["task", "list"])
        .env("HIVE_WS_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no running broker holds"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_planted_port_file_never_gets_the_token() {
    // A `.hive/port` checked into a repository, naming a port where someone listens.
    let planted = crate::harness::temp_dir("planted-token");
    let decoy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    decoy.set_nonblocking(true).unwrap();
    hivebus::server::port::write_port_file(
        &planted.join(".hive").join("port"),
        decoy.local_addr().unwrap().port(),
    )
    .unwrap();
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&planted)
        .args(["task", "list"])
        .env_remove("HIVE_WS_PORT")
        .env("HIVE_TOKEN", "tok-victim-0000000000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no running broker holds it"),
        "{}",
        stderr(&out)
    );
    assert!(
        decoy.accept().is_err(),
        "the CLI connected to the port a planted file named"
    );
}
