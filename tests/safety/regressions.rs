//! Replays every input the fuzzers once failed on (`fuzz/regressions/<target>/`)
//! through the same checks as the fuzz targets, so that plain `cargo test` keeps them
//! fixed without nightly or cargo-fuzz.

use hivebus::frame::Envelope;
use hivebus::safety::{Mode, Redactor, SafetyConfig};
use serde_json::Value;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/fuzz/regressions/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn frame_parser_regressions_round_trip_exactly() {
    let all = inputs("frame_parser");
    assert!(!all.is_empty());
    for data in all {
        let text = String::from_utf8(data).unwrap();
        let env = Envelope::parse_peer(&text).unwrap();
        assert_eq!(Envelope::parse_peer(&env.to_text()).unwrap(), env, "{text}");
    }
}

#[test]
fn redactor_regressions_reach_a_fixpoint_and_monitor_changes_nothing() {
    let mut enforce = SafetyConfig::with_mode(Mode::Enforce);
    enforce.redact_paths = vec!["payload.env.*".into(), "payload.a.0".into()];
    let enforce = Redactor::compile(enforce).unwrap();
    let monitor = Redactor::compile(SafetyConfig::with_mode(Mode::Monitor)).unwrap();
    let all = inputs("redactor");
    assert!(all.len() >= 2);
    for data in all {
        let text = String::from_utf8_lossy(&data);
        let payload = serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|_| serde_json::json!({"text": text}));
        let mut seen = payload.clone();
        monitor.inspect(None, &mut seen);
        assert_eq!(seen, payload);
        let mut once = payload.clone();
        if enforce.inspect(None, &mut once).blocked_by.is_none() {
            let mut twice = once.clone();
            enforce.inspect(None, &mut twice);
            assert_eq!(twice, once);
        }
    }
}

#[tokio::test]
async fn secrets_hidden_by_zero_width_or_fullwidth_characters_are_redacted() {
    use super::harness::{config_with, reply_of, start};
    use hivebus::safety::Mode;
    let srv = start(config_with(Mode::Enforce)).await;
    let mut s = srv.hello("client", None).await;
    let mut sub = srv.hello("client", None).await;
    sub.join("r:c").await;
    s.join("r:c").await;
    let cases = [
        "key AKIA\u{200b}IOSFODNN7EXAMPLE here",
        "key \u{FF21}\u{FF2B}\u{FF29}\u{FF21}IOSFODNN7EXAMPLE here",
        "token gh\u{00AD}p_Qw3rTy7UiOp1AsDfGhJkLzXcVbNm0987654A",
        "-----BEGIN PRIVATE\u{2060} KEY-----\nMIIEowIBAAKCAQEAq7Zt3xw9Lm2Pv8Rk4Ys6Tq1Wn5Ee0Hd7Jf\n-----END PRIVATE KEY-----",
    ];
    for (i, text) in cases.iter().enumerate() {
        let id = format!("z{i}");
        let r = s
            .publish(&id, "r:c", serde_json::json!({"text": text}))
            .await;
        reply_of(&r, &id);
        let got = sub.recv().await;
        let out = got["payload"]["text"].as_str().unwrap().to_owned();
        assert!(out.contains("[REDACTED:"), "case {i} passed: {out:?}");
        assert!(
            !out.contains("IOSFODNN7EXAMPLE") && !out.contains("MIIEow"),
            "{out:?}"
        );
    }
    // Clean non-ASCII text is left exactly as it was.
    let r = s
        .publish(
            "ok",
            "r:c",
            serde_json::json!({"text": "caf\u{e9} \u{FF21}\u{FF22} \u{200b}x"}),
        )
        .await;
    reply_of(&r, "ok");
    let got = sub.recv().await;
    assert_eq!(
        got["payload"]["text"],
        "caf\u{e9} \u{FF21}\u{FF22} \u{200b}x"
    );
    srv.stop().await;
}

#[test]
fn a_payload_of_thousands_of_matches_is_decided_by_the_budget_without_redacting() {
    let hostile = "password=hunter2x! ".repeat(3_000); // 57 KB, 3 000 matches
    let mut p = serde_json::json!({"text": hostile});
    let r = Redactor::compile(SafetyConfig::with_mode(Mode::Enforce)).unwrap();
    let f = r.inspect(None, &mut p);
    assert_eq!(f.blocked_by.as_deref(), Some(hivebus::safety::BUDGET_RULE));
    assert_eq!(f.redactions, 0, "decided before any replacement");
    let m = Redactor::compile(SafetyConfig::with_mode(Mode::Monitor)).unwrap();
    let f = m.inspect(None, &mut p);
    assert!(f.rules.contains(hivebus::safety::BUDGET_RULE) && f.blocked_by.is_none());
    // Under the budget, every match is still redacted.
    let mut few = serde_json::json!({"text": "password=hunter2x! ".repeat(200)});
    let f = r.inspect(None, &mut few);
    assert!(f.blocked_by.is_none() && f.redactions > 0, "{f:?}");
    assert!(!few.to_string().contains("hunter2x"));
}
