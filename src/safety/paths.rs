//! Redaction by JSON path (`payload.env.*`) and by key name (`password`, `api_key`).
//!
//! A path is dot-separated from the envelope root, so it starts with `payload`; `*`
//! stands for any object key or array index, a number also names an array index.
//! Key names are compared after lowercasing and dropping `-` and `_`.

use crate::error::{ErrorCode, WireError};
use serde_json::Value;

/// One segment of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Any key or index.
    Any,
    /// This key, or this index when it is a number.
    Key(String),
}

/// A compiled path below `payload`.
#[derive(Debug, Clone)]
pub(crate) struct JsonPath {
    pub(crate) text: String,
    segs: Vec<Seg>,
}

impl JsonPath {
    /// Parses `payload.a.*.b`.
    ///
    /// # Errors
    /// `invalid_field` when the path does not start with `payload` or has an empty
    /// segment.
    pub(crate) fn parse(text: &str) -> Result<Self, WireError> {
        let bad = |why: &str| {
            WireError::new(
                ErrorCode::InvalidField,
                format!("safety.redact_paths: `{text}` {why}"),
            )
        };
        let mut parts = text.split('.');
        if parts.next() != Some("payload") {
            return Err(bad("must start with `payload`"));
        }
        let segs = parts
            .map(|p| match p {
                "" => Err(bad("has an empty segment")),
                "*" => Ok(Seg::Any),
                k => Ok(Seg::Key(k.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if segs.is_empty() {
            return Err(bad("would redact the whole payload; name a field"));
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segs,
        })
    }

    /// Whether anything in `payload` sits at this path.
    pub(crate) fn present(&self, payload: &Value) -> bool {
        fn go(v: &Value, segs: &[Seg]) -> bool {
            let Some((first, rest)) = segs.split_first() else {
                return !v.is_null();
            };
            match (v, first) {
                (Value::Object(m), Seg::Any) => m.values().any(|c| go(c, rest)),
                (Value::Array(a), Seg::Any) => a.iter().any(|c| go(c, rest)),
                (Value::Object(m), Seg::Key(k)) => m.get(k).is_some_and(|c| go(c, rest)),
                (Value::Array(a), Seg::Key(k)) => k
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .is_some_and(|c| go(c, rest)),
                _ => false,
            }
        }
        go(payload, &self.segs)
    }

    /// Replaces every non-null value at this path with `with`; returns how many.
    pub(crate) fn redact(&self, payload: &mut Value, with: &str) -> usize {
        fn go(v: &mut Value, segs: &[Seg], with: &str) -> usize {
            let Some((first, rest)) = segs.split_first() else {
                if v.is_null() {
                    return 0;
                }
                *v = Value::String(with.to_owned());
                return 1;
            };
            match (v, first) {
                (Value::Object(m), Seg::Any) => m.values_mut().map(|c| go(c, rest, with)).sum(),
                (Value::Array(a), Seg::Any) => a.iter_mut().map(|c| go(c, rest, with)).sum(),
                (Value::Object(m), Seg::Key(k)) => m.get_mut(k).map_or(0, |c| go(c, rest, with)),
                (Value::Array(a), Seg::Key(k)) => k
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get_mut(i))
                    .map_or(0, |c| go(c, rest, with)),
                _ => 0,
            }
        }
        go(payload, &self.segs, with)
    }
}

/// A key name as compared: lowercase, without `-` and `_`.
pub(crate) fn normalize_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a value under a sensitive key is redacted: non-empty strings and numbers.
/// Objects and arrays are walked instead (`"password": {"min_length": 12}` is a
/// policy, not a secret); booleans and null carry no secret.
pub(crate) fn key_value_is_secret(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_paths_redact_every_child_and_only_them() {
        let p = JsonPath::parse("payload.env.*").unwrap();
        let mut v = json!({"env": {"A": "1", "B": null}, "keep": "x"});
        assert!(p.present(&v));
        assert_eq!(p.redact(&mut v, "R"), 1);
        assert_eq!(v, json!({"env": {"A": "R", "B": null}, "keep": "x"}));
        let p = JsonPath::parse("payload.list.1").unwrap();
        let mut v = json!({"list": ["a", "b"]});
        assert_eq!(p.redact(&mut v, "R"), 1);
        assert_eq!(v, json!({"list": ["a", "R"]}));
        assert!(!JsonPath::parse("payload.nope").unwrap().present(&v));
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["env.*", "payload", "payload..x", ""] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_key("API-Key"), "apikey");
    }
}
