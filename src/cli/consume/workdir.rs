//! Where an agent runs: the task's `repo` (default `.`, relative to `--dir`), which
//! must lie inside one of the allowed roots (`--allow-repo`, default `--dir`): a
//! submitter must not point an agent at `~/.ssh` or `/etc`.
//!
//! In a git repository each attempt gets its own worktree,
//! `<repo top>/.hive/worktrees/<task>`, on the task's `branch` (checked with `git
//! check-ref-format`, never starting with `-`) or `hive/<task>`; an existing branch
//! is checked out, a new one starts at `HEAD`. A leftover worktree of an earlier
//! attempt of the same task is removed first. After the attempt the worktree is
//! removed (`git worktree remove --force`) unless `--keep-worktrees`; the branch and
//! its commits stay. Git operations of one `hive consume` are serialized (a lock),
//! since concurrent `git worktree add`s in one repository can trip over git's lock
//! files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Stdio;
use tokio::sync::Mutex;

/// The directory of one attempt.
pub(super) struct Workdir {
    /// The agent's working directory.
    pub(super) cwd: PathBuf,
    /// The branch the attempt runs on (`hive/<task>` outside git too, for `{branch}`).
    pub(super) branch: String,
    /// The worktree to remove after the attempt: (repository top, worktree).
    worktree: Option<(PathBuf, PathBuf)>,
}

impl Workdir {
    /// The worktree, if the attempt has one.
    pub(super) fn worktree(&self) -> Option<&Path> {
        self.worktree.as_ref().map(|(_, w)| w.as_path())
    }
}

/// Prepares the directory for `task` from the lease payload's `repo` and `branch`.
///
/// # Errors
/// A sentence: a repository outside the allowed roots or missing, a bad branch name,
/// a failed `git worktree add`.
pub(super) async fn prepare(
    payload: &serde_json::Value,
    task: &str,
    dir: &Path,
    roots: &[PathBuf],
    git_lock: &Mutex<()>,
) -> Result<Workdir, String> {
    let repo = payload["repo"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(".");
    let path = dir.join(repo);
    let path = std::fs::canonicalize(&path)
        .map_err(|e| format!("repo `{repo}`: {e} (resolved against {})", dir.display()))?;
    if !roots.iter().any(|r| path.starts_with(r)) {
        return Err(format!(
            "repo `{repo}` ({}) is outside the allowed roots (--allow-repo)",
            path.display()
        ));
    }
    let safe_task: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let branch = match payload["branch"].as_str().filter(|b| !b.is_empty()) {
        Some(b) => b.to_owned(),
        None => format!("hive/{safe_task}"),
    };
    let Some(top) = git_out(&path, &["rev-parse", "--show-toplevel"]).await else {
        return Ok(Workdir {
            cwd: path,
            branch,
            worktree: None,
        });
    };
    let top = std::fs::canonicalize(top.trim()).map_err(|e| format!("repo top: {e}"))?;
    if branch.starts_with('-')
        || git_out(&top, &["check-ref-format", "--branch", &branch])
            .await
            .is_none()
    {
        return Err(format!("branch `{branch}` is not a valid branch name"));
    }
    let wt = top.join(".hive").join("worktrees").join(&safe_task);
    let _held = git_lock.lock().await;
    if wt.exists() {
        // An earlier attempt of this task left it (killed consumer, --keep-worktrees).
        let _ = git_out(
            &top,
            &["worktree", "remove", "--force", &wt.to_string_lossy()],
        )
        .await;
        let _ = git_out(&top, &["worktree", "prune"]).await;
    }
    let exists = git_out(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .await
    .is_some();
    let wts = wt.to_string_lossy().into_owned();
    let args: Vec<&str> = if exists {
        vec!["worktree", "add", &wts, &branch]
    } else {
        vec!["worktree", "add", "-b", &branch, &wts]
    };
    git(&top, &args).await?;
    let rel = path.strip_prefix(&top).unwrap_or(Path::new(""));
    Ok(Workdir {
        cwd: wt.join(rel),
        branch,
        worktree: Some((top, wt)),
    })
}

/// Removes the attempt's worktree (the branch stays).
pub(super) async fn cleanup(w: &Workdir, git_lock: &Mutex<()>) {
    let Some((top, wt)) = &w.worktree else {
        return;
    };
    let _held = git_lock.lock().await;
    if let Err(e) = git(
        top,
        &["worktree", "remove", "--force", &wt.to_string_lossy()],
    )
    .await
    {
        tracing::warn!(worktree = %wt.display(), "cannot remove the worktree: {e}");
    }
}

/// Runs git in `dir`; its stdout when it succeeds.
async fn git_out(dir: &Path, args: &[&str]) -> Option<String> {
    let out = output(dir, args).await.ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs git in `dir`; its stderr as the error.
async fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = output(dir, args)
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs git on the blocking pool (tokio's process support is not among the crate's
/// features).
async fn output(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(&args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
    })
    .await
    .map_err(std::io::Error::other)?
}
