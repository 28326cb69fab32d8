//! Rules: the built-in set for probable secrets, and the compiled form every rule takes.
//!
//! Each built-in rule pairs a precise regex, run on JSON string values only after the
//! prefilter hit, with a cheap prefilter regex run once over the serialized payload.
//! The prefilter must match wherever the precise regex does, also in JSON-escaped text;
//! so it is a set of case-insensitive literals that every match contains and that JSON
//! escaping leaves alone. A named group `secret` limits redaction to the secret part
//! (`password=[REDACTED:...]` keeps the key readable).
//!
//! Rules are anchored on token boundaries, not `\b`: the character before a token
//! must not be a letter or digit (so `creds_AKIA...`, `token_ghp_...`, `db_password=`
//! are found, where `_` made `\b` fail), and tokens with a fixed length end where
//! their own character class ends. The boundary characters are matched outside the
//! `secret` group and so are never redacted. PEM private-key headers match in any case,
//! with any number of dashes (at least one on one side) and any spacing.

use super::policy::Action;
use regex::Regex;

/// An extra check on a match, for rules whose regex alone would flag prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every match counts.
    Any,
    /// The secret must look machine-made unless quoted: a digit, a symbol, or mixed
    /// case. `password: must be long` is prose; `password=hunter2` is a secret.
    SecretLike,
}

/// A built-in rule, before compilation.
pub(crate) struct Builtin {
    pub(crate) name: &'static str,
    pub(crate) pattern: &'static str,
    pub(crate) prefilter: &'static str,
    pub(crate) check: Check,
}

/// The built-in rules in their default order. Specific token formats come before the
/// generic `key=value` and `Bearer` rules so that events name the most precise kind.
pub(crate) const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "private_key",
        pattern: r"(?i)(?:-+[ \t]*BEGIN[ \t]+(?:[A-Z0-9]+[ \t]+)*PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-*|BEGIN[ \t]+(?:[A-Z0-9]+[ \t]+)*PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-+)(?s:.*?)(?:-*[ \t]*END[ \t]+(?:[A-Z0-9]+[ \t]+)*PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-*|\z)",
        prefilter: r"(?i)private",
        check: Check::Any,
    },
    Builtin {
        name: "aws_access_key",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?:[^A-Z0-9]|$)",
        prefilter: r"AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA",
        check: Check::Any,
    },
    Builtin {
        name: "aws_secret_key",
        pattern: r#"(?i)aws.{0,20}secret.{0,20}?["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+]{40})"#,
        prefilter: r"(?i)secret",
        check: Check::Any,
    },
    Builtin {
        name: "google_api_key",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>AIza[0-9A-Za-z_\-]{35})",
        prefilter: r"AIza",
        check: Check::Any,
    },
    Builtin {
        name: "google_oauth_token",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>ya29\.[0-9A-Za-z_\-]{20,})",
        prefilter: r"ya29\.",
        check: Check::Any,
    },
    Builtin {
        name: "jwt",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
        prefilter: r"eyJ",
        check: Check::Any,
    },
    Builtin {
        name: "github_token",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        prefilter: r"gh[pousr]_|github_pat_",
        check: Check::Any,
    },
    Builtin {
        name: "provider_api_key",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>sk-(?:ant-|proj-|svcacct-|admin-|or-)?[A-Za-z0-9_\-]{20,})",
        prefilter: r"sk-",
        check: Check::Any,
    },
    Builtin {
        name: "stripe_key",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})",
        prefilter: r"k_live_|k_test_",
        check: Check::Any,
    },
    Builtin {
        name: "slack_token",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>xox[abposr]-[A-Za-z0-9\-]{10,})",
        prefilter: r"xox[abposr]-",
        check: Check::Any,
    },
    Builtin {
        name: "npm_token",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>npm_[A-Za-z0-9]{36})(?:[^A-Za-z0-9]|$)",
        prefilter: r"npm_",
        check: Check::Any,
    },
    Builtin {
        name: "huggingface_token",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>hf_[A-Za-z0-9]{30,})",
        prefilter: r"hf_",
        check: Check::Any,
    },
    Builtin {
        name: "sendgrid_key",
        pattern: r"(?:^|[^A-Za-z0-9])(?P<secret>SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})(?:[^A-Za-z0-9_\-]|$)",
        prefilter: r"SG\.",
        check: Check::Any,
    },
    Builtin {
        name: "azure_account_key",
        pattern: r"(?i)(?:^|[^A-Za-z0-9])(?:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{30,}={0,2})",
        prefilter: r"(?i)accesskey=|accountkey=",
        check: Check::Any,
    },
    Builtin {
        name: "connection_string",
        pattern: r"(?:^|[^A-Za-z0-9+.\-])[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@]+:(?P<secret>[^\s@/]+)@",
        prefilter: r"://[^\s/@]+:[^\s/@]+@",
        check: Check::Any,
    },
    Builtin {
        name: "bearer_token",
        pattern: r"(?i)(?:^|[^A-Za-z0-9])bearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)",
        prefilter: r"(?i)bearer",
        check: Check::Any,
    },
    Builtin {
        name: "basic_auth",
        pattern: r"(?i)(?:^|[^A-Za-z0-9])basic\s+(?P<secret>[A-Za-z0-9+/]{16,}={0,2})",
        prefilter: r"(?i)basic",
        check: Check::Any,
    },
    Builtin {
        name: "password_assignment",
        pattern: r#"(?i)(?:^|[^A-Za-z0-9])(?:password|passwd|secret|client_secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token)\s*[:=]\s*(?P<secret>"[^"\n]{3,}"|'[^'\n]{3,}'|[^\s"',;&]{4,})"#,
        prefilter: r"(?i)passw|secret|api.?key|token",
        check: Check::SecretLike,
    },
];

/// A rule ready to run.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) regex: Regex,
    pub(crate) action: Action,
    pub(crate) check: Check,
    /// The text put in place of a match.
    pub(crate) replacement: String,
    /// Index of the `secret` capture group, when the regex has one.
    pub(crate) secret_group: Option<usize>,
    /// The prefilter regex; `None` means "always run" (a custom rule without keywords).
    pub(crate) prefilter: Option<String>,
    /// The replacement template around `{rule}` (`[REDACTED:` and `]`): text of that
    /// shape is some rule's redaction, never a secret for another rule (with token
    /// boundaries, `OPENAI_API_KEY=[REDACTED:provider_api_key]` would otherwise be
    /// redacted again as a password assignment).
    pub(crate) marker: (String, String),
}

impl Rule {
    /// Replaces every counted match in `text`; returns the new text when anything
    /// matched. A quoted secret keeps its quotes, so that what follows the closing
    /// quote is never read as part of the secret when the output is inspected again
    /// (redaction is a fixpoint; found by the `redactor` fuzz target).
    pub(crate) fn apply(&self, text: &str) -> Option<String> {
        // `is_match` runs on the fast DFA; capture groups need the slower engines, so
        // they are asked for only when there is something to capture.
        if !self.regex.is_match(text) {
            return None;
        }
        let mut out = String::new();
        let mut last = 0;
        let mut any = false;
        for caps in self.regex.captures_iter(text) {
            let Some(m) = self
                .secret_group
                .and_then(|i| caps.get(i))
                .or_else(|| caps.get(0))
            else {
                continue;
            };
            if !self.counts(m.as_str()) || m.start() < last {
                continue;
            }
            any = true;
            out.push_str(&text[last..m.start()]);
            match quote_of(m.as_str()) {
                Some(q) => {
                    out.push(q);
                    out.push_str(&self.replacement);
                    out.push(q);
                }
                None => out.push_str(&self.replacement),
            }
            last = m.end();
        }
        if !any {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    /// Whether `text` holds at least one counted match.
    pub(crate) fn finds(&self, text: &str) -> bool {
        if !self.regex.is_match(text) {
            return false;
        }
        self.regex.captures_iter(text).any(|caps| {
            self.secret_group
                .and_then(|i| caps.get(i))
                .or_else(|| caps.get(0))
                .is_some_and(|m| self.counts(m.as_str()))
        })
    }

    /// Whether `s` is a redaction: the template with a rule name in it.
    fn is_marker(&self, s: &str) -> bool {
        let (pre, post) = &self.marker;
        !pre.is_empty()
            && s.len() > pre.len() + post.len()
            && s.starts_with(pre.as_str())
            && s.ends_with(post.as_str())
            && s[pre.len()..s.len() - post.len()]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    }

    fn counts(&self, secret: &str) -> bool {
        // Already redacted text is not a secret (keeps monitor counts honest on
        // replayed, redacted frames).
        let bare = match quote_of(secret) {
            Some(_) => &secret[1..secret.len() - 1],
            None => secret,
        };
        if bare == self.replacement || self.is_marker(bare) {
            return false;
        }
        match self.check {
            Check::Any => !secret.is_empty(),
            Check::SecretLike => secret_like(secret),
        }
    }
}

/// The quote character around `s`, when `s` is a quoted string.
fn quote_of(s: &str) -> Option<char> {
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    (s.len() >= 2 && s.ends_with(q)).then_some(q)
}

/// See [`Check::SecretLike`].
fn secret_like(s: &str) -> bool {
    if s.starts_with(['"', '\'']) {
        return true;
    }
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let symbol = s.bytes().any(|b| !b.is_ascii_alphanumeric());
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    // `{{password}}`-style template placeholders and `${VAR}` references are not secrets.
    let placeholder = s.starts_with('{') || s.starts_with("${") || s.starts_with('<');
    !placeholder && (digit || symbol || (lower && upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(b: &Builtin) -> Rule {
        let regex = Regex::new(b.pattern).unwrap();
        Rule {
            name: b.name.into(),
            secret_group: regex.capture_names().position(|n| n == Some("secret")),
            regex,
            action: Action::Redact,
            check: b.check,
            replacement: format!("[REDACTED:{}]", b.name),
            prefilter: Some(b.prefilter.into()),
            marker: ("[REDACTED:".into(), "]".into()),
        }
    }

    #[test]
    fn every_builtin_compiles_and_its_prefilter_too() {
        for b in BUILTINS {
            Regex::new(b.pattern).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            Regex::new(b.prefilter).unwrap_or_else(|e| panic!("{}: {e}", b.name));
        }
    }

    #[test]
    fn secret_group_keeps_the_key_readable() {
        let r = rule(
            BUILTINS
                .iter()
                .find(|b| b.name == "password_assignment")
                .unwrap(),
        );
        assert_eq!(
            r.apply("db password=hunter2 ok").as_deref(),
            Some("db password=[REDACTED:password_assignment] ok")
        );
        assert_eq!(r.apply("password: must be long"), None);
        assert_eq!(r.apply("password = {{password}}"), None);
        // The case the fuzzer found: a quoted secret followed by more text.
        let once = r.apply(r#"passwd="correct horse"head""#).unwrap();
        assert_eq!(once, r#"passwd="[REDACTED:password_assignment]"head""#);
        assert_eq!(r.apply(&once), None, "redacted output is a fixpoint");
        // Two connection strings in one run of non-space text: both are found.
        let c = rule(
            BUILTINS
                .iter()
                .find(|b| b.name == "connection_string")
                .unwrap(),
        );
        let out = c.apply("redis://a:p1@h/x,redis://b:p2@h").unwrap();
        assert_eq!(
            out,
            "redis://a:[REDACTED:connection_string]@h/x,redis://b:[REDACTED:connection_string]@h"
        );
    }
}
