//! The life of a BIP's implementation branch, as [`Gitops`] drives it:
//!
//! 1. [`Gitops::start`]: takes the BIP's branch lock for the task, creates
//!    `bip/<id>/impl/<UTC timestamp>` from the base branch, in a worktree of its own at
//!    `<repo>/.hive/worktrees/<task>` (the path and layout `hive consume` gives a
//!    task's attempt, so an agent consuming that task with `branch` set to the
//!    implementation branch works on it there).
//! 2. [`Gitops::review_commit`]: each review round commits what the worktree holds
//!    (`git add -A`; an empty round still commits), authored by the reviewer.
//! 3. [`Gitops::finalize`]: the final approval pushes the branch to the remote (a
//!    guarded command, see `guard`) and opens a pull request through the provider.
//!
//! Every operation after `start` requires the caller to be the task holding the lock
//! (`not_lock_holder` otherwise). `start` is idempotent for the task holding the lock
//! (a resubmitted start answers the same branch). [`Gitops::rewrite`] runs the
//! history-rewriting commands a task may ask for, always through the guard.

use super::config::{GitopsConfig, IdentityConfig, ProviderConfig};
use super::git::{Git, Output};
use super::github::GithubProvider;
use super::guard::{Consent, Context, Guard};
use super::lock::{Acquired, LockRecord, Locks};
use super::provider::{LocalProvider, PrOpened, PrProvider, PrRequest};
use super::{validate, GitopsError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// An implementation started (or resumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    /// The BIP.
    pub bip: String,
    /// The task holding the lock.
    pub task: String,
    /// The implementation branch.
    pub branch: String,
    /// Its worktree.
    pub worktree: PathBuf,
    /// Whether the task held the lock already (a resubmitted start).
    pub resumed: bool,
}

/// What a final approval did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finalized {
    /// The branch pushed.
    pub branch: String,
    /// The commit pushed.
    pub head_sha: String,
    /// The pull request.
    pub pr: PrOpened,
}

/// A history-rewriting command a task may ask for; each is judged by the approval
/// policy before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// `git push --force-with-lease` of the implementation branch.
    ForcePush,
    /// `git push --force` of the implementation branch.
    ForcePushHard,
    /// `git reset --hard <revision>` in the worktree.
    ResetHard {
        /// Where to.
        revision: String,
    },
    /// `git rebase <onto>` in the worktree.
    Rebase {
        /// The upstream.
        onto: String,
    },
    /// `git branch -D <name>`.
    DeleteBranch {
        /// The branch.
        name: String,
    },
}

/// Branch discipline over one repository; cheap to clone.
#[derive(Clone, Debug)]
pub struct Gitops {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    repo: PathBuf,
    cfg: GitopsConfig,
    git: Git,
    guard: Guard,
    locks: Locks,
    provider: Arc<dyn PrProvider>,
}

/// `bip/<id>/impl/<YYYYMMDDTHHMMSSZ>` for `now`.
pub fn branch_name(bip: &str, now: SystemTime) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("bip/{bip}/impl/{stamp}")
}

/// The BIP as a number (`43`, `BIP-43`, `bip-043`), for the policy's `bip` condition.
fn bip_number(bip: &str) -> Option<u64> {
    let digits = bip
        .strip_prefix("BIP-")
        .or_else(|| bip.strip_prefix("bip-"))
        .unwrap_or(bip);
    digits.parse().ok()
}

impl Gitops {
    /// Branch discipline over `cfg.repo` (required), with `git`, the approval `guard`,
    /// the branch `locks` and a pull-request `provider`.
    ///
    /// # Errors
    /// `invalid_input`: no repository, or a remote, base branch or committer in the
    /// config that the validators refuse.
    pub fn new(
        cfg: GitopsConfig,
        git: Git,
        guard: Guard,
        locks: Locks,
        provider: Arc<dyn PrProvider>,
    ) -> Result<Gitops, GitopsError> {
        let repo = cfg
            .repo
            .clone()
            .ok_or_else(|| GitopsError::invalid("repo", "[gitops] repo is not set"))?;
        let repo = std::fs::canonicalize(&repo)
            .map_err(|e| GitopsError::invalid("repo", format!("{}: {e}", repo.display())))?;
        validate::remote(&cfg.remote)?;
        validate::branch(&cfg.base)?;
        validate::person("committer", &cfg.committer.name)?;
        validate::email(&cfg.committer.email)?;
        Ok(Gitops {
            inner: Arc::new(Inner {
                repo,
                cfg,
                git,
                guard,
                locks,
                provider,
            }),
        })
    }

    /// The broker's assembly: [`Gitops::new`] with git and the provider as `cfg`
    /// says, the approval `policy` as guard; a local provider without a `dir` records
    /// into `<state>/prs` (`state` is the broker's `.hive/`).
    ///
    /// # Errors
    /// As [`Gitops::new`], and a GitHub provider the config describes badly.
    pub fn from_config(
        cfg: GitopsConfig,
        policy: Arc<crate::ops::approval::Policy>,
        locks: Locks,
        state: &Path,
    ) -> Result<Gitops, GitopsError> {
        let provider: Arc<dyn PrProvider> = match &cfg.provider {
            ProviderConfig::Local { dir } => Arc::new(LocalProvider::new(
                dir.clone().unwrap_or_else(|| state.join("prs")),
            )),
            ProviderConfig::Github {
                owner,
                repo,
                api_base,
                token_env,
            } => Arc::new(GithubProvider::new(api_base, owner, repo, token_env)?),
        };
        let git = Git::new(&cfg);
        Gitops::new(cfg, git, Guard::new(policy), locks, provider)
    }

    /// The branch locks.
    pub fn locks(&self) -> &Locks {
        &self.inner.locks
    }

    /// The repository's top directory.
    pub fn repo(&self) -> &Path {
        &self.inner.repo
    }

    async fn git(&self, dir: &Path, args: &[&str]) -> Result<Output, GitopsError> {
        self.inner.git.run(dir, args, &[]).await
    }

    async fn branch_exists(&self, branch: &str) -> bool {
        let r = format!("refs/heads/{branch}");
        self.git(&self.inner.repo, &["rev-parse", "--verify", "--quiet", &r])
            .await
            .is_ok()
    }

    /// Starts `task`'s implementation of `bip`: lock, branch, worktree.
    ///
    /// # Errors
    /// `invalid_input` for a bad id; `bip_locked` when another task holds the BIP;
    /// `git_failed` when the branch or worktree cannot be made (the lock is then
    /// released); `store_failed`.
    pub async fn start(&self, bip: &str, task: &str) -> Result<Started, GitopsError> {
        validate::bip(bip)?;
        validate::task(task)?;
        if let Some(cur) = self.inner.locks.get(bip).filter(|r| r.task == task) {
            return Ok(started(cur, true));
        }
        let mut branch = branch_name(bip, SystemTime::now());
        // A restart within the same second after a release: the next free suffix.
        let base_name = branch.clone();
        let mut n = 1;
        while self.branch_exists(&branch).await {
            n += 1;
            if n > 99 {
                return Err(GitopsError::Git {
                    command: "branch".into(),
                    stderr: format!("{base_name} and 98 suffixes exist"),
                });
            }
            branch = format!("{base_name}-{n}");
        }
        validate::branch(&branch)?;
        let worktree = self.inner.repo.join(".hive").join("worktrees").join(task);
        let rec = LockRecord {
            bip: bip.to_owned(),
            task: task.to_owned(),
            branch: branch.clone(),
            worktree: worktree.to_string_lossy().into_owned(),
            since_ms: crate::ops::queue::model::now_ms(),
        };
        match self.inner.locks.acquire(rec).await? {
            Acquired::Already(cur) => return Ok(started(cur, true)),
            Acquired::New(_) => {}
        }
        let wt = worktree.to_string_lossy().into_owned();
        let made = async {
            if worktree.exists() {
                // A retried task: its earlier start left the worktree (on the earlier
                // branch, which keeps its commits). Removed without `--force`, so git
                // refuses when it holds uncommitted work, and nothing is lost. A
                // worktree on any other branch is an agent's (`hive consume` got the
                // task first): never pulled from under it.
                let on = self
                    .git(&worktree, &["symbolic-ref", "--quiet", "--short", "HEAD"])
                    .await
                    .map(|o| o.stdout.trim().to_owned())
                    .unwrap_or_default();
                if !on.starts_with(&format!("bip/{bip}/impl/")) {
                    return Err(GitopsError::Git {
                        command: "worktree add".into(),
                        stderr: format!(
                            "{wt} is in use on `{}`: start the implementation before the \
                             task is leased, and name its branch in the task's `branch`",
                            validate::shown(&on)
                        ),
                    });
                }
                self.git(&self.inner.repo, &["worktree", "remove", "--", &wt])
                    .await?;
            }
            let base = self.inner.cfg.base.as_str();
            self.git(
                &self.inner.repo,
                &["worktree", "add", "-b", &branch, "--", &wt, base],
            )
            .await
        }
        .await;
        if let Err(e) = made {
            // Nothing was started: the BIP is free again.
            let _ = self.inner.locks.release(bip, task).await;
            return Err(e);
        }
        tracing::info!(%bip, %task, %branch, "gitops: implementation started");
        Ok(Started {
            bip: bip.to_owned(),
            task: task.to_owned(),
            branch,
            worktree,
            resumed: false,
        })
    }

    /// The lock `task` holds on `bip`.
    fn holding(&self, bip: &str, task: &str) -> Result<LockRecord, GitopsError> {
        validate::bip(bip)?;
        validate::task(task)?;
        self.inner
            .locks
            .get(bip)
            .filter(|r| r.task == task)
            .ok_or_else(|| GitopsError::NotHolder {
                bip: bip.to_owned(),
                task: task.to_owned(),
            })
    }

    /// Refuses to go on when `lock`'s worktree is not on the lock's branch (an agent
    /// switched it to `main`, say): a review commit must never land elsewhere.
    /// Also refuses a worktree whose `.git` file was pointed at another repository,
    /// whose config would then steer the commit.
    async fn on_branch(&self, lock: &LockRecord) -> Result<(), GitopsError> {
        let wt = Path::new(&lock.worktree);
        let common = ["rev-parse", "--path-format=absolute", "--git-common-dir"];
        let ours = self.git(&self.inner.repo, &common).await?;
        let theirs = self.git(wt, &common).await?;
        if ours.stdout.trim() != theirs.stdout.trim() {
            return Err(GitopsError::Git {
                command: "rev-parse --git-common-dir".into(),
                stderr: format!(
                    "the worktree {} no longer belongs to {}",
                    wt.display(),
                    self.inner.repo.display()
                ),
            });
        }
        let head = self.git(wt, &["symbolic-ref", "--quiet", "HEAD"]).await;
        let want = format!("refs/heads/{}", lock.branch);
        match head {
            Ok(h) if h.stdout.trim() == want => Ok(()),
            Ok(h) => Err(GitopsError::Git {
                command: "symbolic-ref HEAD".into(),
                stderr: format!(
                    "the worktree is on `{}`, not on {want}; check the BIP's branch out again",
                    validate::shown(h.stdout.trim())
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Hands `bip`'s lock from task `from` to task `to`, with its branch and worktree:
    /// the next step of the BIP's work (a review round after the implementation) goes
    /// on where the last one stopped, and the lock now ends with `to`.
    ///
    /// # Errors
    /// `invalid_input`, `not_lock_holder` (`from` does not hold it), `store_failed`.
    pub async fn hand_over(&self, bip: &str, from: &str, to: &str) -> Result<Started, GitopsError> {
        self.holding(bip, from)?;
        validate::task(to)?;
        let rec = self.inner.locks.hand_over(bip, from, to).await?;
        Ok(started(rec, true))
    }

    /// Puts the lock's worktree back when it is gone (`hive consume` removes an
    /// attempt's worktree when the attempt ends), on the lock's branch.
    async fn ensure_worktree(&self, lock: &LockRecord) -> Result<(), GitopsError> {
        if Path::new(&lock.worktree).exists() {
            return Ok(());
        }
        let repo = &self.inner.repo;
        self.git(repo, &["worktree", "prune"]).await?;
        self.git(
            repo,
            &["worktree", "add", "--", &lock.worktree, &lock.branch],
        )
        .await
        .map(drop)
    }

    /// The git identity of `reviewer`: from `[gitops.identities]`, else its id as
    /// name and `<id, reduced to [a-z0-9._-]>@<email_domain>` as e-mail.
    ///
    /// # Errors
    /// `invalid_input` when the reviewer id or the resulting identity is refused.
    pub fn identity(&self, reviewer: &str) -> Result<IdentityConfig, GitopsError> {
        validate::reviewer(reviewer)?;
        let id = match self.inner.cfg.identities.get(reviewer) {
            Some(id) => id.clone(),
            None => {
                let local: String = reviewer
                    .to_ascii_lowercase()
                    .chars()
                    .map(|c| match c {
                        'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                        _ => '-',
                    })
                    .collect();
                let local = local.trim_matches(['-', '.']).to_owned();
                IdentityConfig {
                    name: reviewer.to_owned(),
                    email: format!(
                        "{}@{}",
                        if local.is_empty() { "reviewer" } else { &local },
                        self.inner.cfg.email_domain
                    ),
                }
            }
        };
        validate::person("reviewer", &id.name)?;
        validate::email(&id.email)?;
        Ok(id)
    }

    /// Commits a review round in `task`'s worktree of `bip`, authored by `reviewer`
    /// (committed by the configured committer); the new commit's id.
    ///
    /// # Errors
    /// `invalid_input`, `not_lock_holder`, `git_failed`.
    pub async fn review_commit(
        &self,
        bip: &str,
        task: &str,
        reviewer: &str,
        message: &str,
    ) -> Result<String, GitopsError> {
        let lock = self.holding(bip, task)?;
        validate::message(message)?;
        let author = self.identity(reviewer)?;
        let c = &self.inner.cfg.committer;
        let wt = Path::new(&lock.worktree);
        self.ensure_worktree(&lock).await?;
        self.on_branch(&lock).await?;
        self.git(wt, &["add", "-A", "--", "."]).await?;
        let who = [
            ("GIT_AUTHOR_NAME", author.name.as_str()),
            ("GIT_AUTHOR_EMAIL", author.email.as_str()),
            ("GIT_COMMITTER_NAME", c.name.as_str()),
            ("GIT_COMMITTER_EMAIL", c.email.as_str()),
        ];
        self.inner
            .git
            .run(
                wt,
                &[
                    "commit",
                    "--allow-empty",
                    "--no-verify",
                    "--cleanup=strip",
                    "-m",
                    message,
                ],
                &who,
            )
            .await?;
        let sha = self.git(wt, &["rev-parse", "--verify", "HEAD"]).await?;
        Ok(sha.stdout.trim().to_owned())
    }

    fn ctx<'a>(&self, dir: &'a Path, bip: &str) -> Context<'a> {
        Context {
            cwd: dir,
            bip: bip_number(bip),
            kind: None,
        }
    }

    /// Runs a guarded command: judged by the policy first, run only when it may.
    async fn guarded(
        &self,
        dir: &Path,
        bip: &str,
        args: &[&str],
        consent: &Consent,
    ) -> Result<Output, GitopsError> {
        self.inner.guard.check(args, self.ctx(dir, bip), consent)?;
        self.git(dir, args).await
    }

    /// The final approval: pushes `task`'s branch of `bip` to the remote (judged by the
    /// approval policy with `consent`), then opens a pull request into the base branch.
    /// The lock stays until the task ends.
    ///
    /// # Errors
    /// `invalid_input`, `not_lock_holder`, `denied_by_policy`, `approval_required`,
    /// `git_failed`, `provider_failed`.
    pub async fn finalize(
        &self,
        bip: &str,
        task: &str,
        title: &str,
        body: &str,
        consent: &Consent,
    ) -> Result<Finalized, GitopsError> {
        let lock = self.holding(bip, task)?;
        validate::title(title)?;
        validate::text("body", body, validate::MAX_MESSAGE)?;
        // Pushed from the repository itself, not from the worktree (whose `.git` file
        // the task could have pointed elsewhere); what is pushed is the branch,
        // wherever the worktree's HEAD went.
        let repo = self.inner.repo.clone();
        let r = format!("refs/heads/{}", lock.branch);
        let head = self.git(&repo, &["rev-parse", "--verify", &r]).await?;
        let head_sha = head.stdout.trim().to_owned();
        let remote = &self.inner.cfg.remote;
        let spec = format!("refs/heads/{b}:refs/heads/{b}", b = lock.branch);
        self.guarded(
            &repo,
            bip,
            &["push", "--porcelain", "--", remote, &spec],
            consent,
        )
        .await?;
        let req = PrRequest {
            bip: bip.to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            head: lock.branch.clone(),
            base: self.inner.cfg.base.clone(),
            remote: remote.clone(),
            head_sha: head_sha.clone(),
        };
        let pr = self.inner.provider.open(&req).await?;
        tracing::info!(%bip, %task, branch = %lock.branch, url = %pr.url, "gitops: pushed, pull request opened");
        Ok(Finalized {
            branch: lock.branch,
            head_sha,
            pr,
        })
    }

    /// Runs a history-rewriting command for `task` on `bip`, in its worktree, through
    /// the approval policy with `consent`; what git printed.
    ///
    /// # Errors
    /// `invalid_input` (a revision or branch the validators refuse), `not_lock_holder`,
    /// `denied_by_policy`, `approval_required`, `git_failed`.
    pub async fn rewrite(
        &self,
        bip: &str,
        task: &str,
        op: &Rewrite,
        consent: &Consent,
    ) -> Result<Output, GitopsError> {
        let lock = self.holding(bip, task)?;
        let wt = PathBuf::from(&lock.worktree);
        let repo = self.inner.repo.clone();
        let remote = self.inner.cfg.remote.as_str();
        let spec = format!("refs/heads/{b}:refs/heads/{b}", b = lock.branch);
        let args: Vec<&str> = match op {
            Rewrite::ForcePush => vec![
                "push",
                "--force-with-lease",
                "--porcelain",
                "--",
                remote,
                &spec,
            ],
            Rewrite::ForcePushHard => vec!["push", "--force", "--porcelain", "--", remote, &spec],
            Rewrite::ResetHard { revision } => {
                validate::revision(revision)?;
                vec!["reset", "--hard", revision, "--"]
            }
            Rewrite::Rebase { onto } => {
                validate::revision(onto)?;
                vec!["rebase", "--", onto]
            }
            Rewrite::DeleteBranch { name } => {
                validate::branch(name)?;
                vec!["branch", "-D", "--", name]
            }
        };
        // Pushes and branch deletions from the repository; the rest in the worktree,
        // checked to still belong to it.
        let dir = match op {
            Rewrite::ForcePush | Rewrite::ForcePushHard | Rewrite::DeleteBranch { .. } => repo,
            Rewrite::ResetHard { .. } | Rewrite::Rebase { .. } => {
                self.on_branch(&lock).await?;
                wt
            }
        };
        self.guarded(&dir, bip, &args, consent).await
    }
}

fn started(rec: LockRecord, resumed: bool) -> Started {
    Started {
        bip: rec.bip,
        task: rec.task,
        branch: rec.branch,
        worktree: PathBuf::from(rec.worktree),
        resumed,
    }
}
