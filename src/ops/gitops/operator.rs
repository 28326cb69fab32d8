//! `op.git.*`: the branch locks over the bus, for people and tools watching BIP work.
//!
//! - `op.git.locks` `{}`: every held lock, `{locks: [{bip, task, branch, worktree,
//!   since_ms}]}`.
//! - `op.git.status` `{bip}`: `{bip, locked, lock}` (`lock` null when free).
//! - `op.git.unlock` `{bip}`: frees a lock whose task's end was missed; `{bip,
//!   freed}` (`freed` the record, or null).
//!
//! Every command is admin-only (the [`Operator`] default): a lock names worktree
//! paths on the broker's machine, and unlocking lets a second task work on a BIP.
//! Arguments are strict: an unknown field is `invalid_field`.

use super::validate;
use super::workflow::Gitops;
use crate::error::{ErrorCode, WireError};
use crate::ops::{BoxFuture, Caller, Operator};
use serde_json::{json, Value};

/// The `git` namespace over a [`Gitops`] and its locks.
#[derive(Debug, Clone)]
pub struct GitopsOperator {
    gitops: Gitops,
}

impl GitopsOperator {
    /// The operator over `gitops`.
    pub fn new(gitops: Gitops) -> GitopsOperator {
        GitopsOperator { gitops }
    }

    /// The `bip` argument, the only one any command takes.
    fn bip(args: &Value, needed: bool) -> Result<Option<String>, WireError> {
        let obj = match args {
            Value::Null => None,
            Value::Object(m) => Some(m),
            _ => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "arguments must be an object",
                ))
            }
        };
        if let Some(k) = obj.and_then(|m| m.keys().find(|k| !(needed && *k == "bip"))) {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                format!("unknown field `{}`", validate::shown(k)),
            ));
        }
        if !needed {
            return Ok(None);
        }
        let bip = match obj.and_then(|m| m.get("bip")) {
            None => return Err(WireError::new(ErrorCode::MissingField, "`bip` is required")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`bip` must be a string",
                ))
            }
        };
        validate::bip(&bip).map_err(|e| e.to_wire())?;
        Ok(Some(bip))
    }

    async fn run(&self, name: &str, args: Value) -> Result<Value, WireError> {
        match name {
            "locks" => {
                Self::bip(&args, false)?;
                Ok(json!({ "locks": self.gitops.locks().list() }))
            }
            "status" => {
                let bip = Self::bip(&args, true)?.unwrap_or_default();
                let lock = self.gitops.locks().get(&bip);
                Ok(json!({ "bip": bip, "locked": lock.is_some(), "lock": lock }))
            }
            "unlock" => {
                let bip = Self::bip(&args, true)?.unwrap_or_default();
                let freed = self
                    .gitops
                    .locks()
                    .unlock(&bip)
                    .await
                    .map_err(|e| e.to_wire())?;
                Ok(json!({ "bip": bip, "freed": freed }))
            }
            _ => Err(WireError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `op.git.{}`", validate::shown(name)),
            )),
        }
    }
}

impl Operator for GitopsOperator {
    fn namespace(&self) -> &str {
        "git"
    }

    fn command<'a>(
        &'a self,
        _caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(self.run(name, args))
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        let locks = self.gitops.locks().clone();
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || locks.close()).await;
        })
    }
}
