//! [`Redactor`]: a compiled policy, and the inspection that runs once per publish.
//!
//! Order of work: scope, then one serialization of the payload for the size limit and
//! the prefilter; only when the prefilter hits (or redaction paths are configured and
//! present) is the JSON tree walked, string values and object keys alike, with the
//! candidate rules in configured order. Monitor mode only reads; enforce mode refuses
//! on a blocking rule before changing anything, then rewrites in place.

use super::paths::{key_value_is_secret, normalize_key, JsonPath};
use super::policy::{Action, Mode, SafetyConfig};
use super::prefilter::{Candidates, Prefilter};
use super::rules::{Check, Rule, BUILTINS};
use super::scope::Scope;
use crate::address::Address;
use crate::error::{ErrorCode, WireError};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};

/// Rule name reported for the payload size limit.
pub const SIZE_RULE: &str = "max_payload_bytes";

/// Rule name reported for a payload with more matches than `max_matches`.
pub const BUDGET_RULE: &str = "scan_budget";
/// Redaction passes at most per publish (the second and later ones run only when the
/// one before changed something; in practice one or two).
const MAX_ROUNDS: usize = 4;

/// Extra passes of every rule over one string after a replacement, before giving up
/// and replacing the string whole.
const STRING_ROUNDS: usize = 16;

/// Rule name in the replacement of a string that would not settle.
pub const UNSTABLE_RULE: &str = "unstable";

/// Rule name reported for redaction by key name.
pub const KEY_RULE: &str = "sensitive_key";

/// What an inspection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    /// Names of the rules that matched (or `sensitive_key`, a path, `max_payload_bytes`).
    pub rules: BTreeSet<String>,
    /// Values or matches replaced (enforce mode only).
    pub redactions: usize,
    /// The rule that blocked the publish (enforce mode only).
    pub blocked_by: Option<String>,
}

impl Finding {
    /// True when nothing matched.
    pub fn is_clean(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A compiled [`SafetyConfig`].
#[derive(Debug)]
pub struct Redactor {
    config: SafetyConfig,
    scope: Scope,
    rules: Vec<Rule>,
    prefilter: Prefilter,
    keys: HashSet<String>,
    paths: Vec<JsonPath>,
    events: Option<Address>,
    /// What a value under a sensitive key becomes; such a value is not redacted again.
    key_replacement: String,
}

impl Redactor {
    /// Compiles a policy.
    ///
    /// # Errors
    /// `invalid_field` naming the bad glob, regex, path, unknown built-in rule or
    /// events address.
    ///
    /// ```
    /// use hivebus::safety::{Mode, Redactor, SafetyConfig};
    /// let r = Redactor::compile(SafetyConfig::with_mode(Mode::Enforce)).unwrap();
    /// let mut p = serde_json::json!({"text": "key AKIAIOSFODNN7EXAMPLE"});
    /// let f = r.inspect(None, &mut p);
    /// assert_eq!(p["text"], "key [REDACTED:aws_access_key]");
    /// assert!(f.rules.contains("aws_access_key"));
    /// ```
    pub fn compile(config: SafetyConfig) -> Result<Redactor, WireError> {
        let bad = |m: String| WireError::new(ErrorCode::InvalidField, m);
        let scope = Scope::new(&config.include, &config.exclude)?;
        for name in &config.disable {
            if !BUILTINS.iter().any(|b| b.name == name) {
                return Err(bad(format!("safety.disable: no built-in rule `{name}`")));
            }
        }
        let replacement = |name: &str| config.replacement.replace("{rule}", name);
        let mut rules: Vec<Rule> = Vec::new();
        let mut named: HashSet<&str> = HashSet::new();
        for rc in &config.rules {
            if !named.insert(rc.name.as_str()) {
                return Err(bad(format!("safety.rules: `{}` appears twice", rc.name)));
            }
            let action = rc.action.unwrap_or_default();
            let rule = match (&rc.pattern, BUILTINS.iter().find(|b| b.name == rc.name)) {
                (Some(p), _) => {
                    let regex = Regex::new(p)
                        .map_err(|e| bad(format!("safety.rules `{}`: {e}", rc.name)))?;
                    let prefilter = (!rc.keywords.is_empty()).then(|| {
                        let alts: Vec<String> =
                            rc.keywords.iter().map(|k| regex::escape(k)).collect();
                        format!("(?i)(?:{})", alts.join("|"))
                    });
                    make_rule(
                        &rc.name,
                        regex,
                        action,
                        Check::Any,
                        replacement(&rc.name),
                        prefilter,
                    )
                }
                (None, Some(b)) => builtin_rule(b, action, replacement(b.name))?,
                (None, None) => {
                    return Err(bad(format!(
                        "safety.rules `{}`: no pattern and no built-in rule of that name",
                        rc.name
                    )))
                }
            };
            rules.push(rule);
        }
        if config.builtin {
            for b in BUILTINS {
                if !named.contains(b.name) && !config.disable.iter().any(|d| d == b.name) {
                    rules.push(builtin_rule(b, Action::Redact, replacement(b.name))?);
                }
            }
        }
        let keys: HashSet<String> = config
            .redact_keys
            .iter()
            .map(|k| normalize_key(k))
            .collect();
        let mut key_list: Vec<String> = keys.iter().cloned().collect();
        key_list.sort();
        let marker = match config.replacement.split_once("{rule}") {
            Some((pre, post)) => (pre.to_owned(), post.to_owned()),
            None => (String::new(), String::new()),
        };
        for r in &mut rules {
            r.marker = marker.clone();
        }
        let prefilter = Prefilter::new(&rules, &key_list)?;
        let paths = config
            .redact_paths
            .iter()
            .map(|p| JsonPath::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let events = match config.events.as_str() {
            "" => None,
            a => Some(Address::parse(a).map_err(|e| bad(format!("safety.events: {e}")))?),
        };
        Ok(Redactor {
            key_replacement: config.replacement.replace("{rule}", KEY_RULE),
            config,
            scope,
            rules,
            prefilter,
            keys,
            paths,
            events,
        })
    }

    /// The policy this was compiled from.
    pub fn config(&self) -> &SafetyConfig {
        &self.config
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// Where decision events go, if anywhere.
    pub fn events_address(&self) -> Option<&Address> {
        self.events.as_ref()
    }

    /// Names of the active rules, in the order they run.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Whether a publish at `addr` (None: PRIVATE) is inspected at all. The events
    /// address never is, so that reporting a decision cannot recurse.
    pub fn in_scope(&self, addr: Option<&Address>) -> bool {
        self.config.mode != Mode::Off
            && addr.is_none_or(|a| Some(a) != self.events.as_ref())
            && self.scope.covers(addr)
    }

    /// The first rule that matches `text` on its own, whatever the mode and the scope:
    /// for identifiers (idempotency keys, trace ids, names) that are refused rather
    /// than rewritten when they look like a secret. `None` when the layer is off.
    pub fn detect(&self, text: &str) -> Option<&str> {
        if self.config.mode == Mode::Off {
            return None;
        }
        let cands = self.prefilter.scan(text);
        let mut found = BTreeSet::new();
        self.scan_str(text, &cands, &mut found);
        found.into_iter().next()
    }

    /// Inspects `payload` published at `addr`. In enforce mode matches are replaced in
    /// place; when a blocking rule matches, nothing is changed and `blocked_by` names
    /// it. In monitor mode `payload` is never changed.
    pub fn inspect(&self, addr: Option<&Address>, payload: &mut Value) -> Finding {
        let mut f = Finding::default();
        if !self.in_scope(addr) || payload.is_null() {
            return f;
        }
        let enforce = self.config.mode == Mode::Enforce;
        // Serializing a `Value` cannot fail (no non-string keys, no custom types).
        let text = serde_json::to_string(payload).unwrap_or_default();
        let max = self.config.max_payload_bytes;
        if max > 0 && text.len() > max {
            f.rules.insert(SIZE_RULE.to_owned());
            if enforce {
                f.blocked_by = Some(SIZE_RULE.to_owned());
                return f;
            }
        }
        // Text with non-ASCII characters is also scanned as it folds (see `fold`), so
        // that `ＡＫＩＡ...` or a key with zero-width spaces inside meets the prefilter.
        let cands = match fold(&text) {
            Some(folded) => self.prefilter.scan(&folded),
            None => self.prefilter.scan(&text),
        };
        if self.over_budget(&text, &cands) {
            // Decided before any capture or replacement: the cost of this payload is
            // the prefilter pass and at most `max_matches` + 1 fast matches.
            f.rules.insert(BUDGET_RULE.to_owned());
            if enforce {
                f.blocked_by = Some(BUDGET_RULE.to_owned());
            }
            return f;
        }
        let paths: Vec<&JsonPath> = self.paths.iter().filter(|p| p.present(payload)).collect();
        if cands.is_empty() && paths.is_empty() {
            return f;
        }
        for p in &paths {
            f.rules.insert(p.text.clone());
        }
        // Read-only pass: what matches, and whether a blocking rule does.
        let mut found = BTreeSet::new();
        self.scan_value(payload, &cands, &mut found);
        if enforce {
            if let Some(r) = self
                .rules
                .iter()
                .find(|r| r.action == Action::Block && found.contains(r.name.as_str()))
            {
                f.blocked_by = Some(r.name.clone());
                f.rules.extend(found.into_iter().map(str::to_owned));
                return f;
            }
        }
        f.rules.extend(found.iter().map(|s| (*s).to_owned()));
        if !enforce {
            return f;
        }
        for p in paths {
            f.redactions += p.redact(payload, &self.config.replacement.replace("{rule}", &p.text));
        }
        if !found.is_empty() {
            f.redactions += self.redact_value(payload, &cands);
            // A replacement can uncover a match that the previous one's context hid,
            // or sit where another rule now matches: repeat until nothing changes, so
            // that the output is a fixpoint (found by the `redactor` fuzz target).
            for _ in 1..MAX_ROUNDS {
                let text = serde_json::to_string(payload).unwrap_or_default();
                let n = self.redact_value(payload, &self.prefilter.scan(&text));
                if n == 0 {
                    break;
                }
                f.redactions += n;
            }
        }
        f
    }

    /// Whether the candidate rules match `text` more than `max_matches` times.
    fn over_budget(&self, text: &str, c: &Candidates) -> bool {
        let max = self.config.max_matches;
        if max == 0 {
            return false;
        }
        let mut n = 0;
        for &i in &c.rules {
            n += self.rules[i]
                .regex
                .find_iter(text)
                .take(max + 1 - n)
                .count();
            if n > max {
                return true;
            }
        }
        false
    }

    fn scan_value<'s>(&'s self, v: &Value, c: &Candidates, found: &mut BTreeSet<&'s str>) {
        match v {
            Value::String(s) => self.scan_str(s, c, found),
            Value::Array(a) => a.iter().for_each(|x| self.scan_value(x, c, found)),
            Value::Object(m) => {
                for (k, x) in m {
                    self.scan_str(k, c, found);
                    if c.keys && self.sensitive(k, x) {
                        found.insert(KEY_RULE);
                    } else {
                        self.scan_value(x, c, found);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `v`, under key `k`, is redacted whole.
    fn sensitive(&self, k: &str, v: &Value) -> bool {
        key_value_is_secret(v)
            && v.as_str() != Some(self.key_replacement.as_str())
            && self.keys.contains(&normalize_key(k))
    }

    fn scan_str<'s>(&'s self, s: &str, c: &Candidates, found: &mut BTreeSet<&'s str>) {
        let folded = fold(s);
        let s = folded.as_deref().unwrap_or(s);
        for &i in &c.rules {
            let r = &self.rules[i];
            if r.finds(s) {
                found.insert(r.name.as_str());
            }
        }
    }

    /// Rewrites `v` in place; returns the number of replacements.
    fn redact_value(&self, v: &mut Value, c: &Candidates) -> usize {
        match v {
            Value::String(s) => self.redact_str(s, c),
            Value::Array(a) => a.iter_mut().map(|x| self.redact_value(x, c)).sum(),
            Value::Object(m) => {
                let mut n = 0;
                let old = std::mem::take(m);
                let mut out = Map::with_capacity(old.len());
                for (mut k, mut x) in old {
                    n += self.redact_str(&mut k, c);
                    if c.keys && self.sensitive(&k, &x) {
                        x = Value::String(self.key_replacement.clone());
                        n += 1;
                    } else {
                        n += self.redact_value(&mut x, c);
                    }
                    out.insert(k, x);
                }
                *m = out;
                n
            }
            _ => 0,
        }
    }

    fn redact_str(&self, s: &mut String, c: &Candidates) -> usize {
        // A string that matches a rule only once folded is replaced by its folded form,
        // then redacted: the secret cannot hide behind zero-width characters or
        // compatibility forms. A string clean either way is left byte for byte.
        if let Some(f) = fold(s) {
            if c.rules.iter().any(|&i| self.rules[i].finds(&f)) {
                *s = f;
            }
        }
        let mut n = 0;
        let mut changed = false;
        for &i in &c.rules {
            if let Some(new) = self.rules[i].apply(s) {
                *s = new;
                n += 1;
                changed = true;
            }
        }
        if !changed {
            return n;
        }
        // A replacement can uncover a match that another match's context hid, or make
        // one for a rule the prefilter did not pick: run the rules again on this
        // string until nothing changes. A string that does not settle (adversarial
        // input; never seen outside the fuzzer) is replaced whole, which is a fixpoint.
        for _ in 0..STRING_ROUNDS {
            let mut again = false;
            // The prefilter patterns match the raw string wherever their rule does,
            // so one scan of the new string picks the rules worth running again.
            for i in self.prefilter.scan(s).rules {
                if let Some(new) = self.rules[i].apply(s) {
                    *s = new;
                    n += 1;
                    again = true;
                }
            }
            if !again {
                return n;
            }
        }
        *s = self.config.replacement.replace("{rule}", UNSTABLE_RULE);
        n + 1
    }
}

fn builtin_rule(
    b: &super::rules::Builtin,
    action: Action,
    replacement: String,
) -> Result<Rule, WireError> {
    let regex = Regex::new(b.pattern).map_err(|e| {
        WireError::new(
            ErrorCode::Internal,
            format!("built-in rule {}: {e}", b.name),
        )
    })?;
    Ok(make_rule(
        b.name,
        regex,
        action,
        b.check,
        replacement,
        Some(b.prefilter.to_owned()),
    ))
}

fn make_rule(
    name: &str,
    regex: Regex,
    action: Action,
    check: Check,
    replacement: String,
    prefilter: Option<String>,
) -> Rule {
    Rule {
        name: name.to_owned(),
        secret_group: regex.capture_names().position(|n| n == Some("secret")),
        regex,
        action,
        check,
        replacement,
        prefilter,
        marker: (String::new(), String::new()),
    }
}

/// The text rules are matched against: NFKC (fullwidth `ＡＫＩＡ` is `AKIA`) without
/// invisible format characters (zero-width spaces and joiners, soft hyphens, bidi
/// controls, variation selectors, tag characters). `None` when that is the text itself,
/// which is always so for ASCII: the common case costs one `is_ascii` scan.
pub(crate) fn fold(s: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    if s.is_ascii() {
        return None;
    }
    let folded: String = s.nfkc().filter(|&c| !invisible(c)).collect();
    (folded != s).then_some(folded)
}

/// Format and other invisible characters that render as nothing inside a token.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::policy::RuleConfig;
    use serde_json::json;

    fn enforce() -> SafetyConfig {
        SafetyConfig::with_mode(Mode::Enforce)
    }

    #[test]
    fn monitor_mode_reports_but_never_changes_the_payload() {
        let r = Redactor::compile(SafetyConfig::with_mode(Mode::Monitor)).unwrap();
        let mut p =
            json!({"a": "token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "password": "x1"});
        let before = p.clone();
        let f = r.inspect(None, &mut p);
        assert_eq!(p, before);
        assert!(
            f.rules.contains("github_token") && f.rules.contains(KEY_RULE),
            "{f:?}"
        );
        assert_eq!((f.redactions, f.blocked_by), (0, None));
    }

    #[test]
    fn a_blocking_rule_refuses_without_touching_the_payload() {
        let mut c = enforce();
        c.rules.push(RuleConfig {
            name: "private_key".into(),
            pattern: None,
            action: Some(Action::Block),
            keywords: vec![],
        });
        let r = Redactor::compile(c).unwrap();
        let mut p = json!({"k": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"});
        let before = p.clone();
        assert_eq!(
            r.inspect(None, &mut p).blocked_by.as_deref(),
            Some("private_key")
        );
        assert_eq!(p, before);
    }

    #[test]
    fn keys_paths_and_object_keys_are_redacted() {
        let mut c = enforce();
        c.redact_paths = vec!["payload.env.*".into()];
        let r = Redactor::compile(c).unwrap();
        let mut p = json!({
            "env": {"HOME": "/root"},
            "Api-Key": "abc",
            "policy": {"password": {"min_length": 12}},
            "AKIAIOSFODNN7EXAMPLE": 1
        });
        let f = r.inspect(None, &mut p);
        assert_eq!(p["env"]["HOME"], "[REDACTED:payload.env.*]");
        assert_eq!(p["Api-Key"], "[REDACTED:sensitive_key]");
        assert_eq!(p["policy"]["password"]["min_length"], 12);
        assert!(p.get("[REDACTED:aws_access_key]").is_some(), "{p}");
        assert!(f.redactions >= 3);
    }

    #[test]
    fn size_limit_blocks_in_enforce_and_flags_in_monitor() {
        let mut c = enforce();
        c.max_payload_bytes = 10;
        let r = Redactor::compile(c.clone()).unwrap();
        let mut p = json!({"text": "a long enough payload"});
        assert_eq!(
            r.inspect(None, &mut p).blocked_by.as_deref(),
            Some(SIZE_RULE)
        );
        c.mode = Mode::Monitor;
        let f = Redactor::compile(c).unwrap().inspect(None, &mut p);
        assert!(f.rules.contains(SIZE_RULE) && f.blocked_by.is_none());
    }

    #[test]
    fn invalid_policies_are_refused_with_invalid_field() {
        let mut c = enforce();
        c.rules.push(RuleConfig {
            name: "x".into(),
            pattern: Some("(".into()),
            action: None,
            keywords: vec![],
        });
        assert_eq!(
            Redactor::compile(c).unwrap_err().code,
            ErrorCode::InvalidField
        );
        let mut c = enforce();
        c.disable = vec!["nope".into()];
        assert!(Redactor::compile(c).is_err());
        let mut c = enforce();
        c.events = "bad address!".into();
        assert!(Redactor::compile(c).is_err());
    }
}
