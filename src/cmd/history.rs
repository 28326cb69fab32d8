//! `history`: read a channel's retained publishes.

use super::{messages_json, parse_args, Ctx};
use crate::address::Address;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// Default page size when `limit` is absent.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// `history {address, since?, limit?}`: with `since`, the publishes after that offset
/// (oldest first); without, the newest `limit`. The reply says `complete: false` when
/// publishes in the asked range were already evicted, `more: true` when the byte budget
/// (`max_page_bytes`) cut the page, and gives the current `offset` and `epoch`.
#[derive(Debug)]
pub struct History {
    pub(crate) address: Address,
    since: Option<u64>,
    limit: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

impl History {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        Ok(History {
            address: Address::parse(&a.address)?,
            since: a.since,
            limit: a.limit.unwrap_or(DEFAULT_LIMIT),
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let page = ctx
            .member
            .bus()
            .history(&self.address, self.since, self.limit)?;
        Ok(json!({
            "address": self.address.to_string(),
            "offset": page.position.offset,
            "epoch": page.position.epoch,
            "complete": page.complete,
            "more": page.more,
            "messages": messages_json(&page.messages),
        }))
    }
}
