//! Who may run each `op.cron.*` command: the cron operator's half of the authority
//! model (`auth::authority` checks, `docs/ROLES.md` has the table).
//!
//! A schedule publishes with its owner's authority, so making one needs what a
//! publish there needs: `publish` on its address, and the payload is content the
//! safety layer inspects for that address before it is stored. A schedule is a
//! resource owned by its maker and living on its address: cancelling it is `edit`
//! (its owner, who may still publish there, or an admin). Listing is filtered to the
//! caller's own schedules unless the caller is an admin.

use crate::address::Address;
use crate::auth::authority::{Need, On, Right, ANY_ROLE};
use crate::auth::Role;
use crate::error::{ErrorCode, WireError};
use serde_json::{json, Value};

/// Roles that may make and cancel schedules: every role but observers.
const WRITERS: &[Role] = &[Role::Client, Role::Consumer, Role::Admin];

/// An `op.cron.*` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Schedule,
    List,
    Cancel,
}

impl Cmd {
    /// The command called `name` (without `op.cron.`).
    pub(crate) fn parse(name: &str) -> Result<Cmd, WireError> {
        Ok(match name {
            "schedule" => Cmd::Schedule,
            "list" => Cmd::List,
            "cancel" => Cmd::Cancel,
            other => {
                return Err(WireError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command `op.cron.{other}`"),
                ))
            }
        })
    }
}

/// A required string field.
pub(crate) fn string<'a>(args: &'a Value, field: &str) -> Result<&'a str, WireError> {
    match args.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(WireError::new(
            ErrorCode::MissingField,
            format!("`{field}` is required"),
        )
        .with_details(json!({"field": field}))),
        Some(_) => Err(WireError::new(
            ErrorCode::InvalidField,
            format!("`{field}` must be a non-empty string"),
        )
        .with_details(json!({"field": field}))),
    }
}

/// What `op.cron.<name>` needs.
pub(crate) fn need(name: &str, args: &Value) -> Result<Need, WireError> {
    Ok(match Cmd::parse(name)? {
        Cmd::Schedule => {
            let addr = Address::parse(string(args, "address")?)?;
            Need::new(WRITERS, Right::Publish, On::Address(addr)).with_content()
        }
        Cmd::List => Need::new(ANY_ROLE, Right::None, On::Each),
        Cmd::Cancel => Need::new(
            WRITERS,
            Right::Edit,
            On::Resource(string(args, "id")?.to_owned()),
        ),
    })
}
