//! The transport's configuration: `[server]` (frame size, connection count, timeouts,
//! write batching, TLS) and `[limits]` (per-session rate and per-identity session
//! counts), both enforced by the session task, nowhere else.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[server]`: transport limits.
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
    /// The telemetry stream (`[server.telemetry]`).
    pub telemetry: TelemetryConfig,
}

/// `[server.telemetry]`: the stream of broker stats and agent activity
/// (`docs/PROTOCOL.md`, "Telemetry").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The channel it is published on; empty turns the stream off.
    pub address: String,
    /// Period of the `stats` frames, in milliseconds (at least 1000).
    pub interval_ms: u64,
    /// Activity frames per second at most (burst as large); the rest are skipped
    /// and counted in the next `stats` frame and in `hivebus_telemetry_dropped_total`.
    pub max_events_per_sec: u32,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            address: "hive:telemetry".to_owned(),
            interval_ms: 5_000,
            max_events_per_sec: 20,
        }
    }
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
            telemetry: TelemetryConfig::default(),
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

/// `[limits]`: per-session and per-identity limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Inbound frames per second per session (token bucket refill); 0 turns the rate
    /// limit off.
    pub frames_per_sec: f64,
    /// Bucket size: frames a session may send at once after being idle.
    pub burst: u32,
    /// Refused frames in a row before the session is closed with 4029.
    pub max_refusals: u32,
    /// Sessions one authenticated identity may hold at once; 0 for no limit. One more
    /// is refused with ERROR `overloaded` and close 4010.
    pub max_sessions_per_identity: usize,
    /// Sessions without a credential (local mode) at once, all of them together; 0 for
    /// no limit. They share one identity, `anonymous`, so this is their per-identity
    /// cap; one more is refused with ERROR `overloaded` and close 4010.
    pub max_anonymous_sessions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            frames_per_sec: 0.0,
            burst: 200,
            max_refusals: 100,
            max_sessions_per_identity: 64,
            max_anonymous_sessions: 1024,
        }
    }
}
