//! Role and expertise routing: sessions declare `roles` and `expertise` in HELLO; a
//! publish may carry `to_roles` and `required_expertise` in its payload, and then the
//! channel's fan-out delivers it only to subscribers whose declaration matches. The
//! filter runs inside the one fan-out, under the channel's lock, so a routed publish
//! keeps its offset, its history entry and its order like any other.
//!
//! Matching: a subscriber gets a routed publish when `to_roles` is empty or names one
//! of its roles (any of), and it declared every one of `required_expertise` (all of).
//! Routing is addressing, not secrecy: the publish is in the channel's history for
//! every reader of the channel; what only a role may read goes to a `roles.<role>`
//! room, which only sessions that declared the role may join (`auth::authority`).
//!
//! Invariants: declarations and routes are at most [`MAX_TAGS`] names each, every name
//! 1 to [`MAX_TAG_BYTES`] bytes of `a-z 0-9 . _ -`; a session's declaration never
//! changes while it is attached.

use crate::error::{ErrorCode, WireError};
use serde_json::{json, Value};

/// Most names in one declaration or route list.
pub const MAX_TAGS: usize = 16;
/// Longest name, in bytes.
pub const MAX_TAG_BYTES: usize = 64;

/// What a session declared: the routing side of its HELLO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// Its roles in the deployment (`reviewer`, `implementer`, ...).
    pub roles: Vec<String>,
    /// Its areas of expertise (`rust`, `security`, ...).
    pub expertise: Vec<String>,
}

/// Where a publish is addressed within its channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// Deliver to subscribers with any of these roles (empty: any role).
    pub to_roles: Vec<String>,
    /// Deliver to subscribers with all of these (empty: no requirement).
    pub required_expertise: Vec<String>,
}

impl Route {
    /// Whether a subscriber that declared `tags` gets the publish.
    pub fn admits(&self, tags: &Tags) -> bool {
        (self.to_roles.is_empty() || self.to_roles.iter().any(|r| tags.roles.contains(r)))
            && self
                .required_expertise
                .iter()
                .all(|e| tags.expertise.contains(e))
    }

    /// The route a payload asks for, `None` when it names none (the common case costs
    /// two lookups in the payload's map).
    ///
    /// # Errors
    /// `invalid_field` when `to_roles` or `required_expertise` is not a list of names
    /// within the bounds.
    pub fn of_payload(payload: &Value) -> Result<Option<Route>, WireError> {
        let Some(map) = payload.as_object() else {
            return Ok(None);
        };
        let (roles, expertise) = (map.get("to_roles"), map.get("required_expertise"));
        if roles.is_none() && expertise.is_none() {
            return Ok(None);
        }
        let route = Route {
            to_roles: names("payload.to_roles", roles)?,
            required_expertise: names("payload.required_expertise", expertise)?,
        };
        Ok(Some(route))
    }
}

/// A list of names from `v` (absent: empty).
///
/// # Errors
/// `invalid_field` naming `field` when it is not a list of at most [`MAX_TAGS`] names
/// of at most [`MAX_TAG_BYTES`] bytes of `a-z 0-9 . _ -`.
pub fn names(field: &str, v: Option<&Value>) -> Result<Vec<String>, WireError> {
    let bad = |why: String| {
        WireError::new(ErrorCode::InvalidField, format!("`{field}` {why}")).with_details(
            json!({"field": field, "max_items": MAX_TAGS, "max_bytes": MAX_TAG_BYTES}),
        )
    };
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("must be a list of names".into())),
    };
    if items.len() > MAX_TAGS {
        return Err(bad(format!("has over {MAX_TAGS} names")));
    }
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) if is_name(s) => Ok(s.to_owned()),
            _ => Err(bad(format!(
                "holds {i}: names are 1 to {MAX_TAG_BYTES} bytes of a-z 0-9 . _ -"
            ))),
        })
        .collect()
}

/// The room prefix of role rooms: `roles.reviewer`.
pub const ROLE_ROOMS: &str = "roles.";
/// The room prefix of expertise rooms: `expertise.rust`.
pub const EXPERTISE_ROOMS: &str = "expertise.";

/// Whether a session that declared `tags` may read `room`: a `roles.<r>` room needs
/// role `r` declared, an `expertise.<x>` room needs `x`; any other room, yes.
pub fn may_read_room(room: &str, tags: &Tags) -> bool {
    if let Some(r) = room.strip_prefix(ROLE_ROOMS) {
        return tags.roles.iter().any(|d| d == r);
    }
    if let Some(x) = room.strip_prefix(EXPERTISE_ROOMS) {
        return tags.expertise.iter().any(|d| d == x);
    }
    true
}

/// Whether a room glob (`*` for any run of name characters) could match a role or
/// expertise room: its literal start, up to the first `*`, and one of the prefixes
/// agree as far as both go.
pub fn glob_may_cover_routing_rooms(room_glob: &str) -> bool {
    let lead = room_glob.split('*').next().unwrap_or("");
    [ROLE_ROOMS, EXPERTISE_ROOMS]
        .iter()
        .any(|p| p.starts_with(lead) || lead.starts_with(p))
}

/// Whether `s` is a routing name.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TAG_BYTES
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(roles: &[&str], expertise: &[&str]) -> Tags {
        Tags {
            roles: roles.iter().map(|s| s.to_string()).collect(),
            expertise: expertise.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roles_match_any_and_expertise_all() {
        let r = Route::of_payload(&json!({"to_roles": ["reviewer", "general"],
                                           "required_expertise": ["rust", "security"]}))
        .unwrap()
        .unwrap();
        assert!(r.admits(&tags(&["general"], &["security", "rust", "go"])));
        assert!(!r.admits(&tags(&["general"], &["rust"])));
        assert!(!r.admits(&tags(&["implementer"], &["rust", "security"])));
        let only_roles = Route::of_payload(&json!({"to_roles": ["reviewer"]}))
            .unwrap()
            .unwrap();
        assert!(only_roles.admits(&tags(&["reviewer"], &[])));
        assert!(!only_roles.admits(&tags(&[], &[])));
        assert_eq!(Route::of_payload(&json!({"text": "hi"})).unwrap(), None);
    }

    #[test]
    fn routing_rooms_need_the_declaration_and_globs_that_reach_them_are_seen() {
        let t = tags(&["reviewer"], &["rust"]);
        assert!(may_read_room("roles.reviewer", &t));
        assert!(!may_read_room("roles.general", &t));
        assert!(may_read_room("expertise.rust", &t));
        assert!(!may_read_room("expertise.go", &t));
        assert!(may_read_room("bip-43", &t));
        for g in ["*", "r*", "roles.*", "roles.rev*", "exp*", "expertise.*"] {
            assert!(glob_may_cover_routing_rooms(g), "{g}");
        }
        for g in ["bip-*", "rooms*", "x*", "rolesx*"] {
            assert!(!glob_may_cover_routing_rooms(g), "{g}");
        }
    }

    #[test]
    fn bad_lists_are_refused_naming_the_field() {
        for bad in [
            json!({"to_roles": "reviewer"}),
            json!({"to_roles": ["Reviewer"]}),
            json!({"required_expertise": [""]}),
            json!({"to_roles": vec!["r"; MAX_TAGS + 1]}),
            json!({"to_roles": ["x".repeat(MAX_TAG_BYTES + 1)]}),
        ] {
            let e = Route::of_payload(&bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidField, "{bad}");
        }
    }
}
