//! The aggregate configuration of the assembled broker: one TOML file whose sections
//! each belong to the layer that reads them (`[bus]` to `bus`, `[server]` and
//! `[limits]` to `server`, `[auth]` to `auth`, `[queue]` and `[safety]` to their
//! operators). Only the broker knows the whole; no layer below imports it, so a layer's
//! config never drags in the layers above it (`docs/ARCHITECTURE.md`, "Layers").
//!
//! The joints where the whole is needed are written here too: [`Security::from_config`]
//! for the transport, and [`Safety::from_file`], which hands the safety layer a
//! function that re-reads this file's `[safety]` section on `op.safety.reload`.

use crate::audit::AuditConfig;
use crate::auth::signature::SignatureConfig;
use crate::auth::AuthConfig;
use crate::bus::BusConfig;
use crate::error::WireError;
use crate::ops::approval::ApprovalConfig;
use crate::ops::cron::CronConfig;
use crate::ops::gitops::GitopsConfig;
use crate::ops::kv::KvConfig;
use crate::ops::queue::QueueConfig;
use crate::ops::webhook::WebhookConfig;
use crate::safety::{Safety, SafetyConfig};
use crate::server::{LimitsConfig, Security, ServerConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The whole broker configuration: `[server]`, `[bus]`, `[queue]`, `[approval]`,
/// `[safety]`, `[auth]`, `[limits]`, `[audit]`, `[signatures]`, `[webhook]`, `[cron]`,
/// `[kv]` and `[gitops]` sections of the TOML file, each optional,
/// unknown keys refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network and session limits.
    pub server: ServerConfig,
    /// Rooms, channels and history.
    pub bus: BusConfig,
    /// The task queue operator (`docs/QUEUE.md`).
    pub queue: QueueConfig,
    /// The policy leased tasks' actions meet before a person is asked
    /// (`docs/APPROVALS.md`).
    pub approval: ApprovalConfig,
    /// The redaction policy, reloadable at run time.
    pub safety: SafetyConfig,
    /// Branch discipline for BIP work (`docs/GITOPS.md`); off without `repo`.
    pub gitops: GitopsConfig,
    /// Authentication methods; required when the broker binds a non-loopback address.
    pub auth: AuthConfig,
    /// Per-session and per-identity limits.
    pub limits: LimitsConfig,
    /// The hash-chained audit log (`docs/SECURITY.md`, "Audit log").
    pub audit: AuditConfig,
    /// Addresses that take signed publishes only, and the replay window
    /// (`docs/PROTOCOL.md`, "Signed envelopes").
    pub signatures: SignatureConfig,
    /// The webhook operator (`docs/OPERATORS.md`, "The webhook operator").
    pub webhook: WebhookConfig,
    /// Scheduled publishes, `op.cron.*` (`docs/OPERATORS.md`).
    pub cron: CronConfig,
    /// Key-value state per identity or room, `op.store.*` (`docs/OPERATORS.md`).
    pub kv: KvConfig,
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

    /// The `[safety]` section of the file at `path`, read again for `op.safety.reload`,
    /// whose answer leaves the process: a parse error names the line and column only.
    /// toml's own message quotes the offending text, which may be a secret of this very
    /// file (an inline `[[auth.tokens]] token`); it goes to the broker's log instead.
    fn reread_safety(path: &Path) -> Result<SafetyConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
        match toml::from_str::<Config>(&text) {
            Ok(c) => Ok(c.safety),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "config not reloaded");
                let at = e.span().map_or(0, |s| s.start).min(text.len());
                let before = text.get(..at).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                Err(format!(
                    "invalid config {} at line {line}, column {column} (the broker's log says why)",
                    path.display()
                ))
            }
        }
    }
}

impl Security {
    /// The `[auth]` and `[limits]` sections of a config, with the audit log off
    /// (the broker opens it: it knows the state directory).
    pub fn from_config(c: &Config) -> Self {
        Security {
            auth: c.auth.clone(),
            limits: c.limits.clone(),
            audit: crate::audit::Audit::disabled(),
            signatures: None,
        }
    }
}

impl Safety {
    /// Like [`Safety::new`], remembering the TOML file whose `[safety]` section
    /// `op.safety.reload` re-reads when called without a policy. The whole file is
    /// parsed again, so a reload from a file broken elsewhere is refused too; the
    /// refusal names where the file is broken, never what it says there.
    ///
    /// # Errors
    /// As [`Safety::new`].
    pub fn from_file(config: SafetyConfig, path: PathBuf) -> Result<Arc<Safety>, WireError> {
        let reload = move || Config::reread_safety(&path);
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

    #[test]
    fn a_reload_refusal_names_the_line_but_never_quotes_the_file() {
        let path = std::env::temp_dir().join(format!("hivebus-reload-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[safety]\nmode = \"enforce\"\n[[auth.tokens]]\nsubject = \"ci\"\nrole = \"admin\"\ntoken = 12345678901234567890\n",
        )
        .unwrap();
        let full = Config::from_file(&path).unwrap_err();
        let said = Config::reread_safety(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(full.contains("12345678901234567890"), "{full}");
        assert!(!said.contains("12345678901234567890"), "{said}");
        assert!(said.contains("line 6"), "{said}");
    }
}
