//! `list_channels`: channels of one room (or all), with subscriber counts.

use super::Ctx;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// `list_channels {room?}` -> `{rooms, channels: [{address, subscribers, offset, epoch,
/// persistent}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListChannels {
    #[serde(default)]
    room: Option<String>,
}

impl ListChannels {
    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let bus = ctx.member.bus();
        if let Some(r) = &self.room {
            if r.contains([':', '*']) {
                return Err(WireError::new(
                    crate::error::ErrorCode::InvalidAddress,
                    format!("`room` is a room name, not a pattern: {r:?}"),
                ));
            }
            crate::address::Pattern::parse(r)?;
        }
        Ok(json!({
            "rooms": bus.list_rooms(),
            "channels": bus.list_channels(self.room.as_deref()),
            "subscriptions": ctx.member.subscriptions(),
        }))
    }
}
