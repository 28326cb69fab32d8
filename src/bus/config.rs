//! The bus core's configuration, the `[bus]` section: bootstrap rooms, history bounds,
//! per-session queue bounds and the slow-consumer policy. The bus reads nothing else,
//! so embedding it needs no other section (`docs/PROTOCOL.md` lists the defaults).

use serde::Deserialize;
use std::time::Duration;

/// What happens when a session's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumer {
    /// Close the session with code 4008; it reconnects and recovers from history.
    #[default]
    Disconnect,
    /// Drop the message for that session, count it, and send a SYSTEM `lagged` notice
    /// naming the first missed offset per channel once the queue has room again.
    Drop,
}

/// A room created at startup, with its channels; such rooms and channels are never
/// cleaned up when empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    /// Room name.
    pub name: String,
    /// Channel names.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// `[bus]`: the bus core's limits and policies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Create rooms and channels on first join (and on first publish through a
    /// wildcard subscription). When false, only bootstrap and admin-created ones exist.
    pub auto_create: bool,
    /// Rooms and channels created at startup.
    pub rooms: Vec<RoomConfig>,
    /// Publishes kept per channel.
    pub history_size: usize,
    /// Seconds a publish stays in history; 0 keeps it until evicted by count.
    pub history_ttl_secs: u64,
    /// Subscriptions (exact or wildcard) one session may hold.
    pub max_subscriptions: usize,
    /// Frames queued per session before the slow-consumer policy applies.
    pub outbound_queue: usize,
    /// Bytes of frame text queued per session before the slow-consumer policy applies
    /// (a frame alone in an empty queue always fits); 0 for no byte bound.
    pub outbound_queue_bytes: usize,
    /// What a full outbound queue does.
    pub slow_consumer: SlowConsumer,
    /// An empty, non-bootstrap channel with no retained history is removed after this
    /// many seconds without subscribers.
    pub channel_idle_secs: u64,
    /// Most messages one `history` call returns.
    pub max_history_page: usize,
    /// Byte budget of one `history` page or one `join` recovery (JSON of the messages;
    /// at least one message is always returned). Larger ranges are paged.
    pub max_page_bytes: usize,
    /// Most channels on the bus; creating one more (by join, publish or admin) is
    /// refused with `overloaded`.
    pub max_channels: usize,
    /// Bytes of history (serialized frames) one channel keeps; its oldest publishes
    /// are evicted past it. 0 for no byte limit (`history_size` still applies).
    pub history_bytes_per_channel: usize,
    /// Bytes of history all channels together keep; 0 for no limit. Past it, the
    /// channel being published to evicts its own oldest publishes, and when it has
    /// none left the new publish is delivered but not retained (see `bus::history`).
    pub history_bytes_total: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            auto_create: true,
            rooms: Vec::new(),
            history_size: 1000,
            history_ttl_secs: 3600,
            max_subscriptions: 128,
            outbound_queue: 1024,
            // 4 MiB: 64 frames of the largest size (`max_frame`, 64 KiB), or all 1024
            // frames at 4 KiB; a stalled reader of large frames pins this, not 64 MiB.
            outbound_queue_bytes: 4 << 20,
            slow_consumer: SlowConsumer::Disconnect,
            channel_idle_secs: 60,
            max_history_page: 1000,
            max_page_bytes: 1 << 20,
            max_channels: 100_000,
            history_bytes_per_channel: 4 << 20,
            history_bytes_total: 256 << 20,
        }
    }
}

impl BusConfig {
    pub(crate) fn history_ttl(&self) -> Option<Duration> {
        (self.history_ttl_secs > 0).then(|| Duration::from_secs(self.history_ttl_secs))
    }
}
