//! Who may run each `op.webhook.*` command: the webhook operator's half of the
//! authority model (`auth::authority` checks; `docs/ROLES.md` has the table).
//!
//! Registering a webhook on a pattern is a **read** of that pattern: the caller needs
//! `subscribe` covering all of it, exactly as a `join` of it would, so a restricted
//! token cannot route to a URL what it could not read itself. A registration is a
//! resource owned by the subject that made it: removing it or reading its dead letters
//! needs [`Right::Own`] (its owner, or an admin). `list` is open to every role that
//! may register and shows each caller only its own registrations (admins all).
//! Observers only read: they may not create webhooks.

use super::model::pattern_of;
use crate::auth::authority::{Need, On, Right, ANY_ROLE};
use crate::auth::Role;
use crate::error::{ErrorCode, WireError};
use serde_json::{json, Value};

/// Roles that may register webhooks: every role that acts, not observers.
pub(crate) const REGISTRARS: &[Role] = &[Role::Client, Role::Consumer, Role::Admin];

/// An `op.webhook.*` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Register,
    List,
    Unregister,
    DeadLetters,
}

impl Cmd {
    /// The command called `name` (without `op.webhook.`).
    pub(crate) fn parse(name: &str) -> Result<Cmd, WireError> {
        Ok(match name {
            "register" => Cmd::Register,
            "list" => Cmd::List,
            "unregister" => Cmd::Unregister,
            "deadletters" => Cmd::DeadLetters,
            other => {
                return Err(WireError::new(
                    ErrorCode::UnknownCommand,
                    format!(
                        "unknown command `op.webhook.{other}`; known: register, list, \
                         unregister, deadletters"
                    ),
                ))
            }
        })
    }

    /// What it needs.
    pub(crate) fn need(self, args: &Value) -> Result<Need, WireError> {
        Ok(match self {
            Cmd::Register => {
                Need::new(REGISTRARS, Right::Read, On::Pattern(pattern_of(args)?)).audited()
            }
            Cmd::List => Need::new(ANY_ROLE, Right::None, On::Each),
            Cmd::Unregister | Cmd::DeadLetters => {
                Need::new(ANY_ROLE, Right::Own, On::Resource(id_of(args)?))
            }
        })
    }
}

/// The registration `args.id` names.
///
/// # Errors
/// `missing_field`, or `invalid_field` when it is not a non-empty string of at most
/// 64 bytes.
pub(crate) fn id_of(args: &Value) -> Result<String, WireError> {
    match args.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
        None | Some(Value::Null) => {
            Err(WireError::new(ErrorCode::MissingField, "`id` is required")
                .with_details(json!({"field": "id"})))
        }
        Some(_) => Err(WireError::new(
            ErrorCode::InvalidField,
            "`id` must be a registration id (`wh-...`)",
        )
        .with_details(json!({"field": "id"}))),
    }
}
