//! The `[webhook]` section: every knob of the webhook operator and its default.
//!
//! Every queue the operator keeps is bounded in count and in bytes, and each bound is
//! here: registrations (in all and per owner), a target's pending envelopes, its dead
//! letters, a URL's length. The most memory the operator holds is about
//! `max_registrations * (queue_max_bytes + deadletter_max_bytes)` (1.25 GiB with the
//! defaults, all targets full and dead). Delays are in milliseconds.

use serde::Deserialize;
use std::path::PathBuf;

/// What a target's worker does when its queue is full (count or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Drop the oldest pending envelope to make room (counted in `dropped`): a slow
    /// receiver sees the newest state of its channels.
    #[default]
    DropOldest,
    /// Keep what is pending and refuse the new envelope (counted in `dropped`): a
    /// receiver gets an unbroken prefix of the stream.
    Refuse,
}

/// The `[webhook]` section of the broker's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Runs the operator at all (`op.webhook.*` is unknown when false).
    pub enabled: bool,
    /// The registrations' database; default `.hive/webhook.db` (set by the broker).
    pub db_path: Option<PathBuf>,
    /// Allows targets on private, loopback, link-local, shared and unspecified
    /// addresses (tests; a broker whose receivers are on its own network).
    pub allow_private: bool,
    /// Most registrations in all.
    pub max_registrations: usize,
    /// Most registrations of one owner (credential subject).
    pub max_per_owner: usize,
    /// Most envelopes waiting for one target.
    pub queue_max: usize,
    /// Most bytes (envelope text) waiting for one target.
    pub queue_max_bytes: usize,
    /// What a full queue does with the next envelope.
    pub on_full: OnFull,
    /// Attempts per envelope (the first included) before it is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's backoff ceiling; it doubles per attempt (full jitter).
    pub retry_base_ms: u64,
    /// The most any retry waits (also caps a `Retry-After`).
    pub retry_max_ms: u64,
    /// Whole request: connect, send, response head.
    pub timeout_ms: u64,
    /// Connecting (TCP and TLS).
    pub connect_timeout_ms: u64,
    /// Dead letters kept per registration (the oldest go first).
    pub deadletter_max: usize,
    /// Bytes of dead-letter bodies kept per registration (the oldest go first; a
    /// body longer than this alone is kept cut to it, marked `truncated`).
    pub deadletter_max_bytes: usize,
    /// Longest URL accepted, in bytes.
    pub max_url_len: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            db_path: None,
            allow_private: false,
            max_registrations: 256,
            max_per_owner: 50,
            queue_max: 1000,
            queue_max_bytes: 4 << 20,
            on_full: OnFull::DropOldest,
            max_attempts: 6,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            deadletter_max: 100,
            deadletter_max_bytes: 1 << 20,
            max_url_len: 2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_and_unknown_keys_are_refused() {
        let c: WebhookConfig =
            toml::from_str("allow_private = true\non_full = \"refuse\"").unwrap();
        assert!(c.allow_private);
        assert_eq!(c.on_full, OnFull::Refuse);
        assert_eq!(c.max_attempts, 6);
        assert!(toml::from_str::<WebhookConfig>("allow_privat = true").is_err());
    }
}
