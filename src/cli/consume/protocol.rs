//! The JSON-lines protocol on the agent's stdio (docs/CONSUME.md, "The protocol on
//! the agent's stdio"): which stdout lines are protocol lines, and the decision line
//! written back on its stdin. A decision fails closed: anything but an explicit
//! `approve` from the broker reaches the agent (or `hive exec`) as `deny`.

use hivebus::client::ClientError;
use serde_json::{json, Map, Value};

/// A protocol line of the agent's stdout.
pub(super) enum Proto {
    Event(Value),
    Approval(Value),
    Result(Value),
}

/// Reads a protocol line: one JSON object with exactly one key `event`, `approval`
/// or `result`, whose value is an object.
pub(super) fn protocol(text: &str) -> Option<Proto> {
    if !text.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if o.len() != 1 {
        return None;
    }
    let (k, v) = o.iter_mut().next()?;
    if !v.is_object() {
        return None;
    }
    let v = v.take();
    match k.as_str() {
        "event" => Some(Proto::Event(v)),
        "approval" => Some(Proto::Approval(v)),
        "result" => Some(Proto::Result(v)),
        _ => None,
    }
}

/// The decision line written to the agent's stdin, echoing the request's `id`.
pub(super) fn decision_line(d: Result<Option<Value>, ClientError>, id: Option<Value>) -> String {
    let mut v = match d {
        Ok(Some(p)) => {
            // Anything but an explicit approve is a deny: fail closed.
            let decision = if p["decision"] == "approve" {
                "approve"
            } else {
                "deny"
            };
            let given = p["decision"]
                .as_str()
                .filter(|d| !matches!(*d, "approve" | "deny"));
            let mut o = Map::new();
            o.insert("decision".into(), json!(decision));
            o.insert("by".into(), p["by"].clone());
            o.insert("reason".into(), p["reason"].clone());
            if let Some(s) = p.get("scope") {
                o.insert("scope".into(), s.clone());
            }
            // `expired` (nobody decided in time), or a decision this version does not
            // know: the agent hears `deny` and what was said.
            if let Some(g) = given {
                o.insert("given".into(), json!(g));
            }
            Value::Object(o)
        }
        Ok(None) => deny("the lease was lost"),
        Err(e) => deny(&format!("the broker is unreachable: {e}")),
    };
    if let Some(id) = id {
        v["id"] = id;
    }
    v.to_string()
}

/// A decision `hive consume` makes itself: always a deny.
pub(super) fn deny(reason: &str) -> Value {
    json!({"decision": "deny", "by": "hive consume", "reason": reason})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_line_fails_closed_and_echoes_the_id() {
        let d = |p: Value| {
            serde_json::from_str::<Value>(&decision_line(Ok(Some(p)), Some(json!("a1")))).unwrap()
        };
        let ok = d(json!({"decision": "approve", "by": "ann", "reason": "fine", "lease": "l-1"}));
        assert_eq!(
            ok,
            json!({"decision": "approve", "by": "ann", "reason": "fine", "id": "a1"})
        );
        let exp = d(json!({"decision": "expired", "by": "timeout"}));
        assert_eq!(
            (exp["decision"].as_str(), exp["given"].as_str()),
            (Some("deny"), Some("expired"))
        );
        let lost: Value = serde_json::from_str(&decision_line(Ok(None), None)).unwrap();
        assert_eq!(lost["decision"], "deny");
        assert!(lost.get("id").is_none());
    }

    #[test]
    fn only_one_key_objects_are_protocol_lines() {
        assert!(matches!(
            protocol(r#"{"event": {"pct": 1}}"#),
            Some(Proto::Event(_))
        ));
        assert!(matches!(
            protocol(r#"{"result": {"status": "ok"}}"#),
            Some(Proto::Result(_))
        ));
        assert!(protocol(r#"{"event": 1}"#).is_none());
        assert!(protocol(r#"{"event": {}, "x": 1}"#).is_none());
        assert!(protocol(r#"{"other": {}}"#).is_none());
        assert!(protocol("plain {\"event\": {}}").is_none());
    }
}
