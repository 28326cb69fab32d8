//! Branch discipline for BIP work, with real git (issue 12): an implementation
//! starts on its own branch `bip/<id>/impl/<UTC timestamp>` in a worktree of its own,
//! each review round is a commit authored by the reviewer, and the final approval
//! pushes the branch and opens a pull request through a [`PrProvider`].
//!
//! Invariants:
//! - **One task works on a BIP at a time.** Starting holds the BIP's branch lock
//!   ([`Locks`]), durable in the store so that it survives a broker restart; a second
//!   task is refused with `bip_locked`; the lock is released when the task that holds
//!   it ends ([`Locks::watch`] listens to the queue's task events).
//! - **Nothing from a task reaches git unchecked.** BIP ids, branch and remote names,
//!   revisions, commit messages and identities are validated and bounded first
//!   ([`validate`]); git runs without a shell, with a scrubbed environment, `--`
//!   before positional arguments, a timeout and bounded output ([`git`]).
//! - **Pushes and history rewrites meet the approval policy** ([`Guard`]): `deny`
//!   refuses without running anything, `ask` runs only with a person's approval
//!   ([`Consent::Approved`]), `allow` runs.
//!
//! `docs/GITOPS.md` is the user's guide (branch naming, the lock, the providers, the
//! `[gitops]` section).
//!
//! # Layout
//! - `config`: the `[gitops]` section.
//! - `validate`: input hardening: ids, ref names (`git check-ref-format` rules),
//!   remotes, revisions, messages, identities.
//! - `git`: one git command: argument vector, scrubbed environment, bounds.
//! - `guard`: which commands rewrite or push, and the approval policy's say on them.
//! - `lock`: the durable per-BIP branch lock and its release on task end.
//! - `workflow`: start, review-round commits, finalize (push + PR), guarded rewrites.
//! - `provider`: the pull-request provider trait and the local (recording) provider.
//! - `github`: the GitHub REST provider.
//! - `operator`: `op.git.*` over the bus (locks, status).

pub mod config;
pub mod git;
pub mod github;
pub mod guard;
pub mod lock;
pub mod operator;
pub mod provider;
pub mod validate;
pub mod workflow;

#[cfg(test)]
mod tests;

pub use config::{GitopsConfig, IdentityConfig, ProviderConfig};
pub use git::Git;
pub use github::GithubProvider;
pub use guard::{Consent, Guard};
pub use lock::{LockRecord, Locks};
pub use operator::GitopsOperator;
pub use provider::{LocalProvider, PrOpened, PrProvider, PrRequest};
pub use workflow::{Gitops, Rewrite, Started};

use crate::error::{ErrorCode, WireError};

/// What went wrong in a git operation, each with a stable code ([`GitopsError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitopsError {
    /// Input from a task was refused before git saw it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which input (`bip`, `branch`, `remote`, `message`, ...).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Another task holds the BIP's branch lock.
    #[error("BIP {bip} is locked by task {holder} (branch {branch}); wait for it to end")]
    Locked {
        /// The BIP.
        bip: String,
        /// The task holding the lock.
        holder: String,
        /// Its branch.
        branch: String,
    },
    /// The caller does not hold the BIP's lock (nothing was started, or another task
    /// holds it).
    #[error("task {task} holds no branch lock on BIP {bip}; start the implementation first")]
    NotHolder {
        /// The BIP.
        bip: String,
        /// The task that asked.
        task: String,
    },
    /// The approval policy denied the command; it was not run.
    #[error("`{command}` denied by {by}: {reason}")]
    Denied {
        /// The command as judged.
        command: String,
        /// The rule that denied it.
        by: String,
        /// Why.
        reason: String,
    },
    /// The policy asks a person and no approval came with the request; nothing ran.
    #[error("`{command}` needs an approval ({reason}); ask for one and retry with it")]
    ApprovalRequired {
        /// The command as judged.
        command: String,
        /// Why the policy asks.
        reason: String,
    },
    /// git ran and failed (or could not be started, or timed out).
    #[error("git {command}: {stderr}")]
    Git {
        /// The arguments, as run.
        command: String,
        /// What git said (bounded).
        stderr: String,
    },
    /// The pull-request provider refused or could not be reached.
    #[error("pull request provider: {0}")]
    Provider(String),
    /// The lock store failed.
    #[error("store: {0}")]
    Store(String),
}

impl GitopsError {
    /// The stable code: `invalid_input`, `bip_locked`, `not_lock_holder`,
    /// `denied_by_policy`, `approval_required`, `git_failed`, `provider_failed`,
    /// `store_failed`.
    pub fn code(&self) -> &'static str {
        match self {
            GitopsError::Invalid { .. } => "invalid_input",
            GitopsError::Locked { .. } => "bip_locked",
            GitopsError::NotHolder { .. } => "not_lock_holder",
            GitopsError::Denied { .. } => "denied_by_policy",
            GitopsError::ApprovalRequired { .. } => "approval_required",
            GitopsError::Git { .. } => "git_failed",
            GitopsError::Provider(_) => "provider_failed",
            GitopsError::Store(_) => "store_failed",
        }
    }

    /// The error on the wire: the nearest [`ErrorCode`], with the gitops code in
    /// `details.code`.
    pub fn to_wire(&self) -> WireError {
        let code = match self {
            GitopsError::Invalid { .. } => ErrorCode::InvalidField,
            GitopsError::Locked { .. } | GitopsError::NotHolder { .. } => ErrorCode::Conflict,
            GitopsError::Denied { .. } | GitopsError::ApprovalRequired { .. } => {
                ErrorCode::Forbidden
            }
            GitopsError::Git { .. } | GitopsError::Provider(_) => ErrorCode::OperatorError,
            GitopsError::Store(_) => ErrorCode::Internal,
        };
        WireError::new(code, self.to_string())
            .with_details(serde_json::json!({ "code": self.code() }))
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        GitopsError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
