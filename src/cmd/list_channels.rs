//! `list_channels`: channels of one room (or all), with subscriber counts.
//!
//! Only what the caller's credential may read is listed: a channel when `subscribe`
//! covers it, a room when it covers the whole room or one of its listed channels. The
//! names, offsets and subscriber counts of other rooms are not the caller's to see.

use super::Ctx;
use crate::address::Pattern;
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
            Pattern::parse(r)?;
        }
        let perms = &ctx.identity.permissions;
        let channels: Vec<_> = bus
            .list_channels(self.room.as_deref())
            .into_iter()
            .filter(|c| Pattern::parse(&c.address).is_ok_and(|p| perms.may_subscribe(&p)))
            .collect();
        let rooms: Vec<String> = bus
            .list_rooms()
            .into_iter()
            .filter(|r| {
                Pattern::parse(r).is_ok_and(|p| perms.may_subscribe(&p))
                    || channels
                        .iter()
                        .any(|c| c.address.split_once(':').is_some_and(|(room, _)| room == r))
            })
            .collect();
        Ok(json!({
            "rooms": rooms,
            "channels": channels,
            "subscriptions": ctx.member.subscriptions(),
        }))
    }
}
