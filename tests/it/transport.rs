//! The transport: HTTP endpoints on the WebSocket port, shutdown, connection limit,
//! heartbeats, and the broker binary itself (port file, HIVE_WS_PORT, fallback).

use crate::harness::*;
use hivebus::client::{Client, Hello};
use hivebus::Config;
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on the broker's port, the whole answer (HTTP shares the WebSocket port).
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served_on_the_websocket_port() {
    let srv = start(Config::default()).await;
    let c = srv.client("client").await;
    c.join("r:c").await.unwrap();
    c.publish("r:c", json!({})).await.unwrap();
    let h = http_get(srv.addr, "/healthz").await;
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    assert!(http_get(srv.addr, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
    let m = http_get(srv.addr, "/metrics").await;
    assert!(m.contains("# TYPE hivebus_messages_total counter"), "{m}");
    assert!(m.contains("\nhivebus_messages_total 1\n"), "{m}");
    assert!(m.contains("\nhivebus_connections 1\n"), "{m}");
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_queued_frames_then_closes_every_session_with_1001() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    p.join("r:c").await.unwrap();
    let mut s = srv.raw_hello("client").await;
    reply_of(
        &s.command("j", "join", json!({"address": "r:c"})).await,
        "j",
    );
    for n in 0..20 {
        p.publish("r:c", json!({"n": n})).await.unwrap();
    }
    let stopping = tokio::spawn(srv.stop());
    let mut seen = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut s.ws))
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_))) => seen += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                break u16::from(f.code)
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((seen, code), (20, 1001));
    stopping.await.unwrap();
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_with_4004() {
    let mut config = Config::default();
    config.server.max_connections = 2;
    let srv = start(config).await;
    let _a = srv.client("client").await;
    let _b = srv.client("client").await;
    let mut c = srv.raw().await;
    assert_eq!(c.closed_with().await, 4004);
    drop(_a);
    // The permit comes back once the session is gone.
    let mut ok = false;
    for _ in 0..50 {
        if Client::connect(&srv.url(), Hello::role("client"))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    srv.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_closed_with_4005_while_one_answering_pings_stays() {
    let mut config = Config::default();
    config.server.ping_interval_ms = 50;
    config.server.idle_timeout_ms = 300;
    let srv = start(config).await;
    let mut silent = srv.raw_hello("client").await;
    // The SDK client answers pings (tungstenite does while its task reads).
    let alive = srv.client("client").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(silent.closed_with().await, 4005);
    alive.command("ping", json!({})).await.unwrap();
    srv.stop().await;
}

/// The broker example, built by `cargo test` next to the test binaries.
fn broker_exe() -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join("hive_broker")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hivebus-{tag}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn wait_for_port_file(dir: &std::path::Path) -> u16 {
    let f = hivebus::server::port::port_file(dir);
    for _ in 0..200 {
        if let Ok(p) = hivebus::server::port::read_port_file(&f) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no port file at {}", f.display());
}

async fn terminate(child: &mut tokio::process::Child) {
    let pid = child.id().unwrap() as i32;
    // SAFETY-free: kill(1) via the shell keeps this test free of libc.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "broker exited with {status}");
}

#[tokio::test]
async fn the_broker_writes_its_port_file_honours_hive_ws_port_and_cleans_up() {
    let exe = broker_exe();
    assert!(exe.exists(), "build the examples first: {}", exe.display());
    // Any free port: the dynamic range, and the port file names it.
    let dir = temp_dir("broker-a");
    let mut child = tokio::process::Command::new(&exe)
        .args(["--dir", dir.to_str().unwrap()])
        .env_remove("HIVE_WS_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = wait_for_port_file(&dir).await;
    assert!(hivebus::server::port::RANGE.contains(&port));
    let c = Client::connect(&format!("ws://127.0.0.1:{port}/"), Hello::role("client"))
        .await
        .unwrap();
    c.command("ping", json!({})).await.unwrap();
    terminate(&mut child).await;
    assert!(
        !hivebus::server::port::port_file(&dir).exists(),
        "port file removed on shutdown"
    );

    // HIVE_WS_PORT is honoured when free ...
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wanted = probe.local_addr().unwrap().port();
    drop(probe);
    let dir = temp_dir("broker-b");
    let mut child = tokio::process::Command::new(&exe)
        .args(["--dir", dir.to_str().unwrap()])
        .env("HIVE_WS_PORT", wanted.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_for_port_file(&dir).await, wanted);

    // ... and a second broker asking for the same, now taken, port falls back.
    let dir2 = temp_dir("broker-c");
    let mut second = tokio::process::Command::new(&exe)
        .args(["--dir", dir2.to_str().unwrap()])
        .env("HIVE_WS_PORT", wanted.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fallback = wait_for_port_file(&dir2).await;
    assert_ne!(fallback, wanted);
    Client::connect(
        &format!("ws://127.0.0.1:{fallback}/"),
        Hello::role("client"),
    )
    .await
    .unwrap();
    // --port is strict: a taken port is an error.
    let strict = tokio::process::Command::new(&exe)
        .args([
            "--dir",
            dir2.to_str().unwrap(),
            "--port",
            &wanted.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!strict.success());
    terminate(&mut second).await;
    terminate(&mut child).await;
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(d);
    }
}
