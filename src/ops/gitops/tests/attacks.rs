//! Hostile input: what a task could send to make git do something else than intended,
//! and the bounds of a git run. Each attack is refused before any process starts, or
//! shown harmless with a real child process.

use super::*;
use crate::ops::gitops::validate;

/// Whether git itself accepts `name` as a branch name.
fn git_accepts_branch(name: &str) -> bool {
    Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
        .status
        .success()
}

const BAD_REFS: &[&str] = &[
    "--upload-pack=touch /tmp/pwned",
    "-b",
    "-",
    "a..b",
    "../../etc/passwd",
    "refs//x",
    "/x",
    "x/",
    "x.lock",
    "x/.hidden",
    "x.",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[",
    "a\\b",
    "a@{1}",
    "@",
    "a\tb",
    "a\nb",
    "\u{7f}",
    "caf\u{e9}",
    "",
];

#[test]
fn refs_are_checked_by_git_check_ref_format_rules_and_never_start_with_a_dash() {
    for bad in BAD_REFS {
        let e = validate::branch(bad).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{bad:?}");
    }
    // Whatever git refuses, we refuse too (git takes some names we do not: non-ASCII).
    for bad in BAD_REFS.iter().filter(|b| !b.is_empty()) {
        if !git_accepts_branch(bad) {
            assert!(validate::branch(bad).is_err(), "{bad:?}");
        }
    }
    for good in [
        "main",
        "bip/43/impl/20261203T200139Z",
        "feature/x-1_2",
        "v1.2",
        "a-",
        "x@y",
    ] {
        validate::branch(good).unwrap();
        assert!(git_accepts_branch(good), "{good}");
    }
    let long = "a".repeat(validate::MAX_REF + 1);
    assert!(validate::branch(&long).is_err());
}

#[test]
fn ids_remotes_and_revisions_refuse_options_paths_and_urls() {
    for bad in [
        "../x",
        "1/../../etc",
        "--x",
        "-1",
        "43 ",
        "4.3",
        "a\0",
        "",
        "x".repeat(33).as_str(),
    ] {
        assert!(validate::bip(bad).is_err(), "bip {bad:?}");
    }
    for good in ["43", "BIP-43", "bip_7"] {
        validate::bip(good).unwrap();
    }
    for bad in [
        "--upload-pack=sh",
        "ext::sh -c touch% /tmp/x",
        "../other.git",
        "/tmp/x",
        "a..b",
        "x.lock",
        "origin/main",
    ] {
        assert!(validate::remote(bad).is_err(), "remote {bad:?}");
    }
    for bad in ["--exec=sh", "HEAD@{1}", "a..b", "-x"] {
        assert!(validate::revision(bad).is_err(), "revision {bad:?}");
    }
    validate::revision("0123abc").unwrap();
    validate::revision("main").unwrap();
    for bad in ["../../x", "a/b", "--force", ".x", "t.lock"] {
        assert!(validate::task(bad).is_err(), "task {bad:?}");
    }
}

#[test]
fn messages_identities_and_emails_are_bounded_and_cannot_forge_headers() {
    assert!(validate::message("fine\n\nbody").is_ok());
    for bad in ["", "  \n", "nul\0byte", "esc\u{1b}[2J"] {
        assert!(validate::message(bad).is_err(), "{bad:?}");
    }
    let big = "x".repeat(validate::MAX_MESSAGE + 1);
    assert!(validate::message(&big).is_err());
    assert!(validate::title("two\nlines").is_err());
    // An author name that would end the name and start a forged e-mail or header.
    for bad in [
        "evil <root@x>",
        "a\nAuthor: x",
        " pad",
        "x".repeat(129).as_str(),
    ] {
        assert!(validate::reviewer(bad).is_err(), "{bad:?}");
    }
    for bad in ["a@b@c", "-x@y", "x@-y", "x y@z", "x@y\n", "@y", "x@"] {
        assert!(validate::email(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_hostile_config_or_task_input_never_reaches_git() {
    let f = fixture();
    let mut cfg = config(&f);
    cfg.remote = "--upload-pack=touch /tmp/pwned".into();
    let mk = |cfg: GitopsConfig| {
        Gitops::new(
            cfg.clone(),
            git_for(&f, &cfg),
            policy(""),
            Locks::open(None).unwrap(),
            Arc::new(LocalProvider::new(f.dir.join("prs"))),
        )
    };
    assert_eq!(mk(cfg).unwrap_err().code(), "invalid_input");
    let g = mk(config(&f)).unwrap();
    for (bip, task) in [
        ("--help", "t"),
        ("../../x", "t"),
        ("1", "../escape"),
        ("1", "-t"),
    ] {
        assert_eq!(
            g.start(bip, task).await.unwrap_err().code(),
            "invalid_input",
            "{bip} {task}"
        );
    }
    assert!(!f.repo.join(".hive/worktrees").exists(), "nothing was made");
    assert!(g.locks().list().is_empty(), "no lock was taken");
    g.start("1", "t").await.unwrap();
    let e = g.review_commit("1", "t", "x <a@b>", "m").await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let del = Rewrite::DeleteBranch {
        name: "--all".into(),
    };
    let consent = Consent::Approved { by: "alice".into() };
    assert_eq!(
        g.rewrite("1", "t", &del, &consent)
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    let rebase = Rewrite::Rebase {
        onto: "--exec=touch /tmp/x".into(),
    };
    assert_eq!(
        g.rewrite("1", "t", &rebase, &consent)
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
}

#[tokio::test]
async fn repository_hooks_never_run() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("2", "t").await.unwrap();
    // An agent writes a hook, and points the repository's config at its own hook dir.
    let hooks = f.dir.join("evil-hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let marker = f.dir.join("hook-ran");
    // `post-commit`: `--no-verify` skips `pre-commit` and `commit-msg`, not this one.
    for dir in [f.repo.join(".git/hooks"), hooks.clone()] {
        let hook = dir.join("post-commit");
        std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    raw(
        &f.repo,
        &f.dir,
        &["config", "core.hooksPath", &hooks.to_string_lossy()],
    );
    g.review_commit("2", "t", "claude", "round").await.unwrap();
    assert!(!marker.exists(), "a hook ran");
    let _ = s;
}

/// A program standing in for git (a real child process) that prints its environment,
/// floods its output, or hangs.
fn script(f: &Fixture, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = f.dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[tokio::test]
async fn git_runs_with_a_scrubbed_environment_bounded_output_and_a_timeout() {
    let f = fixture();
    let run = |program: PathBuf, max_output: usize, timeout_secs: u64| {
        let cfg = GitopsConfig {
            git: program,
            max_output,
            timeout_secs,
            ..GitopsConfig::default()
        };
        Git::new(&cfg)
    };
    // The test runner's environment holds CARGO_* variables: none reaches git.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let env = run(script(&f, "env.sh", "env"), 1 << 20, 10)
        .run(&f.dir, &["status"], &[("GIT_AUTHOR_NAME", "r")])
        .await
        .unwrap();
    let names: Vec<&str> = env
        .stdout
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("CARGO") || *n == "RUST_TEST_THREADS"),
        "{names:?}"
    );
    for want in [
        "LC_ALL",
        "GIT_TERMINAL_PROMPT",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_AUTHOR_NAME",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    // Output beyond the bound is read and dropped.
    let flood = run(
        script(
            &f,
            "flood.sh",
            "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2",
        ),
        4096,
        10,
    )
    .run(&f.dir, &[], &[])
    .await
    .unwrap();
    assert_eq!(
        (flood.stdout.len(), flood.stderr.len(), flood.truncated),
        (4096, 4096, true)
    );
    // A failing command's error quotes a bounded part of what it said.
    let loud = run(
        script(
            &f,
            "loud.sh",
            "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1",
        ),
        1 << 20,
        10,
    )
    .run(&f.dir, &[], &[])
    .await
    .unwrap_err();
    let said = loud.to_string();
    assert!(
        said.len() < crate::ops::gitops::git::MAX_ERROR + 200,
        "{}",
        said.len()
    );
    assert!(
        said.ends_with("... (100000 bytes)"),
        "{}",
        &said[said.len() - 40..]
    );
    // A hung command is killed.
    let hang = run(script(&f, "hang.sh", "exec sleep 30"), 4096, 1)
        .run(&f.dir, &[], &[])
        .await
        .unwrap_err();
    assert_eq!(hang.code(), "git_failed");
    assert!(hang.to_string().contains("killed after 1 s"), "{hang}");
}

#[tokio::test]
async fn a_worktree_switched_off_the_bip_branch_gets_no_review_commit() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("4", "t").await.unwrap();
    let main_before = raw(&f.repo, &f.dir, &["rev-parse", "main"]);
    // The agent detaches the worktree at main's commit, then makes a branch of its own.
    raw(&s.worktree, &f.dir, &["checkout", "-q", "--detach", "main"]);
    let e = g
        .review_commit("4", "t", "claude", "round")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "git_failed");
    raw(&s.worktree, &f.dir, &["checkout", "-q", "-b", "elsewhere"]);
    let e = g
        .review_commit("4", "t", "claude", "round")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("elsewhere"), "{e}");
    assert_eq!(raw(&f.repo, &f.dir, &["rev-parse", "main"]), main_before);
    assert_eq!(
        raw(&f.repo, &f.dir, &["rev-parse", "elsewhere"]),
        main_before
    );
}

#[tokio::test]
async fn a_worktree_pointed_at_another_repository_is_refused() {
    let f = fixture();
    let g = gitops_with(&f, locks(&f), policy(""));
    let s = g.start("6", "t").await.unwrap();
    // The task makes a repository of its own and points the worktree's `.git` at it.
    raw(&f.dir, &f.dir, &["init", "-q", "-b", "x", "evil"]);
    let evil = f.dir.join("evil");
    std::fs::write(
        s.worktree.join(".git"),
        format!("gitdir: {}/.git\n", evil.display()),
    )
    .unwrap();
    let e = g
        .review_commit("6", "t", "claude", "round")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no longer belongs"), "{e}");
    let log = Command::new("git")
        .args(["log", "--oneline"])
        .current_dir(&evil)
        .output()
        .unwrap();
    assert!(!log.status.success(), "nothing was committed there");
}
