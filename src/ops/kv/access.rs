//! Namespaces and who may touch them: the key-value store's half of the authority
//! model (`auth::authority` checks, `docs/ROLES.md` has the table).
//!
//! A namespace is a tenant: an identity (`@me`, or `id:<subject>`) or a room
//! (`room:<name>`). Invariants: an identity's namespace is its own subject's and an
//! admin's, nobody else's, whatever the credential's address lists say; a room's is
//! read with `subscribe` on the whole room (`<room>:*`) and written with `publish` on
//! it; observers never write. The namespace is resolved here, once, from the same
//! argument the command then uses, so the need and the act cannot name two places.

use crate::address::Pattern;
use crate::auth::authority::{Need, On, Right, ADMINS, ANY_ROLE};
use crate::auth::Role;
use crate::error::{ErrorCode, WireError};
use crate::ops::Caller;
use serde_json::{json, Value};

/// Roles that may write values: every role but observers.
const WRITERS: &[Role] = &[Role::Client, Role::Consumer, Role::Admin];

/// An `op.store.*` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Set,
    Get,
    List,
    Delete,
}

impl Cmd {
    /// The command called `name` (without `op.store.`).
    pub(crate) fn parse(name: &str) -> Result<Cmd, WireError> {
        Ok(match name {
            "set" => Cmd::Set,
            "get" => Cmd::Get,
            "list" => Cmd::List,
            "delete" => Cmd::Delete,
            other => {
                return Err(WireError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command `op.store.{other}`"),
                ))
            }
        })
    }

    fn writes(self) -> bool {
        matches!(self, Cmd::Set | Cmd::Delete)
    }
}

/// A resolved namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ns {
    /// An identity's own values.
    Identity(String),
    /// A room's shared values.
    Room(String),
}

impl Ns {
    /// Parses the `ns` argument for `caller`: `@me`, `id:<subject>`, `room:<name>`.
    pub(crate) fn parse(caller: &Caller, args: &Value) -> Result<Ns, WireError> {
        let bad = |why: String| {
            WireError::new(ErrorCode::InvalidField, why).with_details(json!({"field": "ns"}))
        };
        let raw = match args.get("ns") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => {
                return Err(WireError::new(
                    ErrorCode::MissingField,
                    "`ns` is required: `@me`, `id:<subject>` or `room:<name>`",
                )
                .with_details(json!({"field": "ns"})))
            }
            Some(_) => return Err(bad("`ns` must be a string".into())),
        };
        if raw == "@me" {
            return Ok(Ns::Identity(caller.identity.subject.clone()));
        }
        if let Some(s) = raw.strip_prefix("id:") {
            crate::auth::check_subject(s)
                .or_else(|e| {
                    // The anonymous subject is a real namespace (local sessions
                    // without a credential share it), though no credential may claim
                    // it.
                    if s == crate::auth::ANONYMOUS {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|why| bad(format!("`ns` subject {why}")))?;
            return Ok(Ns::Identity(s.to_owned()));
        }
        if let Some(r) = raw.strip_prefix("room:") {
            return match Pattern::parse(r) {
                Ok(Pattern::Room(name)) if name == r => Ok(Ns::Room(name)),
                _ => Err(bad(format!(
                    "`room:{r}`: a room is one name, [a-z0-9][a-z0-9._-]{{0,63}}"
                ))),
            };
        }
        Err(bad(format!(
            "`ns` must be `@me`, `id:<subject>` or `room:<name>`, not `{raw}`"
        )))
    }

    /// The stored spelling (`id:alice`, `room:team`).
    pub(crate) fn key(&self) -> String {
        match self {
            Ns::Identity(s) => format!("id:{s}"),
            Ns::Room(r) => format!("room:{r}"),
        }
    }
}

/// What `op.store.<name>` needs for `caller`.
pub(crate) fn need(caller: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
    let cmd = Cmd::parse(name)?;
    let roles = if cmd.writes() { WRITERS } else { ANY_ROLE };
    let need = match Ns::parse(caller, args)? {
        Ns::Identity(s) if s == caller.identity.subject => {
            Need::new(roles, Right::None, On::Nothing)
        }
        // Another identity's values: admins only (its owner's credential lists say
        // nothing about who may read its private state).
        Ns::Identity(_) => Need::new(ADMINS, Right::Admin, On::Nothing),
        Ns::Room(r) => {
            let right = if cmd.writes() {
                Right::Publish
            } else {
                Right::Read
            };
            Need::new(roles, right, On::Pattern(Pattern::Room(r)))
        }
    };
    // A value is content: the safety layer sees it before it is stored.
    Ok(if cmd == Cmd::Set {
        need.with_content()
    } else {
        need
    })
}
