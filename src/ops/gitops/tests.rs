//! Gitops with real git: a temporary repository with a local bare remote, a real
//! SQLite lock store, real child processes, and a local HTTP server on 127.0.0.1:0
//! standing in for GitHub's API.

use super::*;
use crate::ops::approval::{ApprovalConfig, Policy};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

mod attacks;
mod github;

struct Fixture {
    dir: PathBuf,
    repo: PathBuf,
    bare: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Raw git for the tests' own setup and checks, with no user config.
fn raw(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=setup", "-c", "user.email=setup@x.org"])
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("hive-gitops-{}", fastrand::u64(..)));
    let repo = dir.join("repo");
    let bare = dir.join("remote.git");
    std::fs::create_dir_all(&repo).unwrap();
    raw(&dir, &dir, &["init", "-q", "-b", "main", "repo"]);
    raw(&dir, &dir, &["init", "-q", "--bare", "remote.git"]);
    std::fs::write(repo.join("README.md"), "governance\n").unwrap();
    raw(&repo, &dir, &["add", "README.md"]);
    raw(&repo, &dir, &["commit", "-q", "-m", "init"]);
    raw(
        &repo,
        &dir,
        &["remote", "add", "origin", &bare.to_string_lossy()],
    );
    raw(&repo, &dir, &["push", "-q", "origin", "main"]);
    Fixture { dir, repo, bare }
}

fn policy(toml: &str) -> Guard {
    let c = ApprovalConfig::from_toml(toml).unwrap();
    Guard::new(Arc::new(Policy::from_config(&c).unwrap()))
}

fn config(f: &Fixture) -> GitopsConfig {
    let mut cfg = GitopsConfig {
        repo: Some(f.repo.clone()),
        ..GitopsConfig::default()
    };
    cfg.identities.insert(
        "claude".into(),
        IdentityConfig {
            name: "Claude Reviewer".into(),
            email: "claude@reviewers.example".into(),
        },
    );
    cfg
}

fn git_for(f: &Fixture, cfg: &GitopsConfig) -> Git {
    Git::new(cfg).with_env("HOME", &f.dir)
}

fn gitops_with(f: &Fixture, locks: Locks, guard: Guard) -> Gitops {
    let cfg = config(f);
    let provider = Arc::new(LocalProvider::new(f.dir.join("prs")));
    Gitops::new(cfg.clone(), git_for(f, &cfg), guard, locks, provider).unwrap()
}

fn locks(f: &Fixture) -> Locks {
    Locks::open(Some(&f.dir.join("gitops.db"))).unwrap()
}

fn branch_shape(b: &str, bip: &str) -> bool {
    let re = regex::Regex::new(&format!(
        "^bip/{bip}/impl/[0-9]{{8}}T[0-9]{{6}}Z(-[0-9]+)?$"
    ))
    .unwrap();
    re.is_match(b)
}

#[tokio::test]
async fn start_creates_the_timestamped_branch_in_a_worktree_of_its_own() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("43", "task-1").await.unwrap();
    assert!(branch_shape(&s.branch, "43"), "{}", s.branch);
    assert!(!s.resumed);
    let r = format!("refs/heads/{}", s.branch);
    raw(&f.repo, &f.dir, &["rev-parse", "--verify", &r]);
    assert_eq!(s.worktree, g.repo().join(".hive/worktrees/task-1"));
    assert_eq!(
        raw(&s.worktree, &f.dir, &["rev-parse", "--abbrev-ref", "HEAD"]),
        s.branch
    );
    // The branch starts at the base.
    assert_eq!(
        raw(&s.worktree, &f.dir, &["rev-parse", "HEAD"]),
        raw(&f.repo, &f.dir, &["rev-parse", "main"])
    );
    // A resubmitted start answers the same branch.
    let again = g.start("43", "task-1").await.unwrap();
    assert!(again.resumed);
    assert_eq!(again.branch, s.branch);
}

#[tokio::test]
async fn the_lock_refuses_a_second_task_and_survives_a_reopen_of_the_store() {
    let f = fixture();
    let l = locks(&f);
    let g = gitops_with(&f, l.clone(), policy(""));
    let s = g.start("7", "task-a").await.unwrap();
    let e = g.start("7", "task-b").await.unwrap_err();
    assert_eq!(e.code(), "bip_locked", "{e}");
    assert_eq!(e.to_wire().details.unwrap()["code"], "bip_locked");
    // Another BIP is free.
    g.start("8", "task-b").await.unwrap();
    // Not the holder: no commit on someone else's BIP.
    let e = g
        .review_commit("7", "task-b", "claude", "round")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_lock_holder");
    drop(g);
    l.close();
    // A broker restart: the store is opened again.
    let l2 = locks(&f);
    let held = l2.get("7").expect("the lock survived");
    assert_eq!(
        (held.task.as_str(), held.branch.as_str()),
        ("task-a", s.branch.as_str())
    );
    let g2 = gitops_with(&f, l2.clone(), policy(""));
    assert_eq!(
        g2.start("7", "task-b").await.unwrap_err().code(),
        "bip_locked"
    );
    let resumed = g2.start("7", "task-a").await.unwrap();
    assert!(resumed.resumed && resumed.branch == s.branch);
    // The schema is recorded under its own operator name.
    let conn = rusqlite::Connection::open(f.dir.join("gitops.db")).unwrap();
    assert_eq!(
        crate::store::versions(&conn).unwrap(),
        [("gitops".to_owned(), 1)]
    );
}

fn ev(
    task: &str,
    state: crate::ops::queue::model::TaskState,
) -> crate::ops::queue::hooks::TaskEvent {
    crate::ops::queue::hooks::TaskEvent {
        seq: 1,
        task: task.into(),
        trace_id: task.into(),
        owner: "o".into(),
        bip_id: 7,
        kind: "implement_bip".into(),
        state,
        attempt: 1,
        frame: crate::frame::FrameType::Result,
        payload: serde_json::Value::Null,
    }
}

#[tokio::test]
async fn the_lock_is_released_when_its_task_ends_and_not_before() {
    use crate::ops::queue::model::TaskState;
    let f = fixture();
    let l = locks(&f);
    let g = gitops_with(&f, l.clone(), policy(""));
    g.start("7", "task-a").await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let watcher = l.watch(rx);
    tx.send(ev("task-a", TaskState::Working)).await.unwrap();
    tx.send(ev("task-other", TaskState::Succeeded))
        .await
        .unwrap();
    tx.send(ev("task-a", TaskState::Cancelled)).await.unwrap();
    drop(tx);
    watcher.await.unwrap();
    assert!(l.get("7").is_none());
    g.start("7", "task-b").await.unwrap();
    l.close();
    // Released durably: a reopen sees task-b's lock only.
    assert_eq!(locks(&f).get("7").unwrap().task, "task-b");
}

#[tokio::test]
async fn a_retried_task_starts_a_new_branch_in_its_old_worktree_and_never_loses_work() {
    let f = fixture();
    let l = locks(&f);
    let g = gitops_with(&f, l.clone(), policy(""));
    let first = g.start("3", "t").await.unwrap();
    let c = g
        .review_commit("3", "t", "claude", "round 1")
        .await
        .unwrap();
    // The task failed; a person retries it: the lock went with the failure.
    assert_eq!(l.release_task("t").await.unwrap(), ["3"]);
    let again = g.start("3", "t").await.unwrap();
    assert!(!again.resumed);
    assert_ne!(again.branch, first.branch);
    assert!(branch_shape(&again.branch, "3"), "{}", again.branch);
    assert_eq!(again.worktree, first.worktree);
    assert_eq!(
        raw(
            &again.worktree,
            &f.dir,
            &["rev-parse", "--abbrev-ref", "HEAD"]
        ),
        again.branch
    );
    let r = format!("refs/heads/{}", first.branch);
    assert_eq!(
        raw(&f.repo, &f.dir, &["rev-parse", &r]),
        c,
        "the first branch keeps its commit"
    );
    // Uncommitted work in the worktree is never thrown away: the start fails instead,
    // and leaves the BIP free.
    std::fs::write(again.worktree.join("wip.md"), "unsaved\n").unwrap();
    l.release_task("t").await.unwrap();
    let e = g.start("3", "t").await.unwrap_err();
    assert_eq!(e.code(), "git_failed", "{e}");
    assert!(f.repo.join(".hive/worktrees/t/wip.md").exists());
    assert!(l.get("3").is_none());
}

#[tokio::test]
async fn an_agents_worktree_of_the_same_task_is_never_pulled_from_under_it() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    // `hive consume` leased the task first: its worktree, on `hive/<task>`.
    let wt = f.repo.join(".hive/worktrees/t");
    raw(
        &f.repo,
        &f.dir,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "hive/t",
            &wt.to_string_lossy(),
        ],
    );
    let e = g.start("3", "t").await.unwrap_err();
    assert!(e.to_string().contains("in use on `hive/t`"), "{e}");
    assert_eq!(
        raw(&wt, &f.dir, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "hive/t"
    );
    assert!(
        g.locks().get("3").is_none(),
        "a failed start leaves the BIP free"
    );
}

#[tokio::test]
async fn the_lock_is_handed_from_the_implementation_to_a_review_round_with_its_branch() {
    let f = fixture();
    let l = locks(&f);
    let g = gitops_with(&f, l.clone(), policy(""));
    let s = g.start("9", "implement").await.unwrap();
    std::fs::write(s.worktree.join("impl.md"), "work\n").unwrap();
    g.review_commit("9", "implement", "claude", "implementation")
        .await
        .unwrap();
    assert_eq!(
        g.hand_over("9", "other", "review-1")
            .await
            .unwrap_err()
            .code(),
        "not_lock_holder"
    );
    let h = g.hand_over("9", "implement", "review-1").await.unwrap();
    assert_eq!(
        (h.branch.as_str(), h.worktree.as_path()),
        (s.branch.as_str(), s.worktree.as_path())
    );
    // `hive consume` removed the implementation attempt's worktree when it ended.
    raw(
        &f.repo,
        &f.dir,
        &[
            "worktree",
            "remove",
            "--force",
            &s.worktree.to_string_lossy(),
        ],
    );
    // The implementation task's end no longer frees the BIP; the review's does.
    assert!(l.release_task("implement").await.unwrap().is_empty());
    assert_eq!(
        g.start("9", "intruder").await.unwrap_err().code(),
        "bip_locked"
    );
    let c = g
        .review_commit("9", "review-1", "GPT-5", "round 1")
        .await
        .unwrap();
    let r = format!("refs/heads/{}", s.branch);
    assert_eq!(
        raw(&f.repo, &f.dir, &["rev-parse", &r]),
        c,
        "the round landed on the branch"
    );
    l.close();
    assert_eq!(
        locks(&f).get("9").unwrap().task,
        "review-1",
        "the hand-over is durable"
    );
}

#[tokio::test]
async fn review_rounds_commit_with_the_reviewer_as_author() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("43", "impl-1").await.unwrap();
    std::fs::write(s.worktree.join("impl.md"), "work\n").unwrap();
    let c1 = g
        .review_commit("43", "impl-1", "claude", "BIP-43 review round 1")
        .await
        .unwrap();
    // A round with no change still records who reviewed.
    let c2 = g
        .review_commit("43", "impl-1", "GPT-5 Codex", "BIP-43 review round 2")
        .await
        .unwrap();
    assert_ne!(c1, c2);
    let log = raw(
        &f.repo,
        &f.dir,
        &["log", "--format=%H|%an|%ae|%cn|%s", "main..", &s.branch],
    );
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{c2}|GPT-5 Codex|gpt-5-codex@hive.invalid|hivebus|BIP-43 review round 2"),
            format!("{c1}|Claude Reviewer|claude@reviewers.example|hivebus|BIP-43 review round 1"),
        ]
    );
    let files = raw(&f.repo, &f.dir, &["show", "--name-only", "--format=", &c1]);
    assert_eq!(files, "impl.md");
}

#[tokio::test]
async fn final_approval_pushes_to_the_bare_remote_and_the_local_provider_records_the_pr() {
    let f = fixture();
    // Plain `git push` is not in the built-in list: the default (ask) applies.
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("43", "impl-1").await.unwrap();
    std::fs::write(s.worktree.join("impl.md"), "work\n").unwrap();
    let head = g
        .review_commit("43", "impl-1", "claude", "round 1")
        .await
        .unwrap();
    let e = g
        .finalize(
            "43",
            "impl-1",
            "BIP-43: implementation",
            "body",
            &Consent::None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "approval_required", "{e}");
    let r = format!("refs/heads/{}", s.branch);
    let on_remote = |f: &Fixture| {
        Command::new("git")
            .args([
                "--git-dir",
                &f.bare.to_string_lossy(),
                "rev-parse",
                "--verify",
                "--quiet",
                &r,
            ])
            .output()
            .unwrap()
    };
    assert!(
        !on_remote(&f).status.success(),
        "nothing was pushed without an approval"
    );
    let consent = Consent::Approved { by: "alice".into() };
    let done = g
        .finalize(
            "43",
            "impl-1",
            "BIP-43: implementation",
            "Implements BIP-43.",
            &consent,
        )
        .await
        .unwrap();
    assert_eq!(done.head_sha, head);
    let there = on_remote(&f);
    assert_eq!(String::from_utf8_lossy(&there.stdout).trim(), head);
    let path = LocalProvider::new(f.dir.join("prs")).path("43", &s.branch);
    assert_eq!(done.pr.url, format!("file://{}", path.display()));
    let rec: provider::LocalRecord =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        rec.request,
        PrRequest {
            bip: "43".into(),
            title: "BIP-43: implementation".into(),
            body: "Implements BIP-43.".into(),
            head: s.branch.clone(),
            base: "main".into(),
            remote: "origin".into(),
            head_sha: head,
        }
    );
}

const ALLOW_PUSH_DENY_FORCE: &str = r#"
[[approval.rules]]
name = "bip-push"
tool = "git"
command = "push * refs/heads/bip/*"
decision = "allow"
examples = { match = ["git push origin refs/heads/bip/1/impl/x:refs/heads/bip/1/impl/x"], not_match = ["git push origin main"] }

[[approval.rules]]
name = "no-force"
tool = "git"
command = "push --force*"
decision = "deny"
reason = "history on the remote is never rewritten"
examples = { match = ["git push --force origin x"], not_match = ["git push origin x"] }
"#;

#[tokio::test]
async fn a_force_push_denied_by_policy_never_runs_even_with_an_approval() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(ALLOW_PUSH_DENY_FORCE));
    let s = g.start("5", "impl-5").await.unwrap();
    let first = g
        .review_commit("5", "impl-5", "claude", "round 1")
        .await
        .unwrap();
    // Allowed by `bip-push` without anyone asked.
    g.finalize("5", "impl-5", "BIP-5", "b", &Consent::None)
        .await
        .unwrap();
    // Rewrite the local branch, then try to force it onto the remote.
    let reset = Rewrite::ResetHard {
        revision: "main".into(),
    };
    // `git reset --hard` asks (built-in `git-reset-hard`): refused without consent...
    let e = g
        .rewrite("5", "impl-5", &reset, &Consent::None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "approval_required");
    assert_eq!(raw(&s.worktree, &f.dir, &["rev-parse", "HEAD"]), first);
    // ...and run with it.
    let consent = Consent::Approved { by: "alice".into() };
    g.rewrite("5", "impl-5", &reset, &consent).await.unwrap();
    assert_ne!(raw(&s.worktree, &f.dir, &["rev-parse", "HEAD"]), first);
    for op in [Rewrite::ForcePushHard, Rewrite::ForcePush] {
        let e = g.rewrite("5", "impl-5", &op, &consent).await.unwrap_err();
        assert_eq!(e.code(), "denied_by_policy", "{e}");
        assert!(e.to_string().contains("policy:no-force"), "{e}");
    }
    let r = format!("refs/heads/{}", s.branch);
    let there = raw(&f.bare, &f.dir, &["rev-parse", &r]);
    assert_eq!(there, first, "the remote still has the pushed history");
}

#[tokio::test]
async fn the_builtin_list_asks_for_a_force_push_and_for_deleting_a_branch() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    g.start("5", "impl-5").await.unwrap();
    let e = g
        .rewrite("5", "impl-5", &Rewrite::ForcePushHard, &Consent::None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GitopsError::ApprovalRequired { reason, .. } if reason.contains("builtin:git-push-force")),
        "{e}"
    );
    let del = Rewrite::DeleteBranch {
        name: "main".into(),
    };
    assert_eq!(
        g.rewrite("5", "impl-5", &del, &Consent::None)
            .await
            .unwrap_err()
            .code(),
        "approval_required"
    );
    raw(
        &f.repo,
        &f.dir,
        &["rev-parse", "--verify", "refs/heads/main"],
    );
}

#[test]
fn commands_that_push_or_rewrite_are_recognised_and_others_are_not() {
    for a in [
        &["push", "origin", "x"][..],
        &["reset", "--hard", "HEAD~1"],
        &["rebase", "main"],
        &["branch", "-D", "x"],
        &["branch", "-d", "-f", "x"],
        &["branch", "--delete", "--force", "x"],
        &["commit", "--amend", "-m", "x"],
        &["tag", "-d", "v1"],
        &["update-ref", "-d", "refs/heads/x"],
        &["clean", "-fd"],
        &["worktree", "remove", "--force", "w"],
    ] {
        assert!(Guard::is_guarded(a), "{a:?}");
    }
    for a in [
        &["commit", "-m", "x"][..],
        &["add", "-A"],
        &["branch", "x"],
        &["branch", "-d", "x"],
        &["reset", "--soft", "HEAD~1"],
        &["worktree", "add", "-b", "x", "w"],
        &[],
    ] {
        assert!(!Guard::is_guarded(a), "{a:?}");
    }
}
