//! `delete_channel` (admin): remove a channel with no subscribers, and its history.

use super::{parse_args, require_admin, Ctx};
use crate::address::Address;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// `delete_channel {address}` -> `{deleted: address}`; `channel_not_empty` while anyone
/// is subscribed.
#[derive(Debug)]
pub struct DeleteChannel {
    address: Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
}

impl DeleteChannel {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        Ok(DeleteChannel {
            address: Address::parse(&a.address)?,
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        require_admin(ctx, "delete_channel")?;
        ctx.member.bus().delete_channel(&self.address)?;
        Ok(json!({"deleted": self.address.to_string()}))
    }
}
