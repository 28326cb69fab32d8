//! Per-credential room and channel permissions: which addresses a session may publish
//! to and which it may subscribe to (join, `history`, `channel_info`).
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
}

impl Permissions {
    /// Everything allowed (anonymous local sessions, credentials without lists).
    pub fn all() -> Self {
        Permissions::default()
    }

    /// Parses the two glob lists; `None` for a list means everything.
    ///
    /// # Errors
    /// `invalid_field` for a glob that breaks the address grammar.
    pub fn new(
        publish: Option<&[String]>,
        subscribe: Option<&[String]>,
    ) -> Result<Self, WireError> {
        let parse = |list: Option<&[String]>| -> Result<Option<Vec<Glob>>, WireError> {
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
        };
        Ok(Permissions {
            publish: parse(publish)?,
            subscribe: parse(subscribe)?,
        })
    }

    /// Whether publishing on `addr` is allowed.
    pub fn may_publish(&self, addr: &Address) -> bool {
        let g = Glob::of(&Pattern::Exact(addr.clone()));
        self.publish
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p.covers(&g)))
    }

    /// Whether subscribing to (or reading) everything `p` covers is allowed.
    pub fn may_subscribe(&self, p: &Pattern) -> bool {
        let g = Glob::of(p);
        self.subscribe
            .as_ref()
            .is_none_or(|l| l.iter().any(|q| q.covers(&g)))
    }
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
}
