//! One git command, run as a child process without a shell.
//!
//! Why the `git` CLI rather than a library (`gix`, `git2`): see
//! `docs/ARCHITECTURE.md`, "Dependencies". In short: worktrees, pushes over every
//! transport with the user's credentials, and exactly git's own ref and hook
//! semantics, with nothing to build.
//!
//! Invariants of every run:
//! - an argument vector, never a command line: no shell ever parses a task's text;
//! - a scrubbed environment: only `PATH`, `HOME`, `SSH_AUTH_SOCK`, the configured
//!   `pass_env` names, and what this module sets (`LC_ALL=C`, no terminal prompt, no
//!   system config, the identity of a commit); so a `GIT_DIR`, `GIT_SSH_COMMAND` or
//!   `GIT_CONFIG_*` in the broker's environment never steers a run;
//! - hooks off (`core.hooksPath=/dev/null`) and the `ext::` transport refused, since
//!   an agent can write into the repository it works in;
//! - a timeout (the child is killed) and bounded output: at most `max_output` bytes
//!   of stdout and of stderr are kept, the rest is read and dropped so the child never
//!   blocks on a full pipe.

use super::config::GitopsConfig;
use super::GitopsError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Variables always passed through from the broker's environment, when set.
const PASSED: &[&str] = &["PATH", "HOME", "SSH_AUTH_SOCK"];

/// Configuration git always runs with, whatever the repository's own config says.
const FORCED: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.fsmonitor=false",
];

/// How git is run: program, environment and bounds; cheap to clone.
#[derive(Debug, Clone)]
pub struct Git {
    program: PathBuf,
    env: Vec<(String, OsString)>,
    timeout: Duration,
    max_output: usize,
}

/// What a successful command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Standard output (at most `max_output` bytes, lossy UTF-8).
    pub stdout: String,
    /// Standard error (bounded likewise).
    pub stderr: String,
    /// Whether either was cut.
    pub truncated: bool,
}

impl Git {
    /// Git as `cfg` says; the passed-through variables are read now, once.
    pub fn new(cfg: &GitopsConfig) -> Git {
        let names = PASSED
            .iter()
            .map(|s| (*s).to_owned())
            .chain(cfg.pass_env.iter().cloned());
        let env = names
            .filter_map(|n| std::env::var_os(&n).map(|v| (n, v)))
            .collect();
        Git {
            program: cfg.git.clone(),
            env,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            max_output: cfg.max_output.max(1024),
        }
    }

    /// Replaces a passed-through variable (tests point `HOME` at a temporary
    /// directory so that no user config applies).
    pub fn with_env(mut self, name: &str, value: impl Into<OsString>) -> Git {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Runs `git <args>` in `dir` with `extra` variables added (a commit's identity).
    ///
    /// # Errors
    /// `git_failed` with git's stderr (bounded) when it exits non-zero, cannot be
    /// started, or runs past the timeout.
    pub async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<Output, GitopsError> {
        let shown = args.join(" ");
        let fail = |stderr: String| GitopsError::Git {
            command: super::validate::shown(&shown),
            stderr,
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(FORCED)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_os_str())))
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(fail("no pipes to the child".into()));
        };
        let max = self.max_output;
        let run = async {
            let (o, e, status) = tokio::join!(bounded(out, max), bounded(err, max), child.wait());
            (o, e, status)
        };
        let ((stdout, cut_o), (stderr, cut_e), status) =
            match tokio::time::timeout(self.timeout, run).await {
                Ok(done) => done,
                // Dropping the future dropped the child: kill_on_drop kills it.
                Err(_) => {
                    return Err(fail(format!(
                        "killed after {} s (gitops timeout_secs)",
                        self.timeout.as_secs()
                    )))
                }
            };
        let status = status.map_err(|e| fail(format!("waiting for git: {e}")))?;
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        if !status.success() {
            return Err(fail(clip(stderr.trim(), MAX_ERROR)));
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
            truncated: cut_o || cut_e,
        })
    }
}

/// Most bytes of git's stderr quoted in an error (the whole is in `max_output`).
pub const MAX_ERROR: usize = 4096;

/// `s` cut to at most `max` bytes, on a character boundary, marked when cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// Reads `r` to its end, keeping the first `max` bytes; whether more came.
async fn bounded(mut r: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
}
