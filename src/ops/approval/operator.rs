//! The approvals operator, `op.approval.*`: the policy in force as a broker sees it,
//! and an admin's hands on it.
//!
//! - `rules`: the effective rules with their origin: `config` (the `[approval]`
//!   section), `builtin` (the destructive list) and `always` (learned from a person's
//!   decision: who, when, on which channel). Learned rules are listed only on
//!   channels the caller may read (they quote what was asked there).
//! - `check`: what the broker would decide on one request, learned rules included,
//!   naming the deciding rule.
//! - `forget {id}` (admin): a learned rule stops applying, durably.
//! - `reload` (admin): re-reads `[approval]` from the broker's config file; a section
//!   that does not load (a failing example, an unknown key, a bad timeout) is
//!   refused with the rule and example named, and the policy in force stays.
//!
//! Invariants: a learned rule never beats the policy's deny (the gate asks the
//! policy first); the policy is swapped whole, never half-loaded; who may do what is
//! declared once, in [`Operator::command_need`].

use super::config::{ApprovalConfig, Effect};
use super::gate::PolicyGate;
use super::policy::{Policy, PolicyError};
use super::BUILTINS;
use crate::address::{Address, Pattern};
use crate::auth::authority::{Need, On, Right, ANY_ROLE};
use crate::error::{ErrorCode, WireError};
use crate::ops::queue::hooks::ActionRequest;
use crate::ops::queue::Queue;
use crate::ops::{BoxFuture, Caller, Operator};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `op.approval.*` over one broker's [`PolicyGate`] and queue store.
#[derive(Debug, Clone)]
pub struct ApprovalOperator {
    gate: PolicyGate,
    queue: Queue,
    config_path: Option<PathBuf>,
}

/// A refused policy as the wire error an admin gets: the message names the rule and
/// the example; `details.reason` is the policy error's code.
pub fn refused(e: &PolicyError) -> WireError {
    let mut d = json!({"field": "approval", "reason": e.code()});
    match e {
        PolicyError::InvalidRule { index, .. } => d["rule"] = json!(index),
        PolicyError::ExampleFailed {
            index,
            example,
            expected,
            ..
        } => {
            d["rule"] = json!(index);
            d["example"] = json!(example);
            d["expected"] = json!(expected);
        }
        _ => {}
    }
    WireError::new(
        ErrorCode::InvalidField,
        format!("policy refused, the one in force stays: {e}"),
    )
    .with_details(d)
}

impl ApprovalOperator {
    /// The operator over `gate` (shared with the queue), whose learned rules live in
    /// `queue`'s store; `config_path` is the file `reload` reads.
    pub fn new(gate: PolicyGate, queue: Queue, config_path: Option<PathBuf>) -> Self {
        ApprovalOperator {
            gate,
            queue,
            config_path,
        }
    }

    /// Reads the learned rules back from the store into the gate's memory (at start).
    ///
    /// # Errors
    /// `internal` when the store cannot be read.
    pub async fn load(&self) -> Result<usize, WireError> {
        let rules = self.queue.learned_rules().await?;
        for a in &rules {
            self.gate.memory().seed(a);
        }
        Ok(rules.len())
    }

    fn may_read(caller: &Caller, channel: &str) -> bool {
        let p = &caller.identity.permissions;
        p.reads_everything()
            || channel.split_once(':').is_some_and(|(room, ch)| {
                Address::new(room, ch).is_ok_and(|a| p.may_subscribe(&Pattern::Exact(a)))
            })
    }

    fn rules(&self, caller: &Caller) -> Value {
        let policy = self.gate.policy();
        let c = policy.config();
        let mut rules: Vec<Value> = Vec::new();
        for (i, r) in c.rules.iter().enumerate() {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["origin"] = json!("config");
            v["index"] = json!(i);
            v["name"] = json!(r.name.clone().unwrap_or_else(|| format!("rules[{i}]")));
            v["timeoutSecs"] = json!(r.timeout_secs.unwrap_or(c.timeout_secs));
            if let Some(o) = v.as_object_mut() {
                o.remove("timeout_secs");
            }
            rules.push(v);
        }
        if c.builtin {
            for b in BUILTINS {
                rules.push(
                    json!({"origin": "builtin", "name": format!("builtin:{}", b.name),
                                  "decision": b.effect, "reason": b.reason}),
                );
            }
        }
        for l in self.gate.memory().learned() {
            if !Self::may_read(caller, &l.channel) {
                continue;
            }
            rules.push(
                json!({"origin": "always", "id": l.id, "name": format!("always:{}", l.id),
                              "channel": l.channel, "action": l.action, "decision": l.effect,
                              "by": l.by, "at": l.at, "reason": l.reason}),
            );
        }
        json!({"default": c.default, "builtin": c.builtin, "timeoutSecs": c.timeout_secs,
               "source": self.config_path.as_ref().map(|p| p.display().to_string()),
               "rules": rules})
    }

    fn check(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        let mut action = args.clone();
        let num = |k: &str| match args.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                WireError::new(ErrorCode::InvalidField, format!("`{k}` must be a number"))
                    .with_details(json!({"field": k}))
            }),
        };
        let bip = num("bip")?;
        let kind = match args.get("kind") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                return Err(
                    WireError::new(ErrorCode::InvalidField, "`kind` must be a string")
                        .with_details(json!({"field": "kind"})),
                )
            }
        };
        if let Some(o) = action.as_object_mut() {
            o.remove("bip");
            o.remove("kind");
        }
        let req = ActionRequest {
            task: String::new(),
            trace_id: String::new(),
            owner: caller.identity.subject.clone(),
            bip_id: bip.unwrap_or(0),
            kind: kind.clone().unwrap_or_default(),
            consumer: caller.session.clone(),
            attempt: 0,
            action,
        };
        let policy = self.gate.policy();
        let mut a = super::Action::from_request(&req.action).map_err(|why| {
            WireError::new(
                ErrorCode::InvalidField,
                format!("the action cannot be read: {why}"),
            )
            .with_details(json!({"field": "action"}))
        })?;
        a.kind = kind.clone();
        a.bip = bip;
        let d = policy.decide(&a);
        let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
        v["origin"] = json!(match &d.rule {
            None => "default",
            Some(r) if r.index.is_some() => "config",
            Some(_) => "builtin",
        });
        // A learned rule answers only where it was learned, never past a deny.
        let channel = format!("bip-{}:{}", req.bip_id, req.kind);
        let learned = (d.verdict != Effect::Deny
            && bip.is_some()
            && kind.is_some()
            && Self::may_read(caller, &channel))
        .then(|| self.gate.memory().recall_always(&req))
        .flatten();
        if let Some(l) = learned {
            v["verdict"] = json!(l.effect);
            v["rule"] = json!({"name": format!("always:{}", l.id)});
            v["origin"] = json!("always");
            v["reason"] = json!(if l.reason.is_empty() {
                format!("{} decided `always` on {}", l.by, l.channel)
            } else {
                l.reason.clone()
            });
            v["learned"] = json!(l);
        }
        if v["verdict"] == "ask" {
            v["timeoutSecs"] = json!(policy.timeout_of(&d));
        }
        Ok(v)
    }

    async fn forget(&self, caller: &Caller, args: &Value) -> Result<Value, WireError> {
        let id = match args.get("id") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            Some(_) => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`id` must be a learned rule's id (`a-...`, see `hive policy list`)",
                )
                .with_details(json!({"field": "id"})))
            }
            None => {
                return Err(WireError::new(ErrorCode::MissingField, "`id` is required")
                    .with_details(json!({"field": "id"})))
            }
        };
        let a = self
            .queue
            .forget_rule(&id, &caller.identity.subject)
            .await?;
        self.gate.memory().forget(&id);
        tracing::info!(rule = %id, by = %caller.identity.subject, "learned approval rule forgotten");
        Ok(json!({"forgotten": id, "rule": a}))
    }

    fn reload(&self, caller: &Caller) -> Result<Value, WireError> {
        let path = self.config_path.as_ref().ok_or_else(|| {
            WireError::new(
                ErrorCode::Conflict,
                "the broker was started without --config: there is no file to reload the policy from",
            )
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            WireError::new(
                ErrorCode::Conflict,
                format!(
                    "cannot read {}: {e}; the policy in force stays",
                    path.display()
                ),
            )
        })?;
        let policy = ApprovalConfig::from_toml(&text)
            .and_then(|c| Policy::from_config(&c))
            .map_err(|e| refused(&e))?;
        let summary = json!({"reloaded": path.display().to_string(),
                             "rules": policy.rule_count(), "default": policy.default_effect(),
                             "timeoutSecs": policy.timeout_secs()});
        self.gate.replace(policy);
        tracing::info!(by = %caller.identity.subject, file = %path.display(), "approval policy reloaded");
        Ok(summary)
    }
}

impl Operator for ApprovalOperator {
    fn namespace(&self) -> &str {
        "approval"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(async move {
            match name {
                "rules" => Ok(self.rules(caller)),
                "check" => self.check(caller, &args),
                "forget" => self.forget(caller, &args).await,
                "reload" => self.reload(caller),
                other => Err(unknown(other)),
            }
        })
    }

    fn command_need(&self, _: &Caller, name: &str, _: &Value) -> Result<Need, WireError> {
        match name {
            // The policy is not a secret; learned rules are filtered by channel.
            "rules" | "check" => Ok(Need::new(ANY_ROLE, Right::None, On::Nothing)),
            "forget" | "reload" => Ok(Need::admin()),
            other => Err(unknown(other)),
        }
    }
}

fn unknown(name: &str) -> WireError {
    WireError::new(
        ErrorCode::UnknownCommand,
        format!("unknown command `op.approval.{name}` (rules, check, forget, reload)"),
    )
}
