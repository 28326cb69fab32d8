//! `leave`: drop one subscription (exact or pattern, as it was joined).

use super::{parse_args, Ctx};
use crate::address::Pattern;
use crate::error::WireError;
use serde::Deserialize;
use serde_json::{json, Value};

/// `leave {address}` -> `{left: [channels no longer received]}`.
#[derive(Debug)]
pub struct Leave {
    pattern: Pattern,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    address: String,
}

impl Leave {
    pub(crate) fn parse(args: Value) -> Result<Self, WireError> {
        let a: Args = parse_args(args)?;
        Ok(Leave {
            pattern: Pattern::parse(&a.address)?,
        })
    }

    pub(crate) fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        let left = ctx.member.leave(&self.pattern)?;
        let left: Vec<String> = left.iter().map(|a| a.to_string()).collect();
        Ok(json!({"subscription": self.pattern.to_string(), "left": left}))
    }
}
