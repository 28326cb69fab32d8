//! Unit tests of the policy as a whole: precedence, compound commands, the built-in
//! list and its overrides, paths, examples checked at load, failing closed.

use super::*;
use serde_json::json;

fn policy(toml: &str) -> Policy {
    let c = ApprovalConfig::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
    Policy::from_config(&c).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(toml: &str) -> PolicyError {
    match ApprovalConfig::from_toml(toml).and_then(|c| Policy::from_config(&c)) {
        Ok(_) => panic!("accepted: {toml}"),
        Err(e) => e,
    }
}

fn sh(p: &Policy, line: &str) -> Effect {
    p.decide(&Action::shell(line)).verdict
}

fn by(d: &Decision) -> Option<&str> {
    d.rule.as_ref().map(|r| r.name.as_str())
}

const BASE: &str = r#"
[approval]
default = "ask"

[[approval.rules]]
name = "tests"
command = ["cargo test", "npm run test *"]
decision = "allow"
reason = "tests only read and build"

[[approval.rules]]
name = "echo"
command = "echo"
decision = "allow"

[[approval.rules]]
name = "push"
command = "git push"
decision = "ask"

[[approval.rules]]
name = "no-main"
command = "git push * main"
decision = "deny"
reason = "main is protected"

[[approval.rules]]
name = "writes"
tool = "write"
paths = ["src/**", "tests/**", "*.log"]
decision = "allow"
"#;

#[test]
fn deny_beats_ask_beats_allow_and_nothing_matching_asks() {
    let p = policy(BASE);
    let d = p.decide(&Action::shell("git push origin main"));
    assert_eq!((d.verdict, by(&d)), (Effect::Deny, Some("no-main")));
    assert_eq!(d.reason, "main is protected");
    let d = p.decide(&Action::shell("git push origin feature"));
    assert_eq!((d.verdict, by(&d)), (Effect::Ask, Some("push")));
    let d = p.decide(&Action::shell("cargo test --all"));
    assert_eq!((d.verdict, by(&d)), (Effect::Allow, Some("tests")));
    let d = p.decide(&Action::shell("make install"));
    assert_eq!((d.verdict, d.rule.clone()), (Effect::Ask, None));
    assert!(d.reason.contains("default is ask"), "{}", d.reason);
    let strict = policy("[approval]\ndefault = \"deny\"");
    assert_eq!(sh(&strict, "make"), Effect::Deny);
}

#[test]
fn a_compound_command_is_allowed_only_if_every_part_is() {
    let p = policy(BASE);
    assert_eq!(
        sh(&p, "cargo test && echo done | echo again"),
        Effect::Allow
    );
    let d = p.decide(&Action::shell("cargo test && make"));
    assert_eq!(d.verdict, Effect::Ask);
    assert_eq!(d.parts.len(), 2);
    assert_eq!(
        (d.parts[0].verdict, d.parts[1].verdict),
        (Effect::Allow, Effect::Ask)
    );
    let d = p.decide(&Action::shell("cargo test; echo $(git push origin main)"));
    assert_eq!((d.verdict, by(&d)), (Effect::Deny, Some("no-main")));
    assert!(
        d.reason.starts_with("`git push origin main`"),
        "{}",
        d.reason
    );
    // Words, not text: quoting a push makes it an argument of echo.
    assert_eq!(
        sh(&p, "echo \"git push --force origin main\""),
        Effect::Allow
    );
    assert_eq!(sh(&p, "cargo test > build.log"), Effect::Allow);
    assert_eq!(sh(&p, "cargo test > /etc/motd"), Effect::Ask);
}

#[test]
fn words_known_only_at_run_time_meet_deny_rules_but_never_satisfy_allow_rules() {
    let p = policy(
        r#"
        [[approval.rules]]
        command = ["git push *", "echo", "ls"]
        decision = "allow"
        [[approval.rules]]
        command = "git push * main"
        decision = "deny"
        "#,
    );
    // `$B`, `${B}`, `{main,}` could each be `main`.
    for line in [
        "git push origin $B",
        "git push origin \"${B:-x}\"",
        "git push origin {main,}",
        "git push origin $(cat branch)",
    ] {
        assert_eq!(sh(&p, line), Effect::Deny, "{line}");
    }
    assert_eq!(sh(&p, "git push origin 'ma'\"in\""), Effect::Deny);
    assert_eq!(sh(&p, "git push origin feature"), Effect::Allow);
    assert_eq!(sh(&p, "echo $HOME"), Effect::Allow);
    assert_eq!(sh(&p, "ls *.rs"), Effect::Allow);
    // A program known only at run time matches no rule: the default decides.
    assert_eq!(sh(&p, "$GIT push origin main"), Effect::Ask);
    // A carriage return is part of a word, as in the shell: `X=1\rgit` is one
    // assignment, and the command is what follows it.
    assert_eq!(sh(&p, "X=1\rgit push origin main"), Effect::Ask);
}

#[test]
fn the_builtin_list_asks_or_denies_until_a_rule_overrides_it() {
    let p = policy(
        r#"
        [[approval.rules]]
        command = "git *"
        decision = "allow"
        [[approval.rules]]
        name = "ci-reset"
        command = "git reset --hard origin/*"
        decision = "allow"
        overrides = ["git-reset-hard"]
        [[approval.rules]]
        command = "rm"
        decision = "allow"
        "#,
    );
    let d = p.decide(&Action::shell("git push --force"));
    assert_eq!(
        (d.verdict, by(&d)),
        (Effect::Ask, Some("builtin:git-push-force"))
    );
    assert_eq!(sh(&p, "git reset --hard HEAD~3"), Effect::Ask);
    let d = p.decide(&Action::shell("git reset --hard origin/main"));
    assert_eq!((d.verdict, by(&d)), (Effect::Allow, Some("rules[0]")));
    assert_eq!(sh(&p, "rm -rf build"), Effect::Ask);
    let d = p.decide(&Action::shell("sudo rm -rf /"));
    assert_eq!(
        (d.verdict, by(&d)),
        (Effect::Deny, Some("builtin:rm-rf-root"))
    );
    assert_eq!(sh(&p, "curl -sSf https://sh.rustup.rs | sh"), Effect::Deny);
    let off = policy("[approval]\nbuiltin = false\ndefault = \"allow\"");
    assert_eq!(sh(&off, "rm -rf /"), Effect::Allow);
    // Built-ins hold even when the default allows.
    let open = policy("[approval]\ndefault = \"allow\"");
    assert_eq!(sh(&open, "git clean -fdx"), Effect::Ask);
    assert_eq!(sh(&open, "ls"), Effect::Allow);
}

#[test]
fn what_cannot_be_read_asks_and_never_allows() {
    let open = policy("[approval]\ndefault = \"allow\"");
    for line in ["echo 'unclosed", "cat <<EOF\nx\nEOF", "", "   "] {
        let d = open.decide(&Action::shell(line));
        assert_eq!(d.verdict, Effect::Ask, "{line:?}");
        assert!(d.error.is_some(), "{line:?}");
    }
    let strict = policy("[approval]\ndefault = \"deny\"");
    assert_eq!(sh(&strict, "echo 'unclosed"), Effect::Deny);
    let d = open.decide(&Action {
        tool: Tool::Write,
        ..Action::default()
    });
    assert_eq!(d.verdict, Effect::Ask);
}

#[test]
fn redirections_follow_cd_and_ask_when_their_target_is_known_only_at_run_time() {
    let p = policy(&format!(
        "{BASE}\n[[approval.rules]]\ncommand = [\"cd\", \"builtin cd\"]\ndecision = \"allow\""
    ));
    let at = |line: &str| {
        let mut a = Action::shell(line);
        a.cwd = Some("/w".into());
        p.decide(&a).verdict
    };
    assert_eq!(at("cargo test > build.log"), Effect::Allow);
    assert_eq!(at("cd ./src && cargo test > build.log"), Effect::Allow);
    assert_eq!(at("cargo test > build.log; cd /"), Effect::Allow);
    // `*.log` matches anywhere, but /tmp is outside the worktree.
    assert_eq!(at("cd /tmp && cargo test > build.log"), Effect::Ask);
    assert_eq!(at("builtin cd /tmp; cargo test > build.log"), Effect::Ask);
    // CDPATH, `cd -`, a variable: where the next part runs is not known.
    for line in [
        "cd src && cargo test > build.log",
        "cd - && cargo test > build.log",
        "cd $D && cargo test > build.log",
        "pushd /w && cargo test > build.log",
        "cargo test > $LOG",
        "cargo test > build-*.log",
    ] {
        assert_eq!(at(line), Effect::Ask, "{line}");
    }
    assert_eq!(at("cd src && cargo test > /w/src/x.log"), Effect::Allow);
    assert_eq!(
        sh(&p, "cd /tmp && cargo test > build.log"),
        Effect::Ask,
        "no cwd"
    );
}

#[test]
fn paths_resolve_against_the_worktree_and_outside_writes_ask_or_deny() {
    let p = policy(BASE);
    let write = |path: &str| Action {
        tool: Tool::Write,
        paths: vec![path.into()],
        cwd: Some("/w/app".into()),
        worktree: Some("/w".into()),
        ..Action::default()
    };
    assert_eq!(p.decide(&write("../src/lib.rs")).verdict, Effect::Allow);
    assert_eq!(p.decide(&write("docs/x.md")).verdict, Effect::Ask);
    let d = p.decide(&write("../../etc/passwd"));
    assert_eq!(
        (d.verdict, by(&d)),
        (Effect::Ask, Some("builtin:write-outside-worktree"))
    );
    let d = p.decide(&write("/w/src/../../tmp/x.log"));
    assert_eq!(d.verdict, Effect::Ask, "a *.log outside still asks: {d:?}");
    let fenced = policy(&format!(
        "{BASE}\n[[approval.rules]]\ntool = \"write\"\noutside_worktree = true\ndecision = \"deny\""
    ));
    assert_eq!(fenced.decide(&write("/tmp/x")).verdict, Effect::Deny);
    assert_eq!(
        fenced.decide(&write("../tests/a.rs")).verdict,
        Effect::Allow
    );
}

#[test]
fn secret_files_ask_and_read_rules_reach_shell_arguments() {
    let p = policy(
        r#"
        [[approval.rules]]
        command = "cat"
        decision = "allow"
        [[approval.rules]]
        tool = "read"
        decision = "allow"
        [[approval.rules]]
        name = "no-prod"
        tool = "read"
        paths = "config/prod/**"
        decision = "deny"
        "#,
    );
    let read = |path: &str| Action {
        tool: Tool::Read,
        paths: vec![path.into()],
        ..Action::default()
    };
    assert_eq!(p.decide(&read("src/main.rs")).verdict, Effect::Allow);
    let d = p.decide(&read("./.env"));
    assert_eq!(
        (d.verdict, by(&d)),
        (Effect::Ask, Some("builtin:secret-files"))
    );
    assert_eq!(p.decide(&read("deploy/key.pem")).verdict, Effect::Ask);
    assert_eq!(sh(&p, "cat README.md"), Effect::Allow);
    assert_eq!(sh(&p, "cat .env"), Effect::Ask);
    let d = p.decide(&Action::shell("cat config/prod/db.toml"));
    assert_eq!((d.verdict, by(&d)), (Effect::Deny, Some("no-prod")));
}

#[test]
fn examples_are_checked_at_load_and_name_the_rule_and_example() {
    policy(
        r#"
        [[approval.rules]]
        command = "npm run test *"
        decision = "allow"
        examples = { match = ["npm run test", "cd x && npm run test -- --watch"], not_match = ["npm run build", "echo npm run test"] }
        "#,
    );
    let e = refused(
        r#"
        [[approval.rules]]
        command = "cargo test"
        decision = "allow"
        [[approval.rules]]
        command = "git push --force*"
        decision = "deny"
        examples = { match = ["git push origin --force"] }
        "#,
    );
    assert_eq!(e.code(), "example_failed");
    let msg = e.to_string();
    assert!(msg.contains("rules[1]"), "{msg}");
    assert!(msg.contains("`git push --force*`"), "{msg}");
    assert!(msg.contains("`git push origin --force`"), "{msg}");
    let e = refused(
        "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"allow\"\nexamples = { not_match = [\"ls -la\"] }",
    );
    assert!(e.to_string().contains("not_match"), "{e}");
    let e = refused(
        "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"allow\"\nexamples = { match = [\"ls 'x\"] }",
    );
    assert!(e.to_string().contains("cannot be split"), "{e}");
    let e = refused(
        "[[approval.rules]]\ntool = \"write\"\npaths = \"src/**\"\ndecision = \"allow\"\nexamples = { match = [\"src/../x\"] }",
    );
    assert_eq!(e.code(), "example_failed");
}

#[test]
fn malformed_rules_are_refused_with_their_index() {
    for (toml, code) in [
        ("[[approval.rules]]\ndecision = \"allow\"", "invalid_rule"),
        (
            "[[approval.rules]]\ncommand = \"ls\"\nhosts = \"x\"\ndecision = \"allow\"",
            "invalid_rule",
        ),
        (
            "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"allow\"\noverrides = [\"nope\"]",
            "invalid_rule",
        ),
        (
            "[[approval.rules]]\ncommand = \"ls\"\ndecison = \"deny\"\ndecision = \"ask\"",
            "invalid_config",
        ),
        (
            "[[approval.rules]]\ncommand = \"ls\"\ndecision = \"maybe\"",
            "invalid_config",
        ),
        (
            "[[approval.rules]]\ncommand = \" \"\ndecision = \"allow\"",
            "invalid_rule",
        ),
        ("not toml [", "invalid_config"),
    ] {
        assert_eq!(refused(toml).code(), code, "{toml}");
    }
    assert!(refused("[[approval.rules]]\ndecision = \"allow\"")
        .to_string()
        .starts_with("approval.rules[0]"));
}

#[test]
fn conditions_on_the_task_narrow_a_rule() {
    let p = policy(
        r#"
        [[approval.rules]]
        command = "make deploy"
        kind = "release_*"
        bip = 7
        decision = "allow"
        "#,
    );
    let mut a = Action::shell("make deploy");
    assert_eq!(p.decide(&a).verdict, Effect::Ask);
    a.kind = Some("release_prod".into());
    a.bip = Some(7);
    assert_eq!(p.decide(&a).verdict, Effect::Allow);
    a.bip = Some(8);
    assert_eq!(p.decide(&a).verdict, Effect::Ask);
}

#[test]
fn git_net_and_publish_actions() {
    let p = policy(
        r#"
        [[approval.rules]]
        tool = "git"
        command = ["status", "log", "diff"]
        decision = "allow"
        [[approval.rules]]
        tool = "git"
        command = "push * --force*"
        decision = "deny"
        [[approval.rules]]
        hosts = ["*.github.com", "crates.io"]
        decision = "allow"
        [[approval.rules]]
        tool = "publish"
        decision = "allow"
        "#,
    );
    assert_eq!(sh(&p, "git -C repo status --short"), Effect::Allow);
    let git = |c: &str| Action {
        tool: Tool::Git,
        command: Some(c.into()),
        ..Action::default()
    };
    assert_eq!(p.decide(&git("log --oneline")).verdict, Effect::Allow);
    assert_eq!(p.decide(&git("push origin --force")).verdict, Effect::Deny);
    assert_eq!(p.decide(&git("/usr/bin/git status")).verdict, Effect::Allow);
    assert_eq!(p.decide(&git("gitk")).verdict, Effect::Ask, "`git gitk`");
    // An argument vector that names git itself is read as git, not as `git 'git' ...`.
    for argv in [
        json!(["git", "push", "origin", "--force"]),
        json!(["/usr/bin/git", "push", "origin", "--force"]),
    ] {
        let a = Action::from_request(&json!({"tool": "git", "command": argv})).unwrap();
        assert_eq!(p.decide(&a).verdict, Effect::Deny, "{argv}");
    }
    let lax = policy("[approval]\ndefault = \"allow\"\n");
    let a = Action::from_request(&json!({"tool": "git", "command": ["git", "push", "--force"]}))
        .unwrap();
    assert_ne!(
        lax.decide(&a).verdict,
        Effect::Allow,
        "the built-in list still asks"
    );
    assert_eq!(sh(&p, "cd x && git push origin x --force"), Effect::Deny);
    let net = |h: &str| Action {
        tool: Tool::Net,
        host: Some(h.into()),
        ..Action::default()
    };
    assert_eq!(
        p.decide(&net("https://api.github.com/x")).verdict,
        Effect::Allow
    );
    assert_eq!(p.decide(&net("evil.example")).verdict, Effect::Ask);
    let publish = Action {
        tool: Tool::Publish,
        ..Action::default()
    };
    let d = p.decide(&publish);
    assert_eq!((d.verdict, by(&d)), (Effect::Ask, Some("builtin:publish")));
}

#[test]
fn requests_are_read_as_consumers_send_them() {
    let a = Action::from_request(&json!({"command": "ls", "cwd": "/w", "reason": "x"})).unwrap();
    assert_eq!((a.tool, a.command.as_deref()), (Tool::Shell, Some("ls")));
    let a = Action::from_request(&json!({"command": ["A=1", "rm", "-rf", "a b"]})).unwrap();
    let words = &shell::split(a.command.as_deref().unwrap()).unwrap()[0].words;
    assert_eq!(words, &["A=1", "rm", "-rf", "a b"]);
    let a = Action::from_request(&json!({"tool": "write", "path": "x", "paths": ["y"]})).unwrap();
    assert_eq!(a.paths, ["x", "y"]);
    for bad in [
        json!({"tool": "teleport"}),
        json!({"reason": "no command"}),
        json!({"command": 3}),
        json!({"tool": "write", "paths": "x"}),
    ] {
        assert!(Action::from_request(&bad).is_err(), "{bad}");
    }
}

/// Whatever comes before it, a line that goes on to `rm -rf /` is never allowed,
/// even by a rule allowing every command: the text before either splits (and the
/// built-in rule denies that part) or does not (and the line asks).
#[test]
fn no_prefix_smuggles_a_denied_command_past_an_allow_all_rule() {
    let p = policy("[[approval.rules]]\ncommand = \"*\"\ndecision = \"allow\"");
    const ALPHABET: &[&str] = &[
        " ", "a", "echo", "\"", "'", "\\", "$", "(", ")", "`", "{", "}", ";", "&", "|", "<", ">",
        "\n", "\r", "#", "=", "*", "sudo ", "sh -c ", "eval ", "$'", "<<", "cd /", "-",
    ];
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..5_000 {
        let prefix: String = (0..rng.usize(0..12))
            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
            .collect();
        // An escaped separator, a comment, or a redirection taking `rm` as its
        // target keeps `rm` from running in the shell too.
        let trailing = prefix.len() - prefix.trim_end_matches('\\').len();
        let redirect = prefix.trim_end().ends_with(['<', '>']);
        if trailing % 2 == 1 || prefix.contains('#') || redirect {
            continue;
        }
        for sep in [";", "\n", "&&", "|", "&"] {
            let line = format!("{prefix}{sep} rm -rf /");
            let d = p.decide(&Action::shell(&line));
            assert_ne!(d.verdict, Effect::Allow, "{line:?}: {d:?}");
        }
    }
}

#[test]
fn a_request_waits_as_long_as_the_shortest_asking_rule_says_and_timeouts_are_bounded() {
    let p = policy(
        r#"
[approval]
timeout_secs = 600

[[approval.rules]]
name = "deploys"
command = "make deploy"
decision = "ask"
timeout_secs = 30

[[approval.rules]]
name = "migrations"
command = "make migrate"
decision = "ask"
timeout_secs = 90

[[approval.rules]]
command = "cargo test"
decision = "allow"
timeout_secs = 5
"#,
    );
    let t = |line: &str| p.timeout_of(&p.decide(&Action::shell(line)));
    assert_eq!(t("make deploy"), 30);
    assert_eq!(
        t("make migrate && make deploy"),
        30,
        "the shortest that asks"
    );
    assert_eq!(t("make migrate"), 90);
    assert_eq!(
        t("make other"),
        600,
        "the default asks: the section's timeout"
    );
    assert_eq!(
        t("cargo test && make other"),
        600,
        "an allowing rule's timeout does not count"
    );
    for bad in ["timeout_secs = 0", "timeout_secs = 604801"] {
        let e = refused(&format!(
            "[[approval.rules]]\ncommand = \"x\"\ndecision = \"ask\"\n{bad}\n"
        ));
        assert_eq!(e.code(), "invalid_rule", "{e}");
        let e = refused(&format!("[approval]\n{bad}\n"));
        assert_eq!(e.code(), "invalid_config", "{e}");
    }
}
