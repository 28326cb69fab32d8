//! `op.safety.*`: read and live-reload the redaction policy, for admin sessions.
//!
//! - `op.safety.get {}` -> `{policy, rules, stats}`: the policy as configured, the
//!   active rule names in order, and the decision counters.
//! - `op.safety.reload {policy?}` -> `{mode, rules}`: with `policy` (the `[safety]`
//!   section as JSON, every field optional), compiles and swaps it in; without, re-reads
//!   the config file the broker started with. A policy that does not compile is
//!   refused with `invalid_field` and the running one stays.
//!
//! The operator lives beside the layer it drives rather than in `ops/`, so that the
//! safety layer is one folder; it uses only the public operator API.

use super::{Safety, SafetyConfig};
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The `safety` operator. Register it with
/// `Operators::new().with(Arc::new(SafetyOperator::new(safety)))`.
#[derive(Debug)]
pub struct SafetyOperator {
    safety: Arc<Safety>,
}

impl SafetyOperator {
    /// An operator driving `safety`.
    pub fn new(safety: Arc<Safety>) -> Self {
        SafetyOperator { safety }
    }

    fn run(&self, caller: &Caller, name: &str, args: Value) -> Result<Value, WireError> {
        if !caller.is_admin() {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("`op.safety.{name}` is for admin sessions"),
            ));
        }
        match name {
            "get" => {
                let r = self.safety.active();
                Ok(json!({
                    "policy": r.config(),
                    "rules": r.rule_names(),
                    "stats": self.safety.stats(),
                }))
            }
            "reload" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    #[serde(default)]
                    policy: Option<SafetyConfig>,
                }
                let a: Args = crate::frame::parse_args(args)?;
                match a.policy {
                    Some(p) => self.safety.reload(p)?,
                    None => self.safety.reload_from_source()?,
                }
                let r = self.safety.active();
                Ok(json!({"mode": r.mode().as_str(), "rules": r.rule_names()}))
            }
            other => Err(WireError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `op.safety.{other}`"),
            )),
        }
    }
}

impl Operator for SafetyOperator {
    fn namespace(&self) -> &str {
        "safety"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move { self.run(caller, name, args) })
    }
}
