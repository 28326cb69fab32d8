//! Roles and what each may send: the table of `docs/ROLES.md`, in code.
//!
//! The role is fixed at handshake: by the credential when the session presented one,
//! else by the HELLO (local mode only). Each frame type and each command name is then
//! checked against the role before anything else happens; a refusal is `forbidden`.

use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde::{Deserialize, Serialize};

/// A session's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits tasks, decides approvals, publishes and reads.
    Client,
    /// Executes tasks: publishes progress, approval requests, results and errors.
    Consumer,
    /// Everything, including admin commands and `op.safety.*`.
    Admin,
    /// Read-only: joins, reads history and presence, sends heartbeats.
    Observer,
}

/// Every role, in table order.
pub const ROLES: [Role; 4] = [Role::Client, Role::Consumer, Role::Admin, Role::Observer];

/// Built-in commands that only read (every role may run them).
pub const READ_COMMANDS: &[&str] = &[
    "status",
    "ping",
    "join",
    "join_channel",
    "leave",
    "leave_channel",
    "list_channels",
    "channel_info",
    "history",
];

/// Built-in commands for admins only.
pub const ADMIN_COMMANDS: &[&str] = &["create_channel", "delete_channel"];

/// Operator namespaces whose commands are for admins only.
pub const ADMIN_NAMESPACES: &[&str] = &["safety"];

impl Role {
    /// Parses the wire spelling.
    ///
    /// # Errors
    /// `invalid_field` for a name outside the table.
    pub fn parse(s: &str) -> Result<Role, WireError> {
        match s {
            "client" => Ok(Role::Client),
            "consumer" => Ok(Role::Consumer),
            "admin" => Ok(Role::Admin),
            "observer" => Ok(Role::Observer),
            other => Err(WireError::new(
                ErrorCode::InvalidField,
                format!("unknown role `{other}`; roles are client, consumer, admin, observer"),
            )),
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Consumer => "consumer",
            Role::Admin => "admin",
            Role::Observer => "observer",
        }
    }

    /// Whether this role may send frames of `kind` after the handshake. Frame types
    /// only the server sends (WELCOME, SYSTEM, REPLY) and HELLO are refused elsewhere,
    /// with their own codes, for every role.
    pub fn may_send(self, kind: FrameType) -> bool {
        use FrameType::*;
        match (self, kind) {
            (_, Heartbeat | Command) => true,
            (Role::Admin, _) => true,
            (Role::Observer, _) => false,
            (Role::Client, Message | Private | Task | Approval) => true,
            (Role::Consumer, Message | Private | Event | Approval | Result | Error) => true,
            _ => false,
        }
    }

    /// Whether this role may run the command `name` (built-in or `op.<ns>.<cmd>`).
    /// Names that are neither are let through to be refused as `unknown_command`.
    pub fn may_run(self, name: &str) -> bool {
        if self == Role::Admin || READ_COMMANDS.contains(&name) {
            return true;
        }
        if ADMIN_COMMANDS.contains(&name) {
            return false;
        }
        if let Some(rest) = name.strip_prefix("op.") {
            let ns = rest.split('.').next().unwrap_or_default();
            return self != Role::Observer && !ADMIN_NAMESPACES.contains(&ns);
        }
        true
    }

    /// The refusal for a frame type.
    pub(crate) fn refuse_frame(self, kind: FrameType) -> WireError {
        WireError::new(
            ErrorCode::Forbidden,
            format!(
                "role {} may not send {} frames",
                self.as_str(),
                kind.as_str()
            ),
        )
        .with_details(serde_json::json!({"role": self.as_str(), "type": kind.as_str()}))
    }

    /// The refusal for a command.
    pub(crate) fn refuse_command(self, name: &str) -> WireError {
        WireError::new(
            ErrorCode::Forbidden,
            format!("role {} may not run `{name}`", self.as_str()),
        )
        .with_details(serde_json::json!({"role": self.as_str(), "command": name}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_only_read_and_admins_do_everything() {
        assert!(!Role::Observer.may_send(FrameType::Message));
        assert!(Role::Observer.may_send(FrameType::Heartbeat));
        assert!(Role::Observer.may_run("history"));
        assert!(!Role::Observer.may_run("op.queue.submit"));
        assert!(Role::Admin.may_run("op.safety.reload"));
        assert!(!Role::Client.may_run("op.safety.get"));
        assert!(Role::Client.may_run("op.queue.submit"));
        assert!(!Role::Consumer.may_send(FrameType::Task));
        assert!(!Role::Client.may_send(FrameType::Result));
        assert!(Role::parse("root").is_err());
    }
}
