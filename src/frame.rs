//! Wire types: the one [`Envelope`] every frame uses, its [`FrameType`], and parsing of
//! peer frames with validation at the edge.
//!
//! Nothing outside this module and the session reads raw JSON. Parsing happens once per
//! inbound frame; each failure maps to a stable [`ErrorCode`] so that a client in any
//! language can react to it (`docs/PROTOCOL.md` has the table).

use crate::error::{ErrorCode, WireError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest envelope `id` or `traceId` a peer may send, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Every frame type of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FrameType {
    /// Peer -> server, first frame: `{role, capabilities, auth?, name?, slots?}`.
    Hello,
    /// Server -> peer, answer to HELLO: `{session, server, protocol, limits}`.
    Welcome,
    /// A publish on `room:channel`.
    Message,
    /// A direct message to sessions: `{to: [session ids], ...}`.
    Private,
    /// A server notice (shutdown, lag, policy).
    System,
    /// A command `{name, args}`, answered by REPLY or ERROR.
    Command,
    /// The answer to a COMMAND: `{re, ok, result}`.
    Reply,
    /// An error `{re?, code, message, details?}`.
    Error,
    /// A BIP-43 task.
    Task,
    /// Task progress `{stage, message, pct?}`.
    Event,
    /// An approval request or decision.
    Approval,
    /// A task result `{status, artifacts?, summary}`.
    Result,
    /// Liveness; renews a consumer's leases.
    Heartbeat,
}

impl FrameType {
    /// The wire spelling (`"MESSAGE"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Message => "MESSAGE",
            FrameType::Private => "PRIVATE",
            FrameType::System => "SYSTEM",
            FrameType::Command => "COMMAND",
            FrameType::Reply => "REPLY",
            FrameType::Error => "ERROR",
            FrameType::Task => "TASK",
            FrameType::Event => "EVENT",
            FrameType::Approval => "APPROVAL",
            FrameType::Result => "RESULT",
            FrameType::Heartbeat => "HEARTBEAT",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "HELLO" => FrameType::Hello,
            "WELCOME" => FrameType::Welcome,
            "MESSAGE" => FrameType::Message,
            "PRIVATE" => FrameType::Private,
            "SYSTEM" => FrameType::System,
            "COMMAND" => FrameType::Command,
            "REPLY" => FrameType::Reply,
            "ERROR" => FrameType::Error,
            "TASK" => FrameType::Task,
            "EVENT" => FrameType::Event,
            "APPROVAL" => FrameType::Approval,
            "RESULT" => FrameType::Result,
            "HEARTBEAT" => FrameType::Heartbeat,
            _ => return None,
        })
    }

    /// Whether frames of this type travel on a `room:channel` and are stored in history.
    pub fn is_channel_traffic(self) -> bool {
        matches!(
            self,
            FrameType::Message
                | FrameType::Task
                | FrameType::Event
                | FrameType::Approval
                | FrameType::Result
                | FrameType::Error
        )
    }
}

/// The envelope shared by every frame.
///
/// `from`, `ts`, `offset` and `epoch` are stamped by the server on what it delivers; when
/// a peer sends them they are ignored and overwritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Sender-chosen id, unique per session; answers name it in `re`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The frame type.
    #[serde(rename = "type")]
    pub kind: FrameType,
    /// Ties the frames of one task or conversation together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// RFC 3339 time the server accepted the frame, with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// Room name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Channel name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Session id of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Position in the channel: 1 for the first publish, +1 for each one after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Generation of the channel's history; a new epoch means older offsets are gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// On a publish: deliver to the sender too, when it is subscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// The sender's signature over the envelope's canonical form (`docs/PROTOCOL.md`,
    /// "Signed envelopes"); kept on delivery so receivers can check it themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Box<Sig>>,
    /// Stamped by the server: the identity whose key verified `sig`. A peer cannot
    /// set it (it is not read from peers' frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Type-specific body.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub payload: Value,
}

/// An envelope's signature: ed25519 over the canonical form of `type`, `room`,
/// `channel`, `traceId`, `ts`, `nonce` and the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sig {
    /// `ed25519`, the only algorithm.
    pub alg: String,
    /// When it was signed, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Unique per signature within the replay window: 8 to 64 of `A-Za-z0-9_-`.
    pub nonce: String,
    /// The signature, standard base64 (64 bytes).
    pub value: String,
}

impl Envelope {
    /// A bare envelope of `kind` with `payload` and nothing else set.
    pub fn new(kind: FrameType, payload: Value) -> Self {
        Envelope {
            id: None,
            kind,
            trace_id: None,
            ts: None,
            room: None,
            channel: None,
            from: None,
            offset: None,
            epoch: None,
            echo: None,
            sig: None,
            signer: None,
            payload,
        }
    }

    /// Parses and validates a frame sent by a peer.
    ///
    /// Server-stamped fields are cleared. Checks that fields each type needs are present:
    /// `id` on COMMAND and TASK, `room` on channel traffic, `payload.name` on COMMAND.
    ///
    /// # Errors
    /// A [`WireError`] with `invalid_json`, `invalid_field`, `unknown_type` or
    /// `missing_field`; its `re` is not known here (the session adds it when it can).
    ///
    /// ```
    /// use hivebus::frame::{Envelope, FrameType};
    /// let e = Envelope::parse_peer(r#"{"id":"1","type":"PING"}"#).unwrap_err();
    /// assert_eq!(e.code.as_str(), "unknown_type");
    /// let e = Envelope::parse_peer(r#"{"type":"HEARTBEAT"}"#).unwrap();
    /// assert_eq!(e.kind, FrameType::Heartbeat);
    /// ```
    pub fn parse_peer(text: &str) -> Result<Envelope, WireError> {
        let raw: RawEnvelope<'_> = serde_json::from_str(text).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::InvalidField
            } else {
                ErrorCode::InvalidJson
            };
            WireError::new(code, e.to_string())
        })?;
        let kind_str = raw
            .kind
            .ok_or_else(|| WireError::new(ErrorCode::MissingField, "`type` is required"))?;
        let kind = FrameType::from_wire(&kind_str).ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownType,
                format!("unknown frame type `{kind_str}`"),
            )
        })?;
        let env = Envelope {
            id: raw.id,
            kind,
            trace_id: raw.trace_id,
            ts: None,
            room: raw.room,
            channel: raw.channel,
            from: None,
            offset: None,
            epoch: None,
            echo: raw.echo,
            sig: raw.sig,
            signer: None,
            payload: raw.payload.unwrap_or(Value::Null),
        };
        env.check_required()?;
        Ok(env)
    }

    fn check_required(&self) -> Result<(), WireError> {
        let missing = |what: &str| {
            Err(WireError::new(
                ErrorCode::MissingField,
                format!("{} needs `{what}`", self.kind.as_str()),
            ))
        };
        if matches!(self.kind, FrameType::Command | FrameType::Task) && self.id.is_none() {
            return missing("id");
        }
        // Ids are remembered per session (the duplicate-id window) and echoed in `re`:
        // bounded, so that the window is bounded in bytes (128 x `dedup_window`), and
        // so are trace ids, which travel on every frame of a task.
        for (field, v) in [("id", &self.id), ("traceId", &self.trace_id)] {
            if v.as_ref().is_some_and(|v| v.len() > MAX_ID_BYTES) {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    format!("`{field}` is over {MAX_ID_BYTES} bytes"),
                )
                .with_details(serde_json::json!({"field": field, "max_bytes": MAX_ID_BYTES})));
            }
        }
        if self.kind.is_channel_traffic() && self.room.is_none() {
            return missing("room");
        }
        match self.kind {
            FrameType::Command => match self.payload.get("name") {
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(WireError::new(
                        ErrorCode::InvalidField,
                        "`payload.name` must be a string",
                    ))
                }
                None => return missing("payload.name"),
            },
            FrameType::Private => match self.payload.get("to") {
                Some(Value::Array(_)) => {}
                Some(_) => {
                    return Err(WireError::new(
                        ErrorCode::InvalidField,
                        "`payload.to` must be an array of session ids",
                    ))
                }
                None => return missing("payload.to"),
            },
            _ => {}
        }
        Ok(())
    }

    /// Serializes to the JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        // One buffer sized from the envelope: `to_string` starts at 128 bytes and grows by
        // doubling, two or three reallocations for a typical delivery (profiled).
        let mut out = Vec::with_capacity(self.size_hint());
        // Serializing a tree of Strings, numbers and `Value`s cannot fail, and
        // serde_json writes UTF-8 only.
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// About the length of [`Envelope::to_text`]: exact for text without escapes, and
    /// never far below it, so that the buffer is allocated once.
    fn size_hint(&self) -> usize {
        let strings = [
            &self.id,
            &self.trace_id,
            &self.ts,
            &self.room,
            &self.channel,
            &self.from,
            &self.epoch,
        ];
        // Keys, quotes, commas, the type name, offset and echo: 147 bytes with every field.
        let header: usize = strings
            .iter()
            .filter_map(|s| s.as_ref())
            .map(String::len)
            .sum();
        152 + header + value_size_hint(&self.payload)
    }
}

/// About the serialized length of `v` (exact without escapes, numbers at their widest).
fn value_size_hint(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| value_size_hint(x) + 1).sum::<usize>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, x)| k.len() + 4 + value_size_hint(x))
                .sum::<usize>()
        }
    }
}

/// Deserializes the args of a command (built-in or an operator's) or the payload
/// of a HELLO; `null` counts as `{}`. A missing field maps to
/// `missing_field`, anything else to `invalid_field`.
pub(crate) fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, WireError> {
    let args = match args {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => args,
        _ => {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                "args must be a JSON object",
            ))
        }
    };
    serde_json::from_value(args).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("missing field") {
            ErrorCode::MissingField
        } else {
            ErrorCode::InvalidField
        };
        WireError::new(code, format!("args: {msg}"))
    })
}

/// An ERROR frame answering `re`.
pub(crate) fn error_frame(re: Option<String>, err: &WireError) -> Envelope {
    let mut payload = serde_json::json!({"re": re, "code": err.code, "message": err.message});
    if let Some(d) = &err.details {
        payload["details"] = d.clone();
    }
    let mut env = Envelope::new(FrameType::Error, payload);
    env.ts = Some(now_ts());
    env
}

/// The text of a REPLY `{re, ok: true, result}` stamped now.
///
/// The same JSON, byte for byte, as an [`Envelope`] of kind REPLY with that payload
/// (keys in serde_json's sorted order), written from borrowed fields: building the
/// payload as two `Value` maps and serializing the envelope was 14 % + 10 % of the
/// server's CPU in the many-channels profile (`docs/PERFORMANCE.md`).
pub(crate) fn reply_text<R: Serialize>(re: &str, result: &R) -> String {
    #[derive(Serialize)]
    struct Reply<'a, R> {
        #[serde(rename = "type")]
        kind: FrameType,
        ts: &'a str,
        payload: Payload<'a, R>,
    }
    #[derive(Serialize)]
    struct Payload<'a, R> {
        ok: bool,
        re: &'a str,
        result: &'a R,
    }
    with_now_ts(|ts| {
        let frame = Reply {
            kind: FrameType::Reply,
            ts,
            payload: Payload {
                ok: true,
                re,
                result,
            },
        };
        let mut out = Vec::with_capacity(192 + re.len());
        // As in `to_text`: cannot fail, and the output is UTF-8.
        if serde_json::to_writer(&mut out, &frame).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    })
}

/// What a peer may send, before validation; every field optional so that a missing field
/// gets its own error code instead of a generic serde message. The type name is borrowed
/// from the frame's text (it is only matched), unless it contains escapes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope<'a> {
    id: Option<String>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    trace_id: Option<String>,
    room: Option<String>,
    channel: Option<String>,
    echo: Option<bool>,
    sig: Option<Box<Sig>>,
    payload: Option<Value>,
}

/// The current time as RFC 3339 UTC with milliseconds (`2026-11-21T10:00:00.123Z`).
pub fn now_ts() -> String {
    with_now_ts(str::to_owned)
}

thread_local! {
    /// The last millisecond formatted on this thread, and its text: frames stamped within
    /// the same millisecond copy it instead of formatting again (formatting was a few %
    /// of the server's CPU per publish).
    static LAST_TS: RefCell<(Option<u64>, String)> = const { RefCell::new((None, String::new())) };
}

/// Calls `f` with the current time as [`now_ts`] formats it, without allocating when
/// this thread already formatted the same millisecond.
pub(crate) fn with_now_ts<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now();
    let ms = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok());
    LAST_TS.with(|cell| {
        // `try_` so that a nested call from `f` formats afresh instead of panicking.
        if let (Some(ms), Ok(mut last)) = (ms, cell.try_borrow_mut()) {
            if last.0 != Some(ms) {
                use std::fmt::Write;
                last.1.clear();
                // Writing into a String cannot fail.
                let _ = write!(last.1, "{}", humantime::format_rfc3339_millis(now));
                last.0 = Some(ms);
            }
        }
        match cell.try_borrow() {
            Ok(last) if ms.is_some() && last.0 == ms => f(&last.1),
            _ => f(&humantime::format_rfc3339_millis(now).to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        Envelope::parse_peer(text).unwrap_err().code
    }

    #[test]
    fn each_kind_of_bad_frame_gets_its_own_code() {
        assert_eq!(code("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code(""), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"id":5,"type":"MESSAGE"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"id":"1"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"id":"1","type":"NOPE"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"COMMAND","payload":{"name":"ping"}}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"id":"1","type":"COMMAND","payload":{}}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"id":"1","type":"COMMAND","payload":{"name":3}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"id":"1","type":"MESSAGE","payload":{}}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"type":"PRIVATE","payload":{"to":"s-1"}}"#),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn server_stamped_fields_from_peers_are_dropped() {
        let e = Envelope::parse_peer(
            r#"{"id":"1","type":"MESSAGE","room":"a","channel":"b","from":"evil","offset":9,"epoch":"x","ts":"t"}"#,
        )
        .unwrap();
        assert_eq!((e.from, e.offset, e.epoch, e.ts), (None, None, None, None));
    }

    #[test]
    fn cached_timestamps_are_formatted_like_humantime() {
        let before = SystemTime::now();
        let ts = now_ts();
        let again = now_ts();
        let after = SystemTime::now();
        let fresh = [before, after].map(|t| humantime::format_rfc3339_millis(t).to_string());
        assert_eq!(ts.len(), "2026-11-21T10:00:00.123Z".len());
        assert!(fresh[0] <= ts && ts <= again && again <= fresh[1]);
        assert!(with_now_ts(|outer| with_now_ts(|inner| inner >= outer)));
    }

    #[test]
    fn reply_text_is_the_envelope_of_that_reply() {
        let result =
            serde_json::json!({"address": "r:c", "offset": 3, "epoch": "e-1", "x": [1, "\"q"]});
        let text = reply_text("id \"7\"", &result);
        let back: Envelope = serde_json::from_str(&text).unwrap();
        let mut want = Envelope::new(
            FrameType::Reply,
            serde_json::json!({"re": "id \"7\"", "ok": true, "result": result}),
        );
        want.ts = back.ts.clone();
        assert!(back.ts.is_some());
        assert_eq!(text, want.to_text());
    }

    #[test]
    fn size_hint_covers_text_without_escapes() {
        let mut e = Envelope::new(
            FrameType::Message,
            serde_json::json!({"p": "x".repeat(900), "t": u64::MAX, "a": [1.5, null, true]}),
        );
        e.ts = Some(now_ts());
        e.room = Some("room".into());
        e.from = Some("s-0123456789ab".into());
        e.offset = Some(u64::MAX);
        assert!(e.size_hint() >= e.to_text().len());
    }

    #[test]
    fn envelopes_round_trip_through_text() {
        let mut e = Envelope::new(FrameType::Message, serde_json::json!({"x": 1}));
        e.room = Some("r".into());
        e.offset = Some(3);
        e.trace_id = Some("t".into());
        let text = e.to_text();
        assert!(text.contains(r#""traceId":"t""#));
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }
}
