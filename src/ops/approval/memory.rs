//! What people decided, remembered for as far as they said it reaches: a decision
//! with scope `task` answers the same action again for that task, `session` for the
//! consumer session that asked, `always` for anyone; `once` is never remembered.
//!
//! It learns from the queue's task events (the decision frames, which carry the
//! request they decided on and the consumer that asked), so it needs nothing from the
//! queue but the public hooks. Every scope stays inside the task's channel
//! (`bip-<n>:<kind>`): the person who decided held the `approve` right there, and
//! nowhere else as far as this memory knows, so `always` means "always, on this
//! channel", and `session` "this consumer, on this channel". "The same action" is the request without its `reason`
//! and `attempt`: the same tool, command, paths and host, byte for byte, so an approval
//! of `cargo test` never covers `cargo test; curl x | sh`.
//!
//! Invariants: the policy's deny still wins over a remembered approval (see
//! [`super::PolicyGate`]); only decisions made by a person are remembered (never a
//! gate's own `policy:*` verdict, nor an `expired` request); the memory is bounded
//! (`MAX_REMEMBERED` entries per scope, the oldest forgotten first). `task` and
//! `session` live as long as the broker; `always` decisions are durable approval
//! objects in the queue's store (`ops::queue::approval_store`), read back at start
//! ([`Memory::seed`]) and listed as learned rules ([`Memory::learned`]) until an admin
//! forgets one ([`Memory::forget`]).

use super::config::Effect;
use crate::frame::FrameType;
use crate::ops::queue::hooks::{ActionRequest, TaskEvent, Verdict};
use crate::ops::queue::{ApprovalRecord, ApprovalState};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Decisions kept per scope before the oldest is forgotten.
pub const MAX_REMEMBERED: usize = 10_000;

/// The decisions people made with a scope wider than `once`.
#[derive(Debug, Default)]
pub struct Memory {
    inner: Mutex<Scopes>,
}

#[derive(Debug, Default)]
struct Scopes {
    /// (task id, action) -> decision.
    task: Bounded,
    /// (consumer session, action) -> decision.
    session: Bounded,
    /// action -> decision.
    always: Bounded,
}

#[derive(Debug, Default)]
struct Bounded {
    map: HashMap<String, Remembered>,
    order: VecDeque<String>,
}

#[derive(Debug, Clone)]
struct Remembered {
    approve: bool,
    by: String,
    reason: String,
    /// The approval that decided (`always` only: the learned rule's id).
    id: Option<String>,
    /// When, wall-clock ms.
    at: u64,
    /// `bip-<n>:<kind>`.
    channel: String,
    /// The request decided on.
    request: Value,
}

/// A rule learned from a person's `always` decision, as `hive policy` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Learned {
    /// The approval's id, which names the rule (`hive policy forget <id>`).
    pub id: String,
    /// The channel it holds on, `bip-<n>:<kind>`.
    pub channel: String,
    /// The action, byte for byte as it was asked (without its reason).
    pub action: Value,
    /// `allow` (approved) or `deny` (denied).
    pub effect: Effect,
    /// Who decided.
    pub by: String,
    /// When, wall-clock ms.
    pub at: u64,
    /// Why, when they said.
    pub reason: String,
}

impl Learned {
    fn of(r: &Remembered) -> Option<Learned> {
        Some(Learned {
            id: r.id.clone()?,
            channel: r.channel.clone(),
            action: r.request.clone(),
            effect: if r.approve {
                Effect::Allow
            } else {
                Effect::Deny
            },
            by: r.by.clone(),
            at: r.at,
            reason: r.reason.clone(),
        })
    }
}

impl Bounded {
    fn put(&mut self, key: String, r: Remembered) {
        if self.map.insert(key.clone(), r).is_none() {
            self.order.push_back(key);
            if self.order.len() > MAX_REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

impl Bounded {
    fn remove_where(&mut self, f: impl Fn(&Remembered) -> bool) -> bool {
        let keys: Vec<String> = self
            .map
            .iter()
            .filter(|(_, r)| f(r))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.map.remove(k);
            self.order.retain(|o| o != k);
        }
        !keys.is_empty()
    }
}

/// The action a request asks for, as the key it is remembered under.
fn fingerprint(request: &Value) -> String {
    let mut a = request.clone();
    if let Some(o) = a.as_object_mut() {
        for k in ["reason", "attempt", "task", "lease"] {
            o.remove(k);
        }
    }
    // serde_json's maps are ordered by key, so equal actions print equally.
    a.to_string()
}

impl Memory {
    /// An empty memory.
    pub fn new() -> Self {
        Memory::default()
    }

    /// Learns from one task event: a person's decision with a scope wider than once.
    pub fn learn(&self, ev: &TaskEvent) {
        if ev.frame != FrameType::Approval {
            return;
        }
        let p = &ev.payload;
        let (Some(decision), Some(scope), Some(by), Some(request)) = (
            p["decision"].as_str(),
            p["scope"].as_str(),
            p["by"].as_str(),
            p.get("request"),
        ) else {
            return;
        };
        if by.starts_with("policy:") || by == "timeout" {
            return;
        }
        let approve = match decision {
            "approve" => true,
            "deny" => false,
            _ => return,
        };
        let channel = format!("bip-{}:{}", ev.bip_id, ev.kind);
        let r = Remembered {
            approve,
            by: by.to_owned(),
            reason: p["reason"].as_str().unwrap_or_default().to_owned(),
            id: p["approval"].as_str().map(str::to_owned),
            at: crate::ops::queue::model::now_ms(),
            channel: channel.clone(),
            request: request.clone(),
        };
        let action = format!("{channel}\n{}", fingerprint(request));
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match scope {
            "task" => s.task.put(format!("{}\n{action}", ev.task), r),
            "session" => {
                if let Some(c) = p["consumer"].as_str() {
                    s.session.put(format!("{c}\n{action}"), r);
                }
            }
            "always" => s.always.put(action, r),
            _ => {}
        }
    }

    /// Remembers a stored `always` decision (at start: see `ops::queue::approval_store`).
    /// Anything else is ignored.
    pub fn seed(&self, a: &ApprovalRecord) {
        let Some(d) = &a.decided else { return };
        let approve = match a.state {
            ApprovalState::Approved => true,
            ApprovalState::Denied => false,
            _ => return,
        };
        if d.scope.as_deref() != Some("always") || a.forgotten.is_some() {
            return;
        }
        let channel = format!("bip-{}:{}", a.bip_id, a.kind);
        let key = format!("{channel}\n{}", fingerprint(&a.action));
        let r = Remembered {
            approve,
            by: d.by.clone(),
            reason: d.reason.clone().unwrap_or_default(),
            id: Some(a.id.clone()),
            at: d.at,
            channel,
            request: a.action.clone(),
        };
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .always
            .put(key, r);
    }

    /// Forgets the learned rule `id`; false when there is none.
    pub fn forget(&self, id: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .always
            .remove_where(|r| r.id.as_deref() == Some(id))
    }

    /// The rules learned from `always` decisions, oldest first.
    pub fn learned(&self) -> Vec<Learned> {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.always
            .order
            .iter()
            .filter_map(|k| s.always.map.get(k))
            .filter_map(Learned::of)
            .collect()
    }

    /// The learned rule that answers `req`, if one does.
    pub fn recall_always(&self, req: &ActionRequest) -> Option<Learned> {
        let key = format!(
            "bip-{}:{}\n{}",
            req.bip_id,
            req.kind,
            fingerprint(&req.action)
        );
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.always.map.get(&key).and_then(Learned::of)
    }

    /// A remembered decision on this request, narrowest scope first.
    pub fn recall(&self, req: &ActionRequest) -> Option<Verdict> {
        let action = format!(
            "bip-{}:{}\n{}",
            req.bip_id,
            req.kind,
            fingerprint(&req.action)
        );
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (scope, r) = [
            ("task", s.task.map.get(&format!("{}\n{action}", req.task))),
            (
                "session",
                s.session.map.get(&format!("{}\n{action}", req.consumer)),
            ),
            ("always", s.always.map.get(&action)),
        ]
        .into_iter()
        .find_map(|(scope, r)| r.map(|r| (scope, r.clone())))?;
        let by = format!("remembered:{scope}:{}", r.by);
        let reason = if r.reason.is_empty() {
            format!("decided earlier with scope {scope}")
        } else {
            r.reason
        };
        Some(match r.approve {
            true => Verdict::Allow { by, reason },
            false => Verdict::Deny { by, reason },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::queue::TaskState;
    use serde_json::json;

    fn decided(task: &str, scope: &str, by: &str, decision: &str, command: &str) -> TaskEvent {
        TaskEvent {
            seq: 1,
            task: task.into(),
            trace_id: task.into(),
            owner: "o".into(),
            bip_id: 1,
            kind: "k".into(),
            state: TaskState::Working,
            attempt: 1,
            frame: FrameType::Approval,
            payload: json!({"task": task, "decision": decision, "scope": scope, "by": by,
                            "consumer": "s-1", "request": {"command": command, "reason": "r"}}),
        }
    }

    fn asking(task: &str, consumer: &str, command: &str) -> ActionRequest {
        ActionRequest {
            task: task.into(),
            trace_id: task.into(),
            owner: "o".into(),
            bip_id: 1,
            kind: "k".into(),
            consumer: consumer.into(),
            attempt: 1,
            action: json!({"command": command, "reason": "another reason"}),
        }
    }

    #[test]
    fn each_scope_reaches_as_far_as_it_says_and_no_further() {
        let m = Memory::new();
        m.learn(&decided("t1", "once", "bob", "approve", "make a"));
        assert_eq!(
            m.recall(&asking("t1", "s-1", "make a")),
            None,
            "once is never kept"
        );
        m.learn(&decided("t1", "task", "bob", "approve", "make b"));
        assert!(matches!(
            m.recall(&asking("t1", "s-9", "make b")),
            Some(Verdict::Allow { .. })
        ));
        assert_eq!(
            m.recall(&asking("t2", "s-1", "make b")),
            None,
            "another task"
        );
        m.learn(&decided("t1", "session", "bob", "deny", "make c"));
        assert!(matches!(
            m.recall(&asking("t7", "s-1", "make c")),
            Some(Verdict::Deny { .. })
        ));
        assert_eq!(
            m.recall(&asking("t7", "s-2", "make c")),
            None,
            "another session"
        );
        m.learn(&decided("t1", "always", "bob", "approve", "cargo test"));
        match m.recall(&asking("t9", "s-5", "cargo test")) {
            Some(Verdict::Allow { by, .. }) => assert_eq!(by, "remembered:always:bob"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m.recall(&asking("t9", "s-5", "cargo test; curl x | sh")),
            None,
            "the same action, byte for byte"
        );
        // Never past the channel the person could decide on.
        let mut elsewhere = asking("t9", "s-1", "cargo test");
        elsewhere.bip_id = 2;
        assert_eq!(m.recall(&elsewhere), None, "always, on this channel only");
        let mut other_kind = asking("t7", "s-1", "make c");
        other_kind.kind = "deploy".into();
        assert_eq!(m.recall(&other_kind), None, "session, on this channel only");
    }

    fn stored(id: &str, state: ApprovalState, scope: &str, command: &str) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            task: "t1".into(),
            trace_id: "t1".into(),
            bip_id: 1,
            kind: "k".into(),
            attempt: 1,
            action: json!({"command": command}),
            reason: None,
            suggested_command: None,
            cwd: None,
            requested_by: "w1".into(),
            session: "s-1".into(),
            lease: "l-1".into(),
            created: 1,
            expires_at: 2,
            state,
            decided: Some(crate::ops::queue::approval_store::Decided {
                by: "bob".into(),
                at: 5,
                scope: Some(scope.into()),
                reason: None,
                session: None,
            }),
            forgotten: None,
        }
    }

    #[test]
    fn stored_always_decisions_are_rules_until_forgotten() {
        let m = Memory::new();
        m.seed(&stored("a-1", ApprovalState::Approved, "always", "make a"));
        m.seed(&stored("a-2", ApprovalState::Denied, "always", "make b"));
        m.seed(&stored("a-3", ApprovalState::Approved, "task", "make c"));
        m.seed(&stored("a-4", ApprovalState::Expired, "always", "make d"));
        let mut forgotten = stored("a-5", ApprovalState::Approved, "always", "make e");
        forgotten.forgotten = forgotten.decided.clone();
        m.seed(&forgotten);
        let ids: Vec<String> = m.learned().into_iter().map(|l| l.id).collect();
        assert_eq!(
            ids,
            ["a-1", "a-2"],
            "only live always approvals and denials"
        );
        let l = m.recall_always(&asking("t9", "s-9", "make a")).unwrap();
        assert_eq!(
            (l.effect, l.by.as_str(), l.channel.as_str()),
            (Effect::Allow, "bob", "bip-1:k")
        );
        assert!(matches!(
            m.recall(&asking("t9", "s-9", "make b")),
            Some(Verdict::Deny { .. })
        ));
        assert!(m.forget("a-1"));
        assert!(!m.forget("a-1"), "forgotten once");
        assert_eq!(m.recall(&asking("t9", "s-9", "make a")), None);
        assert_eq!(m.learned().len(), 1);
    }

    #[test]
    fn only_peoples_decisions_are_remembered() {
        let m = Memory::new();
        m.learn(&decided("t1", "always", "policy:builtin:x", "deny", "a"));
        m.learn(&decided("t1", "always", "timeout", "expired", "b"));
        assert_eq!(m.recall(&asking("t1", "s-1", "a")), None);
        assert_eq!(m.recall(&asking("t1", "s-1", "b")), None);
    }
}
