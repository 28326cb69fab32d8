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
