//! The dispatcher: the one path from "a caller sent this frame" to "it was applied",
//! for every edge (WebSocket sessions today; in-process callers, MCP and HTTP later).
//!
//! For each valid frame it does, in this order and nowhere else:
//! 1. refuses frame types only the server sends;
//! 2. checks the role table for the frame type (`auth::roles`);
//! 3. asks what the frame or command needs ([`Need`]: built-ins in `cmd`, operators
//!    through [`Operator::command_need`] / [`Operator::frame_need`]) and resolves
//!    its target (an operator's resource: who owns a task, where it lives, who holds
//!    its lease);
//! 4. runs the one authority check ([`authority::authorize`]);
//! 5. has the safety layer inspect the content for the address it will finally reach
//!    (the task's channel, not the address the frame claimed);
//! 6. routes it: to the bus (publish, PRIVATE), a built-in command or an operator.
//!
//! The edge keeps only its own I/O: framing, rate limits, duplicate ids, replies.
//! Invariant: nothing is applied, stored or republished before steps 2-5 passed.
//!
//! Publishes meet the signed-envelope check (`auth::signature`) after the authority
//! check and before the bus takes them: a verified one leaves stamped with `signer`.
//!
//! The audit log sees what passes here that matters to security: every `forbidden`
//! (within the audit's refusal rate) and every admin command, with its outcome.

mod answer;

pub use answer::{Answer, Published};

use crate::address::Address;
use crate::audit::{Actor, Audit, Entry};
use crate::auth::authority::{self, Need, On, Right, Target};
use crate::auth::signature::Signatures;
use crate::bus::route::{self, Route, Tags};
use crate::bus::{Bus, Member};
use crate::cmd::{Command, Ctx, ServerInfo};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use crate::ops::{Caller, Operator, Operators};
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest HELLO `name` accepted, in bytes: the envelope's limit for identifiers.
pub const MAX_NAME_BYTES: usize = crate::frame::MAX_ID_BYTES;

/// Routes frames of every caller through the checks above. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    bus: Bus,
    ops: Operators,
    info: ServerInfo,
    audit: Audit,
    /// Signed-envelope checks, when any key or requirement is configured.
    signatures: Option<Arc<Signatures>>,
}

impl Dispatcher {
    /// A dispatcher over `bus` and its operators.
    pub fn new(bus: Bus, ops: Operators, info: ServerInfo) -> Self {
        Dispatcher {
            bus,
            ops,
            info,
            audit: Audit::disabled(),
            signatures: None,
        }
    }

    /// Checks signed envelopes on publishes with `signatures` (kept only when it is
    /// active: otherwise a publish pays nothing for it).
    pub fn with_signatures(mut self, signatures: Option<Arc<Signatures>>) -> Self {
        self.signatures = signatures.filter(|s| s.is_active());
        self
    }

    /// Records refusals and admin commands in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// The audit log this dispatcher records into.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The operators.
    pub fn ops(&self) -> &Operators {
        &self.ops
    }

    /// Checks a HELLO `name`: it is shown to every session in presence, so it is an
    /// identifier: at most [`MAX_NAME_BYTES`], and never a secret.
    ///
    /// # Errors
    /// `invalid_field` (`details.field = "name"`).
    pub fn admit_name(&self, name: &str) -> Result<(), WireError> {
        self.admit_identifier("name", name)
    }

    /// [`Dispatcher::admit_name`] for any HELLO field shown to others
    /// (`reports_to`).
    ///
    /// # Errors
    /// `invalid_field` (`details.field = field`).
    pub fn admit_identifier(&self, field: &str, name: &str) -> Result<(), WireError> {
        let refuse = |why: String| {
            WireError::new(ErrorCode::InvalidField, format!("HELLO `{field}` {why}"))
                .with_details(json!({"field": field}))
        };
        if name.len() > MAX_NAME_BYTES {
            return Err(refuse(format!("is over {MAX_NAME_BYTES} bytes")));
        }
        if name.chars().any(char::is_control) {
            return Err(refuse("has control characters".into()));
        }
        if let Some(rule) = self.bus.secret_in(name) {
            return Err(refuse(format!(
                "looks like a secret (safety rule `{rule}`); choose another name"
            )));
        }
        Ok(())
    }

    /// Checks what a HELLO declares for routing: `roles` and `expertise` are lists of
    /// names within `bus::route`'s bounds, and every role is one the credential may
    /// declare.
    ///
    /// # Errors
    /// `invalid_field` naming the field; `forbidden` (`details.role_declared`) for a
    /// role the credential may not declare.
    pub fn admit_tags(
        &self,
        identity: &crate::auth::Identity,
        roles: Option<&Value>,
        expertise: Option<&Value>,
    ) -> Result<Tags, WireError> {
        let tags = Tags {
            roles: route::names("roles", roles)?,
            expertise: route::names("expertise", expertise)?,
        };
        if let Some(r) = tags
            .roles
            .iter()
            .find(|r| !identity.permissions.may_declare(r))
        {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("this credential may not declare the role `{r}` (its token's `declare_roles` does not list it)"),
            )
            .with_details(json!({"role_declared": r, "right": "declare"})));
        }
        Ok(tags)
    }

    /// Applies one valid frame sent by `caller` through `member`. `Some(answer)` is
    /// acknowledged with a REPLY when the frame had an id.
    ///
    /// # Errors
    /// The refusal, with its stable code; nothing was applied.
    pub async fn dispatch(
        &self,
        member: &Member,
        caller: &Caller,
        env: Envelope,
    ) -> Result<Option<Answer>, WireError> {
        let kind = env.kind;
        let out = self.route(member, caller, env).await;
        if let Err(e) = &out {
            if e.code == ErrorCode::Forbidden {
                self.refused(caller, kind, e);
            }
        }
        out
    }

    /// Records a `forbidden` in the audit log: who, which frame type, and the
    /// refusal's details (right, address), never the frame's content.
    fn refused(&self, caller: &Caller, kind: FrameType, e: &WireError) {
        let target = e
            .details
            .as_ref()
            .and_then(|d| d.get("address"))
            .and_then(Value::as_str)
            .unwrap_or(kind.as_str())
            .to_owned();
        let details = json!({"frame": kind.as_str(), "refusal": e.details});
        self.audit.refusal(
            Entry::new("refused")
                .actor(Actor::of(&caller.identity, &caller.session))
                .target(target)
                .outcome("forbidden")
                .details(details),
        );
    }

    async fn route(
        &self,
        member: &Member,
        caller: &Caller,
        env: Envelope,
    ) -> Result<Option<Answer>, WireError> {
        match env.kind {
            FrameType::Hello => {
                return Err(WireError::new(
                    ErrorCode::AlreadyHandshaken,
                    "HELLO was already sent",
                ))
            }
            FrameType::Welcome | FrameType::System => {
                return Err(WireError::new(
                    ErrorCode::UnexpectedType,
                    format!("{} frames are sent by the server only", env.kind.as_str()),
                ))
            }
            FrameType::Reply => {
                return Err(WireError::new(
                    ErrorCode::UnknownRequest,
                    format!(
                        "no request {} is waiting for a reply",
                        env.payload.get("re").unwrap_or(&Value::Null)
                    ),
                ))
            }
            _ => {}
        }
        let role = caller.identity.role;
        if !role.may_send(env.kind) {
            return Err(role.refuse_frame(env.kind));
        }
        match env.kind {
            FrameType::Command => self
                .command(member, caller, env)
                .await
                .map(|v| Some(Answer::Value(v))),
            FrameType::Private => private(member, env).map(|v| Some(Answer::Value(v))),
            kind => {
                let answer = match self.ops.for_frame(kind).cloned() {
                    Some(op) => self.operator_frame(&op, caller, env).await?,
                    None if kind == FrameType::Heartbeat => None,
                    None => return self.publish(member, caller, env).map(Some),
                };
                // A heartbeat is always answered, whoever (if anyone) took it.
                Ok(match (answer, kind) {
                    (None, FrameType::Heartbeat) => Some(Answer::Value(json!({"alive": true}))),
                    (a, _) => a.map(Answer::Value),
                })
            }
        }
    }

    /// A frame an operator claims.
    async fn operator_frame(
        &self,
        op: &Arc<dyn Operator>,
        caller: &Caller,
        mut env: Envelope,
    ) -> Result<Option<Value>, WireError> {
        let need = op.frame_need(caller, &env)?;
        let target = self.admit(op, caller, &need).await?;
        if need.content {
            self.bus.inspect(target.address(), &mut env)?;
        }
        let kind = env.kind;
        let mut observers = self.ops.observers(kind, op).peekable();
        if observers.peek().is_none() {
            let out = op.frame(caller, env).await;
            self.acted(caller, kind.as_str(), &need, &target, out.as_ref().err());
            return out;
        }
        // Observers see the frame as its owner got it, once the owner took it.
        let seen = env.clone();
        let out = op.frame(caller, env).await;
        self.acted(caller, kind.as_str(), &need, &target, out.as_ref().err());
        let out = out?;
        for o in observers {
            o.observe(caller, &seen);
        }
        Ok(out)
    }

    /// Channel traffic no operator claims: published as is.
    fn publish(
        &self,
        member: &Member,
        caller: &Caller,
        mut env: Envelope,
    ) -> Result<Answer, WireError> {
        let room = env.room.take().unwrap_or_default();
        let addr = Address::from_parts(&room, env.channel.take().as_deref())?;
        // The hot path: the address is moved into the target and back, not copied
        // (`authorize` reads the need's roles and right, not its `on`).
        let need = Need::new(authority::ANY_ROLE, Right::Publish, On::Nothing);
        let target = Target::Address(addr);
        authority::authorize(caller.asker(), &need, &target)?;
        let Target::Address(addr) = target else {
            return Err(WireError::new(ErrorCode::Internal, "publish target lost"));
        };
        match &self.signatures {
            Some(sigs) => sigs.check(&caller.identity.subject, &addr, &mut env, unix_ms())?,
            // No key anywhere: a signature cannot verify, so it is not carried as if
            // it did (receivers would see a `sig` no broker checked).
            None if env.sig.is_some() => {
                return Err(WireError::new(
                    ErrorCode::BadSignature,
                    "this broker has no signing keys: send the frame without `sig`",
                )
                .with_details(json!({"reason": "no_key"})))
            }
            None => {}
        }
        let echo = env.echo.unwrap_or(false);
        let route = Route::of_payload(&env.payload)?;
        // `from_role` says which of its roles the sender speaks as: one it declared.
        if let Some(r) = env.payload.get("from_role") {
            if !r
                .as_str()
                .is_some_and(|r| caller.tags.roles.iter().any(|d| d == r))
            {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`payload.from_role` must be one of the roles this session declared in HELLO",
                )
                .with_details(
                    json!({"field": "payload.from_role", "declared": caller.tags.roles}),
                ));
            }
        }
        // The bus inspects it for `addr` on its way to history and subscribers.
        let delivery = member.publish_routed(&addr, env, echo, route.as_ref())?;
        Ok(Answer::Published(Published { addr, delivery }))
    }

    async fn command(
        &self,
        member: &Member,
        caller: &Caller,
        env: Envelope,
    ) -> Result<Value, WireError> {
        let Envelope { payload, id, .. } = env;
        // `Envelope::parse_peer` made sure `payload.name` is a string.
        let name = payload
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let args = payload.get("args").cloned().unwrap_or(Value::Null);
        if name.starts_with("op.") {
            let (op, rest) = self.ops.for_command(&name)?;
            let op = op.clone();
            let need = op.command_need(caller, rest, &args)?;
            let target = self.admit(&op, caller, &need).await?;
            let mut args = args;
            if need.content {
                // Inspected for the address the content will reach (a task's channel),
                // so a scope (`[safety] include`) cannot be dodged by naming another.
                let mut probe = Envelope::new(FrameType::Command, args);
                probe.from = Some(member.id().to_owned());
                probe.id = id;
                self.bus.inspect(target.address(), &mut probe)?;
                args = probe.payload;
            }
            let out = op.command(caller, rest, args).await;
            self.acted(caller, &name, &need, &target, out.as_ref().err());
            return out;
        }
        let cmd = Command::parse(&name, args)?.ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `{name}`"),
            )
        })?;
        let need = cmd.need();
        authority::authorize(caller.asker(), &need, &plain_target(&need.on))?;
        let ctx = Ctx {
            member,
            identity: &caller.identity,
            server: &self.info,
            ops: &self.ops,
        };
        let out = cmd.apply(&ctx);
        let target = plain_target(&need.on);
        self.acted(caller, &name, &need, &target, out.as_ref().err());
        out
    }

    /// Records a command or frame that passed the authority check and whose need is
    /// audited ([`Need::audit_kind`]: admin commands, approval decisions, actions on
    /// others' tasks, on owned resources, and those flagged), with how it ended. The
    /// arguments are never recorded: only the name, the resource and its address.
    fn acted(
        &self,
        caller: &Caller,
        name: &str,
        need: &Need,
        target: &Target,
        err: Option<&WireError>,
    ) {
        let Some(kind) = need.audit_kind() else {
            return;
        };
        let outcome = err.map_or("ok", |e| e.code.as_str());
        let mut details = serde_json::Map::new();
        if let Target::Resource(r) = target {
            details.insert("resource".into(), json!(r.id));
            details.insert("owner".into(), json!(r.owner));
        }
        if let Some(a) = target.address() {
            details.insert("address".into(), json!(a.to_string()));
        } else if let Target::Pattern(p) = target {
            details.insert("pattern".into(), json!(p.to_string()));
        }
        self.audit.record(
            Entry::new(kind)
                .actor(Actor::of(&caller.identity, &caller.session))
                .target(name)
                .outcome(outcome)
                .details(Value::Object(details)),
        );
    }

    /// Resolves what `need` acts on and runs the authority check.
    async fn admit(
        &self,
        op: &Arc<dyn Operator>,
        caller: &Caller,
        need: &Need,
    ) -> Result<Target, WireError> {
        authority::check_role(caller.asker(), need)?;
        let target = match &need.on {
            On::Resource(key) => Target::Resource(op.resource(key).await?),
            on => plain_target(on),
        };
        authority::may(caller.asker(), need.right, &target)?;
        Ok(target)
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The target of an `On` that needs no lookup.
fn plain_target(on: &On) -> Target {
    match on {
        On::Address(a) => Target::Address(a.clone()),
        On::Pattern(p) => Target::Pattern(p.clone()),
        On::Nothing | On::Each | On::Resource(_) => Target::Nothing,
    }
}

/// A PRIVATE frame to the sessions of `payload.to`.
fn private(member: &Member, mut env: Envelope) -> Result<Value, WireError> {
    let to: Vec<String> = match env.payload.get("to").and_then(Value::as_array) {
        Some(list) if list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                "`payload.to` must be an array of session ids",
            ))
        }
    };
    env.room = None;
    env.channel = None;
    let missing = member.send_private(&to, env)?;
    if missing.len() == to.len() && !to.is_empty() {
        return Err(
            WireError::new(ErrorCode::UnknownSession, "no recipient is connected")
                .with_details(json!({"missing": missing})),
        );
    }
    Ok(json!({"delivered": to.len() - missing.len(), "missing": missing}))
}
