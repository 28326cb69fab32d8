//! Errors that cross the wire: a stable snake_case [`ErrorCode`] per failure, and the
//! WebSocket close codes the server uses.
//!
//! Codes are part of the protocol (`docs/PROTOCOL.md` lists them); renaming one is a
//! breaking change. Internal errors map onto these codes at the edge, in one place.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable reason carried in every ERROR frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    InvalidJson,
    /// A binary WebSocket frame; the protocol is text only.
    BinaryNotSupported,
    /// The frame is larger than `max_frame`.
    FrameTooLarge,
    /// `type` names no frame type.
    UnknownType,
    /// A field this frame type needs is absent.
    MissingField,
    /// A field has the wrong JSON type or an impossible value.
    InvalidField,
    /// A room or channel name breaks the address grammar.
    InvalidAddress,
    /// The frame type may not be sent by a peer (WELCOME, REPLY to nothing, ...).
    UnexpectedType,
    /// The envelope `id` was already used by this session.
    DuplicateId,
    /// A REPLY names a request the server never sent.
    UnknownRequest,
    /// HELLO was sent twice.
    AlreadyHandshaken,
    /// The command name is not known.
    UnknownCommand,
    /// The room does not exist and may not be created on join.
    RoomNotFound,
    /// The channel does not exist.
    ChannelNotFound,
    /// The channel already exists.
    ChannelExists,
    /// The channel still has subscribers.
    ChannelNotEmpty,
    /// Publishing to a channel the session has not joined.
    NotJoined,
    /// The session has as many subscriptions as it may.
    TooManySubscriptions,
    /// A PRIVATE frame names no live session.
    UnknownSession,
    /// The caller's role may not do this.
    Forbidden,
    /// Authentication failed.
    Unauthorized,
    /// The server is at a limit; try later (see `details.retry_after_ms`).
    Overloaded,
    /// The request was refused by a safety rule.
    Blocked,
    /// The session sent frames faster than its rate limit; the frame was not applied
    /// (see `details.retry_after_ms`).
    RateLimited,
    /// Something failed inside the server; the frame was not applied.
    Internal,
    /// An operator refused the request for a reason of its own (see `details`).
    OperatorError,
    /// The named object (task, approval, ...) does not exist.
    NotFound,
    /// The request conflicts with the object's current state.
    Conflict,
    /// A consumer frame names a lease that is no longer the task's current one (an
    /// older attempt, an expired or cancelled lease).
    StaleLease,
    /// A signed envelope whose signature does not verify against its sender's key
    /// (forged or changed after signing), or whose sender has no key.
    BadSignature,
    /// A signed envelope whose `sig.ts` is outside the broker's window.
    SignatureExpired,
    /// A signed envelope whose `sig.nonce` was already used within the window.
    SignatureReplayed,
    /// An unsigned publish to an address that requires signatures.
    SignatureRequired,
}

impl ErrorCode {
    /// The wire spelling of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidAddress => "invalid_address",
            ErrorCode::UnexpectedType => "unexpected_type",
            ErrorCode::DuplicateId => "duplicate_id",
            ErrorCode::UnknownRequest => "unknown_request",
            ErrorCode::AlreadyHandshaken => "already_handshaken",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::ChannelNotFound => "channel_not_found",
            ErrorCode::ChannelExists => "channel_exists",
            ErrorCode::ChannelNotEmpty => "channel_not_empty",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Blocked => "blocked",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::OperatorError => "operator_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::StaleLease => "stale_lease",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::SignatureExpired => "signature_expired",
            ErrorCode::SignatureReplayed => "signature_replayed",
            ErrorCode::SignatureRequired => "signature_required",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the peer sees it: a code, a human sentence and optional details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for humans; not stable.
    pub message: String,
    /// Structured extras (limits, retry hints), when any.
    pub details: Option<serde_json::Value>,
}

impl WireError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<crate::address::AddressError> for WireError {
    fn from(e: crate::address::AddressError) -> Self {
        WireError::new(ErrorCode::InvalidAddress, e.to_string())
    }
}

/// WebSocket close codes used by the server (4000-4999 is the application range).
pub mod close {
    /// Normal closure: the peer asked, or the session ended cleanly.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol (an unmasked frame, a bad opcode, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame exceeded the hard read limit (16 x `max_frame`) and could not be read.
    pub const TOO_BIG: u16 = 1009;
    /// No HELLO within `handshake_timeout`.
    pub const HANDSHAKE_TIMEOUT: u16 = 4001;
    /// The first frame was not a valid HELLO.
    pub const HANDSHAKE_REQUIRED: u16 = 4002;
    /// Authentication failed at handshake.
    pub const UNAUTHORIZED: u16 = 4003;
    /// The server is at `max_connections`.
    pub const TRY_AGAIN_LATER: u16 = 4004;
    /// Nothing received within `idle_timeout` (pongs count).
    pub const IDLE_TIMEOUT: u16 = 4005;
    /// The session's outbound queue overflowed under the `disconnect` policy.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The authenticated identity already holds `max_sessions_per_identity` sessions.
    pub const TOO_MANY_SESSIONS: u16 = 4010;
    /// A write to the socket took longer than `write_timeout`.
    pub const WRITE_TIMEOUT: u16 = 4009;
    /// The session sent frames faster than its rate limit allows, for too long.
    pub const RATE_LIMITED: u16 = 4029;
}
