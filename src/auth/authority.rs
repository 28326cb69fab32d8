//! The one authority check: may this identity, in this session, exercise this right on
//! this target? Every command and frame goes through [`authorize`] before it acts,
//! whoever sends it (a WebSocket session, the embedded bus, a later MCP or HTTP edge).
//!
//! A command or frame states what it needs as a [`Need`]: the roles that may send it,
//! the [`Right`] it exercises and what it acts [`On`]. Built-in commands state theirs in
//! `cmd`, operators per command and frame type (`Operator::command_need`). The
//! dispatcher turns `On::Resource` into a [`Target::Resource`] by asking the operator
//! who owns the resource, then calls [`authorize`]. Nothing else decides; the tables in
//! `docs/ROLES.md` are this file in prose.
//!
//! Invariants: a refusal is always `forbidden` with `details.right` (and
//! `details.address` when there is one), and says nothing about a resource the caller
//! may not read beyond that it exists; ownership never widens a credential's address
//! lists (an owner still needs `publish` on the task's room to edit it); the session
//! holding a task's lease never decides that task's approval, whatever its role.

use super::{Identity, Role};
use crate::address::{Address, Pattern};
use crate::bus::route::{self, Tags};
use crate::error::{ErrorCode, WireError};
use serde_json::json;

/// Every role.
pub const ANY_ROLE: &[Role] = &[Role::Client, Role::Consumer, Role::Admin, Role::Observer];
/// Roles that submit and decide: clients and admins.
pub const SUBMITTERS: &[Role] = &[Role::Client, Role::Admin];
/// Roles that execute tasks: consumers and admins.
pub const EXECUTORS: &[Role] = &[Role::Consumer, Role::Admin];
/// Admins only.
pub const ADMINS: &[Role] = &[Role::Admin];

/// What a command or frame does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Nothing beyond the role check (`ping`, `status`, a heartbeat).
    None,
    /// Reads the target: `subscribe` covers it.
    Read,
    /// Writes into the target: `publish` covers it.
    Publish,
    /// Decides an approval of the target task: `approve` covers its address (or the
    /// caller is an admin), and the caller's session does not hold its lease.
    Approve,
    /// Cancels or retries the target task unchanged: the caller owns it and may publish
    /// on its address, or `manage` covers its address, or the caller is an admin.
    Manage,
    /// Changes what the target task runs (a requeue with new args): the caller owns it
    /// and may publish on its address, or is an admin. `manage` is not enough.
    Edit,
    /// Acts on the target resource as its owner (removes a webhook registration,
    /// reads its dead letters): the caller created it, or is an admin. Address lists
    /// are not consulted: what the resource may read was checked when it was made.
    Own,
    /// Admin role only (`dlq.purge`, `create_channel`, `op.safety.*`).
    Admin,
}

impl Right {
    /// The credential list a refusal points at (`details.permission`).
    pub fn permission(self) -> &'static str {
        match self {
            Right::None => "none",
            Right::Read => "subscribe",
            Right::Publish | Right::Edit => "publish",
            Right::Approve => "approve",
            Right::Manage => "manage",
            Right::Own => "owner",
            Right::Admin => "admin",
        }
    }

    /// The wire spelling, in refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::None => "none",
            Right::Read => "read",
            Right::Publish => "publish",
            Right::Approve => "approve",
            Right::Manage => "manage",
            Right::Edit => "edit",
            Right::Own => "own",
            Right::Admin => "admin",
        }
    }
}

/// What a command or frame acts on, as its sender named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum On {
    /// Nothing in particular.
    Nothing,
    /// One address.
    Address(Address),
    /// A subscription pattern (a `join` with a glob).
    Pattern(Pattern),
    /// A resource of the operator (a task), by the id or trace the sender gave; the
    /// dispatcher resolves it with `Operator::resource`.
    Resource(String),
    /// Many resources (a listing): the operator filters each with [`may`].
    Each,
}

/// What a command or frame needs before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Roles that may send it at all.
    pub roles: &'static [Role],
    /// The right it exercises.
    pub right: Right,
    /// What it acts on.
    pub on: On,
    /// Whether its arguments carry content that will be stored or republished, and so
    /// must be inspected by the safety layer for the target's address first.
    pub content: bool,
    /// Whether the dispatcher records it in the audit log even when its right alone
    /// would not (admin, approve, manage, edit and own are always recorded).
    pub audited: bool,
}

impl Need {
    /// Any role, no right, nothing.
    pub fn open() -> Need {
        Need::new(ANY_ROLE, Right::None, On::Nothing)
    }

    /// Admin only.
    pub fn admin() -> Need {
        Need::new(ADMINS, Right::Admin, On::Nothing)
    }

    /// A need without content.
    pub fn new(roles: &'static [Role], right: Right, on: On) -> Need {
        Need {
            roles,
            right,
            on,
            content: false,
            audited: false,
        }
    }

    /// The same need, recorded in the audit log whatever its right (a webhook
    /// registration is a read, and still security-relevant).
    pub fn audited(mut self) -> Need {
        self.audited = true;
        self
    }

    /// The audit record kind of a command with this need, if it is recorded:
    /// `admin_command`, `approval_decided`, `task_managed`, `owner_action`, or
    /// `recorded` for the others flagged [`Need::audited`].
    pub fn audit_kind(&self) -> Option<&'static str> {
        match self.right {
            Right::Admin => Some("admin_command"),
            Right::Approve => Some("approval_decided"),
            Right::Manage | Right::Edit => Some("task_managed"),
            Right::Own => Some("owner_action"),
            _ if self.audited => Some("recorded"),
            _ => None,
        }
    }

    /// The same need, whose arguments carry content.
    pub fn with_content(mut self) -> Need {
        self.content = true;
        self
    }
}

/// Who owns a resource and where it lives: what the check reads about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its canonical id (a task id, even when the sender named a trace id).
    pub id: String,
    /// The address it lives on (a task's `bip-<n>:<kind>`).
    pub address: Address,
    /// The subject of the identity that created it.
    pub owner: String,
    /// The session holding it (a task's lease), if any.
    pub holder: Option<String>,
}

/// A resolved target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing in particular (also a listing, filtered item by item).
    Nothing,
    /// One address.
    Address(Address),
    /// A subscription pattern.
    Pattern(Pattern),
    /// A resource.
    Resource(Resource),
}

impl Target {
    /// The address content sent to this target finally reaches, if one.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Target::Address(a) => Some(a),
            Target::Resource(r) => Some(&r.address),
            Target::Nothing | Target::Pattern(_) => None,
        }
    }
}

/// Who asks: the identity and the session it speaks through.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// The authenticated identity.
    pub identity: &'a Identity,
    /// The session id.
    pub session: &'a str,
    /// What the session declared for routing: `roles.<r>` and `expertise.<x>` rooms
    /// are read only by sessions that declared `r` or `x` (`bus::route`).
    pub tags: &'a Tags,
}

/// Checks the role, then the right on the target.
///
/// # Errors
/// `forbidden` with `details.role` (role not allowed) or `details.right` (and
/// `details.address`).
pub fn authorize(who: Asker<'_>, need: &Need, target: &Target) -> Result<(), WireError> {
    check_role(who, need)?;
    may(who, need.right, target)
}

/// Checks only that the caller's role may send what `need` is for: done before a
/// resource is looked up, so that a role that may never act learns nothing of which
/// resources exist.
///
/// # Errors
/// `forbidden` with `details.role`.
pub fn check_role(who: Asker<'_>, need: &Need) -> Result<(), WireError> {
    let role = who.identity.role;
    if need.roles.contains(&role) {
        return Ok(());
    }
    let allowed: Vec<&str> = need.roles.iter().map(|r| r.as_str()).collect();
    Err(WireError::new(
        ErrorCode::Forbidden,
        format!(
            "role {} may not do this; it needs one of: {}",
            role.as_str(),
            allowed.join(", ")
        ),
    )
    .with_details(json!({"role": role.as_str(), "right": need.right.as_str()})))
}

/// Checks a right on a target, without the role check: what a listing uses for each
/// item, and what [`authorize`] uses after the role check.
///
/// # Errors
/// `forbidden` with `details.right` and `details.address`.
pub fn may(who: Asker<'_>, right: Right, target: &Target) -> Result<(), WireError> {
    let id = who.identity;
    let admin = id.role == Role::Admin;
    let p = &id.permissions;
    let ok = match (right, target) {
        (Right::None, _) => true,
        (Right::Admin, _) => admin,
        (Right::Read, Target::Nothing) | (Right::Publish, Target::Nothing) => true,
        (Right::Read, Target::Pattern(pat)) => {
            p.may_subscribe(pat) && (admin || reads_routing_rooms(pat, who.tags))
        }
        (Right::Read, t) => t.address().is_some_and(|a| {
            p.may_subscribe(&Pattern::Exact(a.clone()))
                && (admin || route::may_read_room(a.room(), who.tags))
        }),
        // Writing a room's shared state (`op.store` on `room:<name>`) needs publish on
        // every channel the pattern covers.
        (Right::Publish, Target::Pattern(pat)) => p.may_publish_all(pat),
        (Right::Publish, t) => t.address().is_some_and(|a| p.may_publish(a)),
        (Right::Approve, Target::Resource(r)) => {
            if r.holder.as_deref() == Some(who.session) {
                return Err(WireError::new(
                    ErrorCode::Forbidden,
                    "the session holding a task's lease may not decide its approvals",
                )
                .with_details(
                    json!({"right": "approve", "address": r.address.to_string(), "reason": "lease_holder"}),
                ));
            }
            admin || p.may_approve(&r.address)
        }
        (Right::Manage, Target::Resource(r)) => {
            admin || p.may_manage(&r.address) || owns(id, r) && p.may_publish(&r.address)
        }
        (Right::Edit, Target::Resource(r)) => admin || owns(id, r) && p.may_publish(&r.address),
        (Right::Own, Target::Resource(r)) => admin || owns(id, r),
        // Approve, Manage, Edit and Own act on a resource; anything else is a need that
        // was written wrong, refused rather than allowed.
        (Right::Approve | Right::Manage | Right::Edit | Right::Own, _) => false,
    };
    if ok {
        return Ok(());
    }
    let address = match (right, target) {
        // An owned resource's place is not the caller's business when it is not theirs.
        (Right::Own, _) => None,
        (_, Target::Pattern(pat)) => Some(pat.to_string()),
        (_, t) => t.address().map(Address::to_string),
    };
    let what = address.as_deref().unwrap_or("this target");
    let hint = match right {
        Right::Manage | Right::Edit => {
            " (only its owner, a credential with `manage` on its room, or an admin may)"
        }
        Right::Approve => " (it needs `approve` on the task's room)",
        Right::Own => " (only its owner or an admin may)",
        Right::Admin => " (admin only)",
        _ => "",
    };
    Err(WireError::new(
        ErrorCode::Forbidden,
        format!(
            "this credential may not {} {what}{hint}",
            match right {
                Right::Read => "read",
                Right::Publish => "publish to",
                Right::Approve => "decide approvals on",
                Right::Manage => "manage tasks on",
                Right::Edit => "edit tasks on",
                Right::Own => "act as the owner of",
                Right::Admin | Right::None => "act on",
            }
        ),
    )
    .with_details(
        json!({"right": right.as_str(), "permission": right.permission(), "address": address}),
    ))
}

/// Whether a session that declared `tags` may read what `pat` covers, as far as
/// routing rooms go: the role or expertise rooms it names must be declared, and a room
/// glob that could reach routing rooms is for admins (join them by name).
fn reads_routing_rooms(pat: &Pattern, tags: &Tags) -> bool {
    match pat {
        Pattern::Exact(a) => route::may_read_room(a.room(), tags),
        Pattern::Room(r) => route::may_read_room(r, tags),
        Pattern::Glob { room, .. } if room.contains('*') => {
            !route::glob_may_cover_routing_rooms(room)
        }
        Pattern::Glob { room, .. } => route::may_read_room(room, tags),
    }
}

/// Whether `id` created `r`.
fn owns(id: &Identity, r: &Resource) -> bool {
    id.subject == r.owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permissions;

    fn ident(subject: &str, role: Role, publish: &[&str]) -> Identity {
        let v: Vec<String> = publish.iter().map(|s| s.to_string()).collect();
        Identity {
            subject: subject.into(),
            role,
            permissions: Permissions::new(Some(&v), Some(&v)).unwrap(),
            method: "token",
            expires_at: None,
        }
    }

    fn task(owner: &str, holder: Option<&str>) -> Target {
        Target::Resource(Resource {
            id: "t-1".into(),
            address: Address::parse("bip-2:build").unwrap(),
            owner: owner.into(),
            holder: holder.map(str::to_owned),
        })
    }

    static NO_TAGS: Tags = Tags {
        roles: Vec::new(),
        expertise: Vec::new(),
    };

    #[test]
    fn owners_manage_their_tasks_and_strangers_do_not() {
        let alice = ident("alice", Role::Client, &["bip-2:*"]);
        let mallory = ident("mallory", Role::Client, &["bip-1:*"]);
        let a = Asker {
            identity: &alice,
            session: "s-a",
            tags: &NO_TAGS,
        };
        let m = Asker {
            identity: &mallory,
            session: "s-m",
            tags: &NO_TAGS,
        };
        assert!(may(a, Right::Manage, &task("alice", None)).is_ok());
        assert!(may(a, Right::Edit, &task("alice", None)).is_ok());
        let e = may(m, Right::Manage, &task("alice", None)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.details.unwrap()["right"], "manage");
        assert!(may(m, Right::Read, &task("alice", None)).is_err());
        assert!(may(m, Right::Approve, &task("alice", None)).is_err());
        // Owning is not enough without publish on the room.
        assert!(may(m, Right::Edit, &task("mallory", None)).is_err());
        // `Own` is ownership alone: no address list widens or narrows it.
        assert!(may(m, Right::Own, &task("mallory", None)).is_ok());
        let e = may(m, Right::Own, &task("alice", None)).unwrap_err();
        assert!(e.details.unwrap()["address"].is_null());
        assert!(may(m, Right::Own, &Target::Nothing).is_err());
    }

    #[test]
    fn lease_holders_never_approve_and_roles_come_first() {
        let admin = ident("root", Role::Admin, &["*:*"]);
        let me = Asker {
            identity: &admin,
            session: "s-1",
            tags: &NO_TAGS,
        };
        let e = may(me, Right::Approve, &task("x", Some("s-1"))).unwrap_err();
        assert_eq!(e.details.unwrap()["reason"], "lease_holder");
        assert!(may(me, Right::Approve, &task("x", Some("s-2"))).is_ok());
        let obs = ident("o", Role::Observer, &["*:*"]);
        let o = Asker {
            identity: &obs,
            session: "s-o",
            tags: &NO_TAGS,
        };
        let need = Need::new(SUBMITTERS, Right::Publish, On::Nothing);
        assert!(authorize(o, &need, &Target::Nothing).is_err());
        assert!(may(o, Right::Admin, &Target::Nothing).is_err());
        assert!(may(o, Right::Manage, &Target::Nothing).is_err());
    }
}
