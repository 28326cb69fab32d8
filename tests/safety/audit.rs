//! The audit log over the wire: a refused credential, an authority refusal and an
//! admin command land in `.hive/audit.log` of a real broker run, with who and what
//! but never the credential; `hive audit verify` passes the log as written, and
//! fails, naming the line, once one record is edited.

use super::harness::{assert_error, reply_of, Raw, WAIT};
use hivebus::broker::{self, BrokerOptions};
use hivebus::server::port::Want;
use hivebus::Config;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const ADMIN: &str = "audit-admin-token-0123456789";
const NARROW: &str = "audit-narrow-token-0123456789";
const WRONG: &str = "audit-wrong-token-0123456789";

fn hive() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hive"))
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn connect(port: u16) -> Raw {
    let url = format!("ws://127.0.0.1:{port}/");
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    Raw { ws }
}

#[tokio::test]
async fn refusals_and_admin_commands_are_chained_in_the_log_and_an_edit_is_found() {
    let dir = std::env::temp_dir().join(format!("hive-audit-it-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let config: Config = serde_json::from_value(json!({"auth": {"tokens": [
        {"token": ADMIN, "subject": "ops", "role": "admin"},
        {"token": NARROW, "subject": "bot", "role": "client",
         "publish": ["bot:*"], "subscribe": ["bot:*"]},
    ]}}))
    .unwrap();
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = BrokerOptions {
        host: "127.0.0.1".parse().unwrap(),
        want: Want::Any,
        dir: dir.clone(),
        config,
        config_path: None,
    };
    let run = tokio::spawn(broker::run_with(
        opts,
        async {
            let _ = stop_rx.await;
        },
        move |addr| {
            let _ = port_tx.send(addr.port());
        },
    ));
    let port = tokio::time::timeout(WAIT, port_rx).await.unwrap().unwrap();

    let mut stranger = connect(port).await;
    let refused = stranger.send_hello("admin", Some(WRONG)).await;
    assert_error(&refused, "unauthorized", Some("h"));

    let mut bot = connect(port).await;
    assert_eq!(
        bot.send_hello("client", Some(NARROW)).await["type"],
        "WELCOME"
    );
    let e = bot.publish("p1", "ops:secrets", json!({"x": 1})).await;
    assert_error(&e, "forbidden", Some("p1"));

    let mut admin = connect(port).await;
    assert_eq!(
        admin.send_hello("admin", Some(ADMIN)).await["type"],
        "WELCOME"
    );
    reply_of(&admin.command("g", "op.safety.get", json!({})).await, "g");

    let _ = stop_tx.send(());
    tokio::time::timeout(WAIT * 2, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let log = dir.join(".hive/audit.log");
    let all = records(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    for token in [ADMIN, NARROW, WRONG] {
        assert!(!text.contains(token), "a credential reached the audit log");
    }
    let of = |kind: &str| all.iter().find(|r| r["kind"] == kind).cloned();
    let failed = of("auth_failed").expect("auth_failed recorded");
    assert_eq!(failed["outcome"], "unauthorized");
    assert_eq!(failed["details"]["role"], "admin");
    let forbidden = of("refused").expect("refused recorded");
    assert_eq!(forbidden["actor"]["subject"], "bot");
    assert_eq!(forbidden["target"], "ops:secrets");
    assert_eq!(forbidden["details"]["refusal"]["right"], "publish");
    let command = of("admin_command").expect("admin_command recorded");
    assert_eq!(command["actor"]["subject"], "ops");
    assert_eq!(command["target"], "op.safety.get");
    assert_eq!(command["outcome"], "ok");

    let verify = |json: bool| {
        let mut c = Command::new(hive());
        c.args(["--dir", dir.to_str().unwrap(), "audit", "verify"]);
        c.args(["--output", if json { "json" } else { "table" }]);
        c.output().unwrap()
    };
    let ok = verify(true);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["report"]["records"].as_u64().unwrap(), all.len() as u64);

    // Someone with write access rewrites who was refused.
    let edited = text.replacen("\"subject\":\"bot\"", "\"subject\":\"ops\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&log, edited).unwrap();
    let broken = verify(false);
    assert_eq!(broken.status.code(), Some(1));
    let out = String::from_utf8_lossy(&broken.stdout);
    let line = all.iter().position(|r| r["kind"] == "refused").unwrap() + 1;
    assert!(out.contains("BROKEN"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&line.to_string()) && l.contains("record changed")),
        "{out}"
    );
}
