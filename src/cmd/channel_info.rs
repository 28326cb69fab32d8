//! `channel_info`: one channel's position, metadata and participants (presence).

use super::{parse_args, Ctx};
use crate::address::Address;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::Value;

/// `channel_info {address}` -> `{address, offset, epoch, history, created_at,
/// created_by, persistent, participants: [{session, role, capabilities, ...}]}`.
#[derive(Debug)]
pub struct ChannelInfoCmd {
    pub(crate) address: Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
}

impl ChannelInfoCmd {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        Ok(ChannelInfoCmd {
            address: Address::parse(&a.address)?,
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let info = ctx.member.bus().channel_info(&self.address)?;
        Ok(serde_json::to_value(info).unwrap_or(Value::Null))
    }
}
