//! The agent's environment: `hive consume`'s own, scrubbed of what looks like a
//! credential, plus the task's context (`HIVE_TASK`, ...).
//!
//! A variable is left out when
//! - its **name** (upper-cased, after removing the false-positive words `KEYBOARD`,
//!   `KEYMAP`, `MONKEY`, `AUTHOR`) contains `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`,
//!   `PASSPHRASE`, `CREDENTIAL`, `PRIVATE`, `KEY`, `AUTH` (so also `SSH_AUTH_SOCK`,
//!   the key agent, and `XAUTHORITY`), `COOKIE` or `SESSION_ID`, or starts with `AWS_`,
//!   `AZURE_`, `VAULT_`, `HIVE_` (the broker's credential and port are not the
//!   agent's); or
//! - its **value** matches one of the safety layer's built-in rules for probable
//!   secrets (`Redactor::detect`: AWS keys, GitHub tokens, JWTs, connection strings
//!   with a password, `password=...`), whatever its name.
//!
//! `--pass-env NAME` keeps a variable the name test would drop (an explicit choice,
//! logged at start); the value test still applies to it. What this cannot catch: a
//! credential under an innocent name in a format no rule knows, and files the agent
//! can read (`~/.aws/credentials`, `~/.netrc`); the agent runs as this user.

use hivebus::safety::{Mode, Redactor, SafetyConfig};
use std::ffi::OsString;

/// Words that contain a secret-looking word without being one.
const FALSE_POSITIVES: &[&str] = &["KEYBOARD", "KEYMAP", "MONKEY", "AUTHOR"];
/// A name containing one of these is a credential's.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE",
    "KEY",
    "AUTH",
    "COOKIE",
    "SESSION_ID",
];
/// A name starting with one of these is left out.
const SECRET_PREFIXES: &[&str] = &["AWS_", "AZURE_", "VAULT_", "HIVE_"];

/// Whether `name` looks like a credential's name.
pub(super) fn secret_name(name: &str) -> bool {
    let mut n = name.to_ascii_uppercase();
    for fp in FALSE_POSITIVES {
        n = n.replace(fp, "");
    }
    SECRET_WORDS.iter().any(|w| n.contains(w)) || SECRET_PREFIXES.iter().any(|p| n.starts_with(p))
}

/// The scrubbed environment and the names left out (for the start-up log; never
/// the values).
pub(super) fn scrub(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    pass: &[String],
) -> (Vec<(OsString, OsString)>, Vec<String>) {
    // The built-in rules in enforce mode; compiling the default config cannot fail
    // (its globs and regexes are fixed), and without it only the name test runs.
    let redactor = Redactor::compile(SafetyConfig::with_mode(Mode::Enforce)).ok();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in vars {
        let name = k.to_string_lossy().into_owned();
        let by_name = secret_name(&name) && !pass.iter().any(|p| p == &name);
        // A hive variable is never passed: the context ones are set per task.
        let hive = name.starts_with("HIVE_");
        let by_value = redactor
            .as_ref()
            .is_some_and(|r| r.detect(&v.to_string_lossy()).is_some());
        if by_name || hive || by_value {
            dropped.push(name);
        } else {
            kept.push((k, v));
        }
    }
    dropped.sort();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_that_look_like_secrets_are_left_out() {
        for n in [
            "GITHUB_TOKEN",
            "NPM_TOKEN",
            "AWS_REGION",
            "OPENAI_API_KEY",
            "db_password",
            "SSH_AUTH_SOCK",
            "HIVE_TOKEN",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ] {
            assert!(secret_name(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "XKB_KEYBOARD",
            "GIT_AUTHOR_NAME",
            "LANG",
            "TERM",
        ] {
            assert!(!secret_name(n), "{n}");
        }
        let vars = [
            ("PATH", "/usr/bin"),
            ("INNOCENT", "AKIAIOSFODNN7EXAMPLE"),
            ("GITHUB_TOKEN", "x"),
            ("MY_KEY", "y"),
            ("HIVE_WS_PORT", "1"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let (kept, dropped) = scrub(vars, &["MY_KEY".into(), "HIVE_WS_PORT".into()]);
        let kept: Vec<_> = kept.iter().map(|(k, _)| k.to_string_lossy()).collect();
        assert_eq!(kept, ["PATH", "MY_KEY"]);
        assert_eq!(dropped, ["GITHUB_TOKEN", "HIVE_WS_PORT", "INNOCENT"]);
    }
}
