//! How long a request the policy leaves to a person waits: the `timeout_secs` of the
//! rule that asks, else the section's `timeout_secs` (default 900).
//!
//! Invariants: every timeout is 1 to [`MAX_TIMEOUT_SECS`] or the policy does not load
//! (0 would expire a request before anyone saw it; longer holds a lease, and its task,
//! past anyone's memory of asking); when several parts of a command line ask, the
//! shortest of their timeouts applies (the strictest, like the verdict); a rule that
//! allows or denies never sets a timeout.

use super::config::{ApprovalConfig, Effect, MAX_TIMEOUT_SECS};
use super::policy::{Decision, Policy, PolicyError, RuleRef};

/// Refuses a section whose timeouts are out of bounds, naming the rule.
pub(crate) fn check(c: &ApprovalConfig) -> Result<(), PolicyError> {
    let bad = |t: u64| t == 0 || t > MAX_TIMEOUT_SECS;
    if bad(c.timeout_secs) {
        return Err(PolicyError::Config(format!(
            "timeout_secs = {}: must be 1 to {MAX_TIMEOUT_SECS}",
            c.timeout_secs
        )));
    }
    for (i, rc) in c.rules.iter().enumerate() {
        if let Some(t) = rc.timeout_secs.filter(|t| bad(*t)) {
            return Err(PolicyError::InvalidRule {
                index: i,
                pattern: rc.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
                why: format!("timeout_secs = {t}: must be 1 to {MAX_TIMEOUT_SECS}"),
            });
        }
    }
    Ok(())
}

impl Policy {
    /// How long a request `d` leaves to a person waits, in seconds: the shortest
    /// `timeout_secs` of the configured rules that ask in it, else the section's.
    pub fn timeout_of(&self, d: &Decision) -> u64 {
        let default = self.timeout_secs();
        let of = |r: &Option<RuleRef>| {
            r.as_ref()
                .and_then(|r| r.index)
                .and_then(|i| self.config().rules.get(i))
                .and_then(|rc| rc.timeout_secs)
                .unwrap_or(default)
        };
        d.parts
            .iter()
            .filter(|p| p.verdict == Effect::Ask)
            .map(|p| of(&p.rule))
            .chain([of(&d.rule)])
            .min()
            .unwrap_or(default)
    }
}
