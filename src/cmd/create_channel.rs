//! `create_channel` (admin): make a persistent channel, never swept when empty.

use super::{parse_args, require_admin, Ctx};
use crate::address::Address;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// `create_channel {address}` -> `{created: address}`.
#[derive(Debug)]
pub struct CreateChannel {
    address: Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
}

impl CreateChannel {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        Ok(CreateChannel {
            address: Address::parse(&a.address)?,
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        require_admin(ctx, "create_channel")?;
        ctx.member
            .bus()
            .create_channel(&self.address, Some(ctx.member.id()))?;
        Ok(json!({"created": self.address.to_string()}))
    }
}
