//! `status`: server-wide counters, rooms and operators.

use super::Ctx;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// `status {}` -> `{server, protocol, engine, session, stats, rooms, operators}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}

impl Status {
    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let bus = ctx.member.bus();
        Ok(json!({
            "server": ctx.server.server,
            "protocol": ctx.server.protocol,
            "engine": bus.engine(),
            "session": ctx.member.id(),
            "stats": bus.stats(),
            "rooms": bus.list_rooms(),
            "operators": ctx.ops.namespaces(),
        }))
    }
}
