//! `ping`: liveness at the command level (the socket has WebSocket pings as well).

use super::Ctx;
use crate::error::WireError;
use crate::frame::now_ts;
use serde::Deserialize;
use serde_json::{json, Value};

/// `ping {}` -> `{pong: true, ts}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {}

impl Ping {
    pub(crate) fn apply(self, _ctx: &Ctx<'_>) -> Result<Value, WireError> {
        Ok(json!({"pong": true, "ts": now_ts()}))
    }
}
