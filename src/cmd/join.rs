//! `join`: subscribe to an address or pattern, optionally recovering what was missed.

use super::{messages_json, parse_args, Ctx};
use crate::address::{Address, Pattern};
use crate::bus::Position;
use crate::error::{ErrorCode, WireError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// `join {address, recover?}`.
///
/// `recover` is `{offset, epoch}` for an exact address, or `{"room:channel": {offset,
/// epoch}, ...}` for a pattern. The reply lists the covered channels with their current
/// position, and when asked, `recovered` (true only if every asked channel replayed
/// exactly what it missed), `messages` (all replayed frames) and per-channel `recovery`.
#[derive(Debug)]
pub struct Join {
    pub(crate) pattern: Pattern,
    recover: HashMap<Address, Position>,
    asked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
    #[serde(default)]
    recover: Option<Value>,
}

impl Join {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        let pattern = Pattern::parse(&a.address)?;
        let mut recover = HashMap::new();
        let asked = a.recover.is_some();
        match (a.recover, &pattern) {
            (None, _) => {}
            (Some(v), Pattern::Exact(addr)) => {
                recover.insert(addr.clone(), position(v)?);
            }
            (Some(Value::Object(map)), _) => {
                for (k, v) in map {
                    recover.insert(Address::parse(&k)?, position(v)?);
                }
            }
            (Some(_), _) => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`recover` on a pattern is a map of room:channel -> {offset, epoch}",
                ))
            }
        }
        Ok(Join {
            pattern,
            recover,
            asked,
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let out = ctx.member.join(&self.pattern, &self.recover)?;
        let channels: Vec<Value> = out
            .channels
            .iter()
            .map(|(a, p)| json!({"address": a.to_string(), "offset": p.offset, "epoch": p.epoch}))
            .collect();
        let mut result = Map::new();
        result.insert("subscription".into(), out.pattern.clone().into());
        result.insert("channels".into(), channels.into());
        if self.asked {
            // A channel that was asked about but does not exist (any more) cannot be
            // recovered exactly.
            let mut all = self
                .recover
                .keys()
                .all(|a| out.recovery.iter().any(|(r, _)| r == a));
            let mut messages = Vec::new();
            let mut per = Vec::new();
            for (addr, r) in &out.recovery {
                all &= r.recovered;
                messages.extend(messages_json(&r.messages));
                per.push(json!({
                    "address": addr.to_string(),
                    "recovered": r.recovered,
                    "more": r.more,
                    "count": r.messages.len(),
                    "offset": r.position.offset,
                    "epoch": r.position.epoch,
                }));
            }
            result.insert("recovered".into(), all.into());
            result.insert("messages".into(), messages.into());
            result.insert("recovery".into(), per.into());
        }
        Ok(Value::Object(result))
    }
}

fn position(v: Value) -> Result<Position, WireError> {
    // Refuse keys we do not know: a typo (`ofset`) would otherwise silently recover
    // from the start.
    if let Value::Object(m) = &v {
        if let Some(k) = m.keys().find(|k| *k != "offset" && *k != "epoch") {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                format!("recover: unknown field `{k}`, expected `offset` or `epoch`"),
            ));
        }
    }
    parse_args(v).map_err(|e| WireError::new(e.code, format!("recover: {}", e.message)))
}
