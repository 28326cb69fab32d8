//! The aggregate configuration of the assembled broker: one TOML file whose sections
//! each belong to the layer that reads them (`[bus]` to `bus`, `[server]` and
//! `[limits]` to `server`, `[auth]` to `auth`, `[queue]` and `[safety]` to their
//! operators). Only the broker knows the whole; no layer below imports it, so a layer's
//! config never drags in the layers above it (`docs/ARCHITECTURE.md`, "Layers").
//!
//! The joints where the whole is needed are written here too: [`Security::from_config`]
//! for the transport, and [`Safety::from_file`], which hands the safety layer a
//! function that re-reads this file's `[safety]` section on `op.safety.reload`.

use crate::auth::AuthConfig;
use crate::bus::BusConfig;
use crate::error::WireError;
use crate::ops::queue::QueueConfig;
use crate::safety::{Safety, SafetyConfig};
use crate::server::{LimitsConfig, Security, ServerConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The whole broker configuration: `[server]`, `[bus]`, `[queue]`, `[safety]`,
/// `[auth]` and `[limits]` sections of the TOML file, each optional, unknown keys
/// refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network and session limits.
    pub server: ServerConfig,
    /// Rooms, channels and history.
    pub bus: BusConfig,
    /// The task queue operator (`docs/QUEUE.md`).
    pub queue: QueueConfig,
    /// The redaction policy, reloadable at run time.
    pub safety: SafetyConfig,
    /// Authentication methods; required when the broker binds a non-loopback address.
    pub auth: AuthConfig,
    /// Per-session and per-identity limits.
    pub limits: LimitsConfig,
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

impl Security {
    /// The `[auth]` and `[limits]` sections of a config.
    pub fn from_config(c: &Config) -> Self {
        Security {
            auth: c.auth.clone(),
            limits: c.limits.clone(),
        }
    }
}

impl Safety {
    /// Like [`Safety::new`], remembering the TOML file whose `[safety]` section
    /// `op.safety.reload` re-reads when called without a policy. The whole file is
    /// parsed again, so a reload from a file broken elsewhere is refused too.
    ///
    /// # Errors
    /// As [`Safety::new`].
    pub fn from_file(config: SafetyConfig, path: PathBuf) -> Result<Arc<Safety>, WireError> {
        let reload = move || Config::from_file(&path).map(|c| c.safety);
        Safety::with_source(config, Box::new(reload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::SlowConsumer;

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
