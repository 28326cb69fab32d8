//! What the operator keeps: a [`Registration`] (who routes which pattern to which
//! URL, with which secret) and a [`DeadLetter`] (a delivery that ran out of attempts),
//! and the parsing of `op.webhook.register`'s arguments.
//!
//! Invariants: a registration's pattern is in the address grammar (wildcards as a
//! subscription has them), its URL passed [`target::check_url`](super::target), its
//! secret is 16 to 256 printable ASCII bytes (generated when not given), and its owner
//! is the subject of the credential that registered it. Arguments are strict: an
//! unknown field is refused, not ignored.

use super::config::WebhookConfig;
use super::target;
use crate::address::Pattern;
use crate::error::{ErrorCode, WireError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Bounds of a given secret, in bytes.
pub(crate) const SECRET_MIN: usize = 16;
/// See [`SECRET_MIN`].
pub(crate) const SECRET_MAX: usize = 256;

/// One webhook: envelopes on addresses `pattern` covers are POSTed to `url`.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// `wh-` and 16 hex digits.
    pub(crate) id: String,
    /// The subject of the credential that registered it.
    pub(crate) owner: String,
    /// What it routes.
    pub(crate) pattern: Pattern,
    /// Where it posts.
    pub(crate) url: reqwest::Url,
    /// The HMAC key of its signature header; shown once, at registration.
    pub(crate) secret: String,
    /// When it was registered, wall-clock ms.
    pub(crate) created_ms: u64,
}

impl Registration {
    /// What `list` shows of it (never the secret).
    pub(crate) fn view(&self) -> Value {
        json!({
            "id": self.id,
            "owner": self.owner,
            "pattern": self.pattern.to_string(),
            "url": self.url.as_str(),
            "createdMs": self.created_ms,
        })
    }
}

/// A delivery that was given up: its envelope and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetter {
    /// Order within its registration, from 1.
    pub(crate) seq: u64,
    /// When it was given up, wall-clock ms.
    pub(crate) at_ms: u64,
    /// The `X-Hive-Delivery` it was sent with.
    pub(crate) delivery: String,
    /// Attempts made.
    pub(crate) attempts: u32,
    /// A stable word: `http_status`, `redirect`, `timeout`, `network`,
    /// `private_target`.
    pub(crate) reason: String,
    /// The last error, in words.
    pub(crate) error: String,
    /// The last HTTP status, when there was a response.
    pub(crate) status: Option<u16>,
    /// The envelope as it was posted (JSON text), cut to `deadletter_max_bytes`.
    pub(crate) body: String,
    /// Whether `body` was cut.
    #[serde(default)]
    pub(crate) truncated: bool,
}

/// `op.webhook.register`'s arguments, checked.
#[derive(Debug)]
pub(crate) struct RegisterArgs {
    /// The pattern.
    pub(crate) pattern: Pattern,
    /// The URL.
    pub(crate) url: reqwest::Url,
    /// The secret, when the caller chose one.
    pub(crate) secret: Option<String>,
}

fn field(name: &str, message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, message).with_details(json!({"field": name}))
}

/// The string field `name` of `args`, required.
///
/// # Errors
/// `missing_field`, or `invalid_field` when it is not a string.
pub(crate) fn required_str<'a>(args: &'a Value, name: &str) -> Result<&'a str, WireError> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(WireError::new(
            ErrorCode::MissingField,
            format!("`{name}` is required"),
        )
        .with_details(json!({"field": name}))),
        Some(_) => Err(field(name, format!("`{name}` must be a string"))),
    }
}

/// Refuses any field of `args` outside `known`, and args that are not an object.
///
/// # Errors
/// `invalid_field` naming the first unknown field.
pub(crate) fn strict(args: &Value, known: &[&str]) -> Result<(), WireError> {
    let obj = match args {
        Value::Object(o) => o,
        Value::Null => return Ok(()),
        _ => return Err(field("args", "arguments must be an object")),
    };
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(field(
            k,
            format!("unknown field `{k}`; expected one of: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The pattern named by `args.pattern`.
///
/// # Errors
/// `missing_field`, `invalid_field`, `invalid_address`.
pub(crate) fn pattern_of(args: &Value) -> Result<Pattern, WireError> {
    Pattern::parse(required_str(args, "pattern")?).map_err(WireError::from)
}

impl RegisterArgs {
    /// Parses and checks `{pattern, url, secret?}` (the URL's SSRF check on IP
    /// literals included; names are resolved by the operator).
    ///
    /// # Errors
    /// As [`strict`], [`pattern_of`], [`target::check_url`]; a secret of the wrong
    /// size or with bytes outside printable ASCII is `invalid_field`.
    pub(crate) fn parse(args: &Value, cfg: &WebhookConfig) -> Result<RegisterArgs, WireError> {
        strict(args, &["pattern", "url", "secret"])?;
        let pattern = pattern_of(args)?;
        let url = target::check_url(
            required_str(args, "url")?,
            cfg.max_url_len,
            cfg.allow_private,
        )?;
        let secret = match args.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                if !(SECRET_MIN..=SECRET_MAX).contains(&s.len())
                    || !s.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(field(
                        "secret",
                        format!(
                            "`secret` must be {SECRET_MIN} to {SECRET_MAX} printable ASCII \
                             characters without spaces; omit it to have one generated"
                        ),
                    ));
                }
                Some(s.clone())
            }
            Some(_) => return Err(field("secret", "`secret` must be a string")),
        };
        Ok(RegisterArgs {
            pattern,
            url,
            secret,
        })
    }
}

/// A new registration id.
pub(crate) fn new_id() -> String {
    format!("wh-{:016x}", fastrand::u64(..))
}

/// Wall-clock ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_args_are_strict_and_bounded() {
        let cfg = WebhookConfig::default();
        let ok = RegisterArgs::parse(
            &json!({"pattern": "bip-*:review_*", "url": "https://example.com/h"}),
            &cfg,
        )
        .unwrap();
        assert_eq!(ok.pattern.to_string(), "bip-*:review_*");
        assert!(ok.secret.is_none());
        let code = |v: Value| RegisterArgs::parse(&v, &cfg).unwrap_err().code;
        assert_eq!(
            code(json!({"pattern": "a:b", "url": "https://e.com", "secrett": "x"})),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(json!({"url": "https://e.com"})),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(json!({"pattern": "a:b:c", "url": "https://e.com"})),
            ErrorCode::InvalidAddress
        );
        assert_eq!(
            code(json!({"pattern": "a:b", "url": "https://e.com", "secret": "short"})),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(
                json!({"pattern": "a:b", "url": "https://e.com", "secret": "with a space in it!"})
            ),
            ErrorCode::InvalidField
        );
    }
}
