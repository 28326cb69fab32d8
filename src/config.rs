//! Configuration: every limit and policy of the broker, with the defaults documented in
//! `docs/PROTOCOL.md`. Read from a TOML file (`--config`), each field optional.

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The whole broker configuration: `[server]`, `[bus]`, `[safety]`, `[auth]` and
/// `[limits]` sections of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network and session limits.
    pub server: ServerConfig,
    /// Rooms, channels and history.
    pub bus: BusConfig,
    /// The task queue operator (`docs/QUEUE.md`).
    pub queue: crate::ops::queue::QueueConfig,
    /// The redaction policy (layer 3), reloadable at run time.
    pub safety: crate::safety::SafetyConfig,
    /// Authentication methods; required when the broker binds a non-loopback address.
    pub auth: crate::auth::AuthConfig,
    /// Per-session and per-identity limits.
    pub limits: crate::auth::LimitsConfig,
}

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }
}

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

/// Transport limits (layer 5).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest inbound text frame accepted, in bytes; larger ones get `frame_too_large`.
    pub max_frame: usize,
    /// Most concurrent WebSocket sessions; one more is closed with 4004.
    pub max_connections: usize,
    /// Time allowed between connect and HELLO, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// WebSocket ping period, in milliseconds.
    pub ping_interval_ms: u64,
    /// A session that sends nothing (pongs count) for this long is closed with 4005.
    pub idle_timeout_ms: u64,
    /// A socket write that takes longer than this closes the session with 4009.
    pub write_timeout_ms: u64,
    /// Frames the writer drains from the outbound queue before one flush.
    pub write_batch: usize,
    /// Socket read buffer per session, in bytes.
    pub read_buffer: usize,
    /// Bytes buffered before tungstenite writes to the socket without a flush.
    pub write_buffer: usize,
    /// Envelope ids remembered per session for duplicate detection.
    pub dedup_window: usize,
    /// TLS for every connection, when set (`[server.tls]`).
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: certificate chain and private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame: 64 * 1024,
            max_connections: 25_000,
            handshake_timeout_ms: 5_000,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 10_000,
            write_batch: 256,
            // 2 KiB rather than 4: tungstenite reserves it per connection up front, and
            // 19 000 idle sessions went from 10.76 to 8.76 KiB of RSS each, with the same
            // server CPU per delivery in the 1 -> 100 fan-out (docs/PERFORMANCE.md).
            read_buffer: 2 * 1024,
            write_buffer: 32 * 1024,
            dedup_window: 1024,
            tls: None,
        }
    }
}

impl ServerConfig {
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(1))
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
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

/// Bus core limits and policies (layer 2).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_defaults_and_unknown_keys_are_refused() {
        let c: Config = toml::from_str(
            "[server]\nmax_frame = 1024\n[bus]\nslow_consumer = \"drop\"\n[[bus.rooms]]\nname = \"science\"\nchannels = [\"general\"]\n",
        )
        .unwrap();
        assert_eq!(c.server.max_frame, 1024);
        assert_eq!(c.server.max_connections, 25_000);
        assert_eq!(c.bus.slow_consumer, SlowConsumer::Drop);
        assert_eq!(c.bus.rooms[0].channels, vec!["general"]);
        assert!(toml::from_str::<Config>("[server]\nmax_frames = 1").is_err());
    }
}
