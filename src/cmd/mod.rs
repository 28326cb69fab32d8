//! Built-in commands, one file each: parsed from a COMMAND's `{name, args}` into
//! [`Command`], validated before anything runs, then applied against the bus.
//!
//! Names under `op.` go to operators instead (see [`crate::ops`]).
//!
//! A command is parsed and validated whole before it runs, so a refused one changed
//! nothing. Each states what it needs ([`Command::need`]); the dispatcher checks that
//! before [`Command::apply`], which acts through the caller's own [`Member`], so a
//! command sees the bus as its caller does. Commands sit above the operators only so
//! that `status` can name them; no command calls one.
//!
//! # Layout
//! - `status`, `ping`: server counters and liveness.
//! - `join`, `leave`: subscriptions, with recovery by offset and epoch on `join`.
//! - `list_channels`, `channel_info`, `history`: what the caller may read.
//! - `create_channel`, `delete_channel`: persistent channels (admin).

mod channel_info;
mod create_channel;
mod delete_channel;
mod history;
mod join;
mod leave;
mod list_channels;
mod ping;
mod status;

pub use channel_info::ChannelInfoCmd;
pub use create_channel::CreateChannel;
pub use delete_channel::DeleteChannel;
pub use history::History;
pub use join::Join;
pub use leave::Leave;
pub use list_channels::ListChannels;
pub use ping::Ping;
pub use status::Status;

use crate::address::Pattern;
use crate::auth::authority::{Need, On, Right, ADMINS, ANY_ROLE};
use crate::bus::{Delivery, Member};
use crate::error::{ErrorCode, WireError};
use crate::ops::Operators;
// Written with the wire types, since operators parse their args the same way and the
// commands layer sits above them.
pub(crate) use crate::frame::parse_args;
use serde_json::Value;

/// Facts about the running server that commands report.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `hivebus/<version>`.
    pub server: String,
    /// Protocol version (1).
    pub protocol: u32,
}

/// What a command runs against.
pub struct Ctx<'a> {
    /// The calling session.
    pub member: &'a Member,
    /// Who the caller is, for commands that filter what they show.
    pub identity: &'a crate::auth::Identity,
    /// Server facts.
    pub server: &'a ServerInfo,
    /// The operators, for `status`.
    pub ops: &'a Operators,
}

/// A parsed built-in command.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// `status`
    Status(Status),
    /// `ping`
    Ping(Ping),
    /// `join` (alias `join_channel`)
    Join(Join),
    /// `leave` (alias `leave_channel`)
    Leave(Leave),
    /// `list_channels`
    ListChannels(ListChannels),
    /// `channel_info`
    ChannelInfo(ChannelInfoCmd),
    /// `history`
    History(History),
    /// `create_channel` (admin)
    CreateChannel(CreateChannel),
    /// `delete_channel` (admin)
    DeleteChannel(DeleteChannel),
}

impl Command {
    /// Parses a built-in command; `Ok(None)` when `name` is not a built-in.
    ///
    /// # Errors
    /// `missing_field`, `invalid_field` or `invalid_address` when the args are wrong.
    pub fn parse(name: &str, args: Value) -> Result<Option<Command>, WireError> {
        Ok(Some(match name {
            "status" => Command::Status(parse_args(args)?),
            "ping" => Command::Ping(parse_args(args)?),
            "join" | "join_channel" => Command::Join(Join::parse(args)?),
            "leave" | "leave_channel" => Command::Leave(Leave::parse(args)?),
            "list_channels" => Command::ListChannels(parse_args(args)?),
            "channel_info" => Command::ChannelInfo(ChannelInfoCmd::parse(args)?),
            "history" => Command::History(History::parse(args)?),
            "create_channel" => Command::CreateChannel(CreateChannel::parse(args)?),
            "delete_channel" => Command::DeleteChannel(DeleteChannel::parse(args)?),
            _ => return Ok(None),
        }))
    }

    /// What the command needs (see `auth::authority`): every role may read what its
    /// credential covers; channels are made and removed by admins.
    pub fn need(&self) -> Need {
        match self {
            Command::Status(_) | Command::Ping(_) | Command::ListChannels(_) => Need::open(),
            Command::Leave(_) => Need::open(),
            Command::Join(c) => Need::new(ANY_ROLE, Right::Read, On::Pattern(c.pattern.clone())),
            Command::ChannelInfo(c) => Need::new(
                ANY_ROLE,
                Right::Read,
                On::Pattern(Pattern::Exact(c.address.clone())),
            ),
            Command::History(c) => Need::new(
                ANY_ROLE,
                Right::Read,
                On::Pattern(Pattern::Exact(c.address.clone())),
            ),
            Command::CreateChannel(_) | Command::DeleteChannel(_) => {
                Need::new(ADMINS, Right::Admin, On::Nothing)
            }
        }
    }

    /// Runs the command.
    ///
    /// # Errors
    /// The command's own errors (`forbidden`, `channel_not_found`, ...).
    pub fn apply(self, ctx: &Ctx<'_>) -> Result<Value, WireError> {
        match self {
            Command::Status(c) => c.apply(ctx),
            Command::Ping(c) => c.apply(ctx),
            Command::Join(c) => c.apply(ctx),
            Command::Leave(c) => c.apply(ctx),
            Command::ListChannels(c) => c.apply(ctx),
            Command::ChannelInfo(c) => c.apply(ctx),
            Command::History(c) => c.apply(ctx),
            Command::CreateChannel(c) => c.apply(ctx),
            Command::DeleteChannel(c) => c.apply(ctx),
        }
    }
}

/// The refusal for a non-admin caller.
pub(crate) fn require_admin(ctx: &Ctx<'_>, name: &str) -> Result<(), WireError> {
    if ctx.identity.role == crate::auth::Role::Admin {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::Forbidden,
            format!("`{name}` is for admin sessions"),
        ))
    }
}

/// Delivered frames as JSON values, for replies that carry history.
///
/// Read from the text rather than `Delivery::envelope`, which would parse the same text
/// and then keep that envelope with the history entry until it is evicted.
pub(crate) fn messages_json(messages: &[Delivery]) -> Vec<Value> {
    messages
        .iter()
        .map(|d| serde_json::from_str(d.text()).unwrap_or(Value::Null))
        .collect()
}
