//! The governance operator: publishes the TASK kinds' contracts on the bus
//! (`op.gov.kinds`, `op.gov.kind`) and checks a task's arguments against them
//! (`op.gov.validate`), so a client can validate before it submits and list the kinds in
//! its help.
//!
//! Authority: all three commands only read the static contract table and the caller's
//! own arguments, so they are open to every role (a restricted token included; there is
//! nothing of anyone's to see). Any other `op.gov.*` name is `unknown_command` before
//! the authority check, never silently admin-only. Arguments are strict: an unknown
//! field is `invalid_field`.

use super::kinds::{contract, example_args, kinds_json, validate_args};
use crate::auth::authority::Need;
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use serde::Deserialize;
use serde_json::{json, Value};

/// The commands, each written once.
const COMMANDS: &[&str] = &["kinds", "kind", "validate"];

/// The governance operator (namespace `gov`).
#[derive(Debug, Default)]
pub struct GovernanceOperator;

impl GovernanceOperator {
    /// The operator.
    pub fn new() -> Self {
        GovernanceOperator
    }

    fn run(&self, name: &str, args: Value) -> Result<Value, WireError> {
        match name {
            "kinds" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {}
                let _: Args = crate::frame::parse_args(args)?;
                Ok(kinds_json())
            }
            "kind" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    kind: String,
                }
                let a: Args = crate::frame::parse_args(args)?;
                let c = contract(&a.kind).ok_or_else(|| {
                    WireError::new(
                        ErrorCode::NotFound,
                        format!("no governance kind `{}`; op.gov.kinds lists them", a.kind),
                    )
                })?;
                Ok(json!({"kind": c, "example_args": example_args(&a.kind)}))
            }
            "validate" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Args {
                    kind: String,
                    #[serde(default)]
                    args: Value,
                }
                let a: Args = crate::frame::parse_args(args)?;
                let governed = contract(&a.kind).is_some();
                let task_args = if a.args.is_null() { json!({}) } else { a.args };
                Ok(match validate_args(&a.kind, &task_args) {
                    Ok(()) => {
                        json!({"kind": a.kind, "governed": governed, "valid": true, "problems": []})
                    }
                    Err(p) => {
                        json!({"kind": a.kind, "governed": governed, "valid": false, "problems": p})
                    }
                })
            }
            other => Err(unknown(other)),
        }
    }
}

fn unknown(name: &str) -> WireError {
    WireError::new(
        ErrorCode::UnknownCommand,
        format!("unknown command `op.gov.{name}` (op.gov.kinds, op.gov.kind, op.gov.validate)"),
    )
}

impl Operator for GovernanceOperator {
    fn namespace(&self) -> &str {
        "gov"
    }

    fn command<'a>(
        &'a self,
        _: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move { self.run(name, args) })
    }

    fn command_need(&self, _: &Caller, name: &str, _: &Value) -> Result<Need, WireError> {
        if COMMANDS.contains(&name) {
            Ok(Need::open())
        } else {
            Err(unknown(name))
        }
    }
}
