//! Must-show 1: the secret corpus is fully redacted in enforce mode, in what
//! subscribers receive, in `history` and in the frame `Bus::publish` returns (what the
//! queue writes to `.hive/logs/<traceId>.ndjson`); the innocent corpus passes unaltered.

use super::harness::{config_with, reply_of, start};
use hivebus::frame::{Envelope, FrameType};
use hivebus::safety::Mode;
use hivebus::Address;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub(crate) struct Secret {
    pub(crate) kind: String,
    pub(crate) secret: String,
    pub(crate) payload: Value,
}

fn lines(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
}

fn payload_of(template: &str, secret: &str) -> Value {
    let filled = template.replace("{}", secret);
    match filled.strip_prefix("json:") {
        Some(j) => serde_json::from_str(j).unwrap_or_else(|e| panic!("{j}: {e}")),
        None => json!({"text": filled.replace("\\n", "\n")}),
    }
}

pub(crate) fn secrets() -> Vec<Secret> {
    lines(include_str!("corpus/secrets.txt"))
        .map(|f| Secret {
            kind: f[0].to_owned(),
            secret: f[1].replace("\\n", "\n"),
            payload: payload_of(f[2], f[1]),
        })
        .collect()
}

pub(crate) fn innocents() -> Vec<(String, Value)> {
    lines(include_str!("corpus/innocent.txt"))
        .map(|f| (f[0].to_owned(), payload_of(f[1], "{}")))
        .collect()
}

/// Whether any part of `secret` (each line of a key block longer than 8 characters)
/// survives in `text`.
pub(crate) fn leaks(text: &str, secret: &str) -> bool {
    let secret = secret.trim_matches('"');
    secret
        .split('\n')
        .filter(|part| part.len() > 8 || !secret.contains('\n'))
        .filter(|part| !part.starts_with("-----"))
        .any(|part| text.contains(part))
}

#[test]
fn the_corpora_are_as_large_and_varied_as_promised() {
    let s = secrets();
    let kinds: BTreeSet<&str> = s.iter().map(|x| x.kind.as_str()).collect();
    assert!(
        s.len() >= 40 && kinds.len() >= 12,
        "{} secrets, {} kinds",
        s.len(),
        kinds.len()
    );
    assert!(innocents().len() >= 40);
}

#[tokio::test]
async fn enforce_mode_redacts_every_corpus_secret_for_subscribers_and_in_history() {
    let srv = start(config_with(Mode::Enforce)).await;
    let mut sub = srv.hello("client", None).await;
    sub.join("corpus:secrets").await;
    let mut publ = srv.hello("client", None).await;
    publ.join("corpus:secrets").await;
    let corpus = secrets();
    let mut leaked_live = Vec::new();
    for (i, s) in corpus.iter().enumerate() {
        let id = format!("s{i}");
        let r = publ.publish(&id, "corpus:secrets", s.payload.clone()).await;
        reply_of(&r, &id);
        let got = sub.recv().await;
        assert_eq!(got["type"], "MESSAGE", "{got}");
        let text = got["payload"].to_string();
        if leaks(&text, &s.secret) || !text.contains("[REDACTED:") {
            leaked_live.push(format!("{}: {text}", s.kind));
        }
    }
    let h = sub
        .command(
            "h",
            "history",
            json!({"address": "corpus:secrets", "limit": 1000}),
        )
        .await;
    let msgs = reply_of(&h, "h")["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), corpus.len());
    let mut leaked_history = Vec::new();
    for (m, s) in msgs.iter().zip(&corpus) {
        if leaks(&m["payload"].to_string(), &s.secret) {
            leaked_history.push(s.kind.clone());
        }
    }
    let n = corpus.len();
    eprintln!(
        "secret corpus: {} of {n} redacted live, {} of {n} in history",
        n - leaked_live.len(),
        n - leaked_history.len()
    );
    assert!(leaked_live.is_empty(), "leaked live: {leaked_live:#?}");
    assert!(
        leaked_history.is_empty(),
        "leaked in history: {leaked_history:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn innocent_look_alikes_pass_unaltered_in_enforce_mode() {
    let srv = start(config_with(Mode::Enforce)).await;
    let mut sub = srv.hello("client", None).await;
    sub.join("corpus:innocent").await;
    let mut publ = srv.hello("client", None).await;
    publ.join("corpus:innocent").await;
    let corpus = innocents();
    let mut altered = Vec::new();
    for (i, (kind, payload)) in corpus.iter().enumerate() {
        let id = format!("i{i}");
        reply_of(
            &publ.publish(&id, "corpus:innocent", payload.clone()).await,
            &id,
        );
        let got = sub.recv().await;
        if &got["payload"] != payload {
            altered.push(format!("{kind}: {}", got["payload"]));
        }
    }
    eprintln!(
        "innocent corpus: {} of {} unaltered",
        corpus.len() - altered.len(),
        corpus.len()
    );
    assert!(altered.is_empty(), "altered: {altered:#?}");
    assert_eq!(srv.safety.stats().flagged, 0);
    srv.stop().await;
}

#[tokio::test]
async fn bus_publish_returns_the_redacted_frame_that_trace_logs_are_written_from() {
    let srv = start(config_with(Mode::Enforce)).await;
    let addr = Address::parse("bip-43:implement_bip").unwrap();
    for s in secrets() {
        let mut env = Envelope::new(FrameType::Event, s.payload.clone());
        env.trace_id = Some("3b1d0c8e-trace".into());
        let d = srv.bus.publish(&addr, env).unwrap();
        assert!(!leaks(d.text(), &s.secret), "{}: {}", s.kind, d.text());
        assert!(!leaks(&d.envelope().payload.to_string(), &s.secret));
        assert_eq!(d.envelope().trace_id.as_deref(), Some("3b1d0c8e-trace"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn private_frames_are_redacted_before_delivery() {
    let srv = start(config_with(Mode::Enforce)).await;
    let mut a = srv.hello("client", None).await;
    let mut b = srv.raw().await;
    let w = b.send_hello("consumer", None).await;
    let to = w["payload"]["session"].as_str().unwrap().to_owned();
    a.send(json!({"id": "p", "type": "PRIVATE", "payload": {"to": [to], "text": "token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}}))
        .await;
    reply_of(&a.recv().await, "p");
    let got = b.recv().await;
    assert_eq!(got["type"], "PRIVATE");
    assert_eq!(got["payload"]["text"], "token [REDACTED:github_token]");
    srv.stop().await;
}
