//! [`PolicyGate`]: the approval policy as one of the queue's action gates
//! ([`ActionGate`]), deciding a consumer's APPROVAL request before a person is asked.
//!
//! The request's action is read with [`Action::from_request`] and the task's kind and
//! BIP are added from the queue's [`ActionRequest`]. `allow` and `deny` become the
//! queue's verdicts, named by the rule (`by` = the rule's name, or
//! `builtin:<name>`, or `default`); `ask` leaves the decision to a person. An
//! action the gate cannot read asks (fail closed). A request left to a person waits
//! as long as the policy says ([`Policy::timeout_of`]: the asking rule's
//! `timeout_secs`, else the section's).
//!
//! The policy can be replaced while the broker runs ([`PolicyGate::replace`], the
//! admin's `op.approval.reload`): requests decided after the swap see the new one.

use super::action::Action;
use super::config::Effect;
use super::memory::Memory;
use super::policy::{Decision, Policy};
use crate::ops::queue::hooks::{ActionGate, ActionRequest, Verdict};
use crate::ops::BoxFuture;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// An [`ActionGate`] that applies a [`Policy`], and what people decided before
/// ([`Memory`]): the policy's deny wins; then a remembered decision; then the policy.
/// Clones share the policy and the memory.
#[derive(Debug, Clone)]
pub struct PolicyGate {
    policy: Arc<RwLock<Arc<Policy>>>,
    memory: Arc<Memory>,
}

impl PolicyGate {
    /// A gate applying `policy`, remembering nothing.
    pub fn new(policy: Policy) -> Self {
        Self::with_memory(policy, Arc::new(Memory::new()))
    }

    /// A gate applying `policy` and the decisions `memory` learns.
    pub fn with_memory(policy: Policy, memory: Arc<Memory>) -> Self {
        PolicyGate {
            policy: Arc::new(RwLock::new(Arc::new(policy))),
            memory,
        }
    }

    /// The policy it applies now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `policy` from now on (a policy is only ever built whole and checked,
    /// so a refused one never gets here).
    pub fn replace(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
    }

    /// What people decided, as this gate remembers it.
    pub fn memory(&self) -> &Arc<Memory> {
        &self.memory
    }

    /// The policy's decision on a request, or why the request cannot be read.
    pub fn decide(&self, req: &ActionRequest) -> Result<Decision, String> {
        let mut a = Action::from_request(&req.action)?;
        a.kind = Some(req.kind.clone());
        a.bip = Some(req.bip_id);
        Ok(self.policy().decide(&a))
    }
}

/// The queue's verdict for a decision.
pub fn verdict(d: &Decision) -> Verdict {
    let by = d
        .rule
        .as_ref()
        .map_or_else(|| "default".to_owned(), |r| r.name.clone());
    match d.verdict {
        Effect::Allow => Verdict::Allow {
            by,
            reason: d.reason.clone(),
        },
        Effect::Deny => Verdict::Deny {
            by,
            reason: d.reason.clone(),
        },
        Effect::Ask => Verdict::Ask,
    }
}

impl ActionGate for PolicyGate {
    fn check<'a>(&'a self, req: &'a ActionRequest) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let policy = match self.decide(req) {
                Ok(d) => {
                    tracing::debug!(task = %req.task, verdict = d.verdict.as_str(), rule = ?d.rule, "approval policy");
                    verdict(&d)
                }
                Err(why) => {
                    tracing::debug!(task = %req.task, %why, "approval request not readable; asking");
                    Verdict::Ask
                }
            };
            if matches!(policy, Verdict::Deny { .. }) {
                return policy;
            }
            self.memory.recall(req).unwrap_or(policy)
        })
    }

    fn ask_timeout(&self, req: &ActionRequest) -> Option<Duration> {
        let p = self.policy();
        let secs = match self.decide(req) {
            Ok(d) => p.timeout_of(&d),
            Err(_) => p.timeout_secs(),
        };
        Some(Duration::from_secs(secs))
    }
}
