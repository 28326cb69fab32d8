//! Per-credential room and channel permissions: which addresses a session may publish
//! to, which it may subscribe to (join, `history`, `channel_info`, reading a task),
//! where it may decide approvals and where it may manage other identities' tasks.
//!
//! Defaults, when a credential's list is absent: `publish` and `subscribe` allow
//! everything; `approve` is the `publish` list (deciding is a way of publishing into
//! the room); `manage` allows nothing (a credential manages only its own tasks).
//!
//! Both are lists of address globs (`bip-43:*`, `secure-*:review_*`). A subscription
//! that is itself a glob is allowed only when one permission glob covers all of it:
//! `bip-*:*` covers `bip-43:*`; `bip-43:*` does not cover `bip-*:*`.

use crate::address::{glob_match, Address, Pattern};
use crate::error::{ErrorCode, WireError};
use serde::Serialize;

/// A glob as two parts, room and channel, each possibly with `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Glob {
    room: String,
    channel: String,
}

impl Glob {
    fn of(p: &Pattern) -> Glob {
        let (room, channel) = match p {
            Pattern::Exact(a) => (a.room(), a.channel()),
            Pattern::Room(r) => (r.as_str(), "*"),
            Pattern::Glob { room, channel } => (room.as_str(), channel.as_str()),
        };
        Glob {
            room: room.to_owned(),
            channel: channel.to_owned(),
        }
    }

    /// Whether every address `other` matches is matched by `self`. Treating `other`'s
    /// `*` as a literal character that only a `*` of `self` can absorb makes plain glob
    /// matching a sound containment test.
    fn covers(&self, other: &Glob) -> bool {
        glob_match(&self.room, &other.room) && glob_match(&self.channel, &other.channel)
    }
}

/// What one credential may publish to and subscribe to. `None` means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    publish: Option<Vec<Glob>>,
    subscribe: Option<Vec<Glob>>,
    /// `None`: the `publish` list.
    approve: Option<Vec<Glob>>,
    /// Empty: nothing.
    manage: Vec<Glob>,
    /// Routing roles its sessions may declare in HELLO; `None`: any.
    declare: Option<Vec<String>>,
}

impl Permissions {
    /// Everything allowed (anonymous local sessions, credentials without lists).
    pub fn all() -> Self {
        Permissions {
            manage: vec![Glob {
                room: "*".into(),
                channel: "*".into(),
            }],
            ..Permissions::default()
        }
    }

    /// Parses the two glob lists; `None` for a list means everything.
    ///
    /// # Errors
    /// `invalid_field` for a glob that breaks the address grammar.
    pub fn new(
        publish: Option<&[String]>,
        subscribe: Option<&[String]>,
    ) -> Result<Self, WireError> {
        Ok(Permissions {
            publish: parse(publish)?,
            subscribe: parse(subscribe)?,
            approve: None,
            manage: Vec::new(),
            declare: None,
        })
    }

    /// Limits the routing roles this credential's sessions may declare (`None`: any).
    pub fn with_declarable_roles(mut self, roles: Option<&[String]>) -> Self {
        self.declare = roles.map(<[String]>::to_vec);
        self
    }

    /// Whether a session of this credential may declare routing role `role`.
    pub fn may_declare(&self, role: &str) -> bool {
        self.declare
            .as_ref()
            .is_none_or(|list| list.iter().any(|r| r == role))
    }

    /// Sets the `approve` and `manage` lists (`None`: their defaults, see the module).
    ///
    /// # Errors
    /// `invalid_field` for a glob that breaks the address grammar.
    pub fn with_rights(
        mut self,
        approve: Option<&[String]>,
        manage: Option<&[String]>,
    ) -> Result<Self, WireError> {
        self.approve = parse(approve)?;
        self.manage = parse(manage)?.unwrap_or_default();
        Ok(self)
    }

    /// Whether deciding approvals of tasks on `addr` is allowed.
    pub fn may_approve(&self, addr: &Address) -> bool {
        match &self.approve {
            None => self.may_publish(addr),
            Some(l) => covers_any(l, addr),
        }
    }

    /// Whether managing (cancel, retry, requeue) other identities' tasks on `addr` is
    /// allowed.
    pub fn may_manage(&self, addr: &Address) -> bool {
        covers_any(&self.manage, addr)
    }

    /// Whether publishing on `addr` is allowed.
    pub fn may_publish(&self, addr: &Address) -> bool {
        self.publish.as_ref().is_none_or(|l| covers_any(l, addr))
    }

    /// Whether publishing on everything `p` covers is allowed (a glob of the
    /// `publish` list covers the whole pattern).
    pub fn may_publish_all(&self, p: &Pattern) -> bool {
        let g = Glob::of(p);
        self.publish
            .as_ref()
            .is_none_or(|l| l.iter().any(|q| q.covers(&g)))
    }

    /// Whether this credential may read every address (no `subscribe` list): callers
    /// that would build an address only to ask can skip that.
    pub fn reads_everything(&self) -> bool {
        self.subscribe.is_none()
    }

    /// Whether subscribing to (or reading) everything `p` covers is allowed.
    pub fn may_subscribe(&self, p: &Pattern) -> bool {
        let g = Glob::of(p);
        self.subscribe
            .as_ref()
            .is_none_or(|l| l.iter().any(|q| q.covers(&g)))
    }
}

/// Parses a glob list; `None` stays `None`.
fn parse(list: Option<&[String]>) -> Result<Option<Vec<Glob>>, WireError> {
    list.map(|l| {
        l.iter()
            .map(|g| {
                Pattern::parse(g).map(|p| Glob::of(&p)).map_err(|e| {
                    WireError::new(ErrorCode::InvalidField, format!("permission: {e}"))
                })
            })
            .collect()
    })
    .transpose()
}

/// Whether one glob of `list` matches `addr`.
fn covers_any(list: &[Glob], addr: &Address) -> bool {
    // An address has no `*`, so plain matching is containment; no copy of it is made
    // (this runs on every publish of a restricted credential).
    list.iter()
        .any(|p| glob_match(&p.room, addr.room()) && glob_match(&p.channel, addr.channel()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(publish: &[&str], subscribe: &[&str]) -> Permissions {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Permissions::new(Some(&v(publish)), Some(&v(subscribe))).unwrap()
    }

    #[test]
    fn glob_subscriptions_need_a_covering_permission() {
        let p = perms(&["bip-43:general"], &["bip-*:*"]);
        let pat = |s| Pattern::parse(s).unwrap();
        assert!(p.may_subscribe(&pat("bip-43:*")));
        assert!(p.may_subscribe(&pat("bip-*:review_*")));
        assert!(!p.may_subscribe(&pat("*:*")));
        assert!(!p.may_subscribe(&pat("ops:alerts")));
        let narrow = perms(&[], &["bip-43:*"]);
        assert!(!narrow.may_subscribe(&pat("bip-*:*")));
        assert!(narrow.may_subscribe(&pat("bip-43:x")));
        let a = |s| Address::parse(s).unwrap();
        assert!(p.may_publish(&a("bip-43:general")));
        assert!(!p.may_publish(&a("bip-43:other")));
        assert!(Permissions::all().may_publish(&a("x:y")));
    }

    #[test]
    fn publishing_on_a_whole_room_needs_one_glob_covering_it() {
        let pat = |s| Pattern::parse(s).unwrap();
        let p = perms(&["team:general", "ops:*"], &[]);
        assert!(!p.may_publish_all(&pat("team")));
        assert!(p.may_publish_all(&pat("ops")));
        assert!(!p.may_publish_all(&pat("op*")));
        assert!(Permissions::all().may_publish_all(&pat("team")));
    }

    #[test]
    fn approve_follows_publish_and_manage_is_opt_in() {
        let a = |s| Address::parse(s).unwrap();
        let p = perms(&["bip-1:*"], &["bip-1:*"]);
        assert!(p.may_approve(&a("bip-1:x")) && !p.may_approve(&a("bip-2:x")));
        assert!(!p.may_manage(&a("bip-1:x")));
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let q = p
            .with_rights(Some(&v(&["bip-2:*"])), Some(&v(&["bip-*:*"])))
            .unwrap();
        assert!(!q.may_approve(&a("bip-1:x")) && q.may_approve(&a("bip-2:x")));
        assert!(q.may_manage(&a("bip-9:x")));
        assert!(Permissions::all().may_manage(&a("x:y")));
        assert!(Permissions::all().may_approve(&a("x:y")));
    }
}
