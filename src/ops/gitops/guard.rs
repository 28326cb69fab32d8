//! Git commands that push or rewrite history meet the approval policy
//! (`docs/APPROVALS.md`) before they run, judged as a `git` action exactly as a
//! consumer's request would be: the same rules, the same built-in destructive list
//! (`git-push-force`, `git-reset-hard`, ...), the same default.
//!
//! Invariants: `deny` is final, nothing runs; `ask` runs only when the caller brings
//! a person's approval ([`Consent::Approved`], which it got through the queue's
//! approval flow on its lease); `allow` runs. Commands that neither push nor rewrite
//! (`add`, `commit`, `branch` creating, `worktree add`, reads) are not judged: they
//! only add history.

use super::GitopsError;
use crate::ops::approval::{Action, Effect, Policy};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Whether a person approved the command the caller is about to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Consent {
    /// No approval: a command the policy leaves to a person is refused
    /// (`approval_required`).
    #[default]
    None,
    /// A person approved it (`by` names who, for the log).
    Approved {
        /// Who approved.
        by: String,
    },
}

/// The approval policy as gitops applies it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    policy: Arc<Policy>,
}

/// Where a judged command runs and for which task, as the policy's conditions see it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The directory it runs in (also the worktree the policy's paths are relative
    /// to).
    pub cwd: &'a Path,
    /// The task's BIP, when it is a number (`bip = ...` conditions).
    pub bip: Option<u64>,
    /// The task's kind (`kind = ...` conditions).
    pub kind: Option<&'a str>,
}

impl Guard {
    /// A guard applying `policy`.
    pub fn new(policy: Arc<Policy>) -> Guard {
        Guard { policy }
    }

    /// Whether `args` (the words after `git`) push or rewrite history: `push`,
    /// `reset --hard`/`--merge`/`--keep`, `rebase`, `branch -D`/`--delete --force`
    /// (or `-d -f`), `commit --amend`, `filter-branch`, `filter-repo`, `update-ref -d`,
    /// `tag -d`, `reflog expire`/`delete`, `gc --prune`, `clean -f`, `checkout -f`,
    /// `worktree remove --force`.
    pub fn is_guarded(args: &[&str]) -> bool {
        let Some((sub, rest)) = args.split_first() else {
            return false;
        };
        let has = |f: &[&str]| rest.iter().any(|a| f.contains(a));
        let short = |c: char| {
            rest.iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(c))
        };
        match *sub {
            "push" | "rebase" | "filter-branch" | "filter-repo" => true,
            "reset" => has(&["--hard", "--merge", "--keep"]),
            "branch" => {
                short('D')
                    || ((short('d') || has(&["--delete"])) && (short('f') || has(&["--force"])))
            }
            "commit" => has(&["--amend"]),
            "update-ref" | "tag" => short('d') || has(&["--delete"]),
            "reflog" => has(&["expire", "delete"]),
            "gc" => rest.iter().any(|a| a.starts_with("--prune")),
            "clean" => short('f') || has(&["--force"]),
            "checkout" | "switch" => short('f') || has(&["--force", "--discard-changes"]),
            "worktree" => has(&["remove"]) && (short('f') || has(&["--force"])),
            _ => false,
        }
    }

    /// The policy's say on `git <args>` in `ctx`, with the caller's `consent`:
    /// `Ok` when it may run.
    ///
    /// # Errors
    /// `denied_by_policy` on deny; `approval_required` on ask without an approval.
    pub fn check(
        &self,
        args: &[&str],
        ctx: Context<'_>,
        consent: &Consent,
    ) -> Result<(), GitopsError> {
        if !Self::is_guarded(args) {
            return Ok(());
        }
        let dir = ctx.cwd.to_string_lossy();
        let command = format!("git {}", args.join(" "));
        // The same reading as a consumer's request: an argument vector, quoted. A
        // `git` action's words are those after `git` (the policy puts it in front).
        let mut action = Action::from_request(&json!({
            "tool": "git",
            "command": args,
            "cwd": dir,
            "worktree": dir,
        }))
        .map_err(|e| GitopsError::Denied {
            command: command.clone(),
            by: "gitops".into(),
            reason: format!("the command cannot be judged: {e}"),
        })?;
        action.bip = ctx.bip;
        action.kind = ctx.kind.map(str::to_owned);
        let d = self.policy.decide(&action);
        let by = d
            .rule
            .as_ref()
            .map_or_else(|| "default".to_owned(), |r| r.name.clone());
        match (d.verdict, consent) {
            (Effect::Deny, _) => Err(GitopsError::Denied {
                command,
                by: format!("policy:{by}"),
                reason: d.reason,
            }),
            (Effect::Ask, Consent::None) => Err(GitopsError::ApprovalRequired {
                command,
                reason: format!("policy:{by}: {}", d.reason),
            }),
            (Effect::Ask, Consent::Approved { by: who }) => {
                tracing::info!(%command, approved_by = %who, rule = %by, "gitops: approved command");
                Ok(())
            }
            (Effect::Allow, _) => Ok(()),
        }
    }
}
