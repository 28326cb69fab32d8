//! Fuzz target: the redactor. Any JSON payload (or any text as a string payload) is
//! inspected without panicking; monitor mode never changes it; enforce mode reaches a
//! fixpoint at once (inspecting its own output changes nothing more), so a replacement
//! can never be rewritten into something else.
#![no_main]

use hivebus::safety::{Mode, Redactor, SafetyConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

fn redactors() -> &'static (Redactor, Redactor) {
    static R: OnceLock<(Redactor, Redactor)> = OnceLock::new();
    R.get_or_init(|| {
        let mut enforce = SafetyConfig::with_mode(Mode::Enforce);
        enforce.redact_paths = vec!["payload.env.*".into(), "payload.a.0".into()];
        (
            Redactor::compile(enforce).expect("policy"),
            Redactor::compile(SafetyConfig::with_mode(Mode::Monitor)).expect("policy"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let payload = serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|_| serde_json::json!({"text": text}));
    let (enforce, monitor) = redactors();
    let mut seen = payload.clone();
    let _ = monitor.inspect(None, &mut seen);
    assert_eq!(seen, payload, "monitor mode changed the payload");
    let mut once = payload.clone();
    let f = enforce.inspect(None, &mut once);
    if f.blocked_by.is_none() {
        let mut twice = once.clone();
        let _ = enforce.inspect(None, &mut twice);
        assert_eq!(twice, once, "redaction is not a fixpoint");
    }
});
