//! Roles and the frame types each may send: the first table of `docs/ROLES.md`, in code.
//!
//! The role is fixed at handshake: by the credential when the session presented one,
//! else by the HELLO (local mode only). Each frame type is checked against the role
//! before anything else happens; a refusal is `forbidden`. Which roles may run each
//! command is said by the command itself (`cmd::Command::need`, an operator's
//! `command_need`) and checked by `authority`.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_only_read_and_admins_do_everything() {
        assert!(!Role::Observer.may_send(FrameType::Message));
        assert!(Role::Observer.may_send(FrameType::Heartbeat));
        assert!(!Role::Consumer.may_send(FrameType::Task));
        assert!(!Role::Client.may_send(FrameType::Result));
        assert!(Role::parse("root").is_err());
    }
}
