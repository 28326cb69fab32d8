//! Addresses: where a message goes and what a subscription covers.
//!
//! An [`Address`] is `room:channel`, the unit of ordering, offsets and history. A
//! [`Pattern`] is what a session joins: an exact address, a whole room (`room`, the same
//! as `room:*`), or a glob with `*` in either part (`bip-43:*`, `roles.*`, `*:alerts`).
//! Names follow one grammar, `[a-z0-9][a-z0-9._-]{0,63}`, checked here once so that the
//! rest of the crate can trust any `Address` it holds.

use std::fmt;

/// Longest room or channel name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a string is not a valid address or pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// A name is empty.
    #[error("empty name in address `{0}`")]
    Empty(String),
    /// A name is longer than [`MAX_NAME_LEN`].
    #[error("name longer than {MAX_NAME_LEN} bytes in address `{0}`")]
    TooLong(String),
    /// A name uses a character outside `[a-z0-9._-]`, or starts with `.`, `_` or `-`.
    #[error("invalid name in address `{0}`: names are [a-z0-9][a-z0-9._-]{{0,63}}")]
    BadChar(String),
    /// More than one `:` separator.
    #[error("address `{0}` has more than one `:`")]
    TooManyParts(String),
    /// A wildcard where an exact address is needed.
    #[error("address `{0}` has a wildcard where an exact room:channel is needed")]
    Wildcard(String),
    /// A room without a channel where an exact address is needed.
    #[error("address `{0}` names a room; a channel is needed (room:channel)")]
    ChannelRequired(String),
}

/// An exact `room:channel` address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    room: String,
    channel: String,
}

impl Address {
    /// Builds an address from a room and a channel name, validating both.
    ///
    /// # Errors
    /// [`AddressError`] when either name breaks the grammar.
    ///
    /// ```
    /// let a = hivebus::Address::new("bip-43", "implement_bip").unwrap();
    /// assert_eq!(a.to_string(), "bip-43:implement_bip");
    /// ```
    pub fn new(room: &str, channel: &str) -> Result<Self, AddressError> {
        let whole = || format!("{room}:{channel}");
        check_name(room, false).map_err(|k| k.with(whole()))?;
        check_name(channel, false).map_err(|k| k.with(whole()))?;
        Ok(Address {
            room: room.to_owned(),
            channel: channel.to_owned(),
        })
    }

    /// Parses `room:channel`.
    ///
    /// # Errors
    /// [`AddressError`] for a bad name, a missing channel or a wildcard.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        match Pattern::parse(s)? {
            Pattern::Exact(a) => Ok(a),
            Pattern::Room(_) => Err(AddressError::ChannelRequired(s.to_owned())),
            Pattern::Glob { .. } => Err(AddressError::Wildcard(s.to_owned())),
        }
    }

    /// Builds an address from the `room` and `channel` fields of an envelope: either
    /// both are given, or `room` holds `room:channel` and `channel` is absent.
    ///
    /// # Errors
    /// [`AddressError`] as for [`Address::parse`].
    pub fn from_parts(room: &str, channel: Option<&str>) -> Result<Self, AddressError> {
        match channel {
            Some(c) => Address::new(room, c),
            None => Address::parse(room),
        }
    }

    /// The room name.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.room, self.channel)
    }
}

/// What a subscription covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One channel.
    Exact(Address),
    /// Every channel of one room, present and future (`room` or `room:*`).
    Room(String),
    /// A glob: `*` matches any run of name characters within its part.
    Glob {
        /// Room part, possibly with `*`.
        room: String,
        /// Channel part, possibly with `*`.
        channel: String,
    },
}

impl Pattern {
    /// Parses `room`, `room:channel`, or either part with `*` wildcards.
    ///
    /// # Errors
    /// [`AddressError`] when a part breaks the grammar.
    ///
    /// ```
    /// use hivebus::{Address, Pattern};
    /// let p = Pattern::parse("bip-43:*").unwrap();
    /// assert!(p.matches(&Address::parse("bip-43:review_bip").unwrap()));
    /// assert!(!p.matches(&Address::parse("bip-44:review_bip").unwrap()));
    /// ```
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let mut parts = s.split(':');
        let room = parts.next().unwrap_or_default();
        let channel = parts.next();
        if parts.next().is_some() {
            return Err(AddressError::TooManyParts(s.to_owned()));
        }
        check_name(room, true).map_err(|k| k.with(s.to_owned()))?;
        if let Some(c) = channel {
            check_name(c, true).map_err(|k| k.with(s.to_owned()))?;
        }
        let room_glob = room.contains('*');
        Ok(match channel {
            None | Some("*") if !room_glob => Pattern::Room(room.to_owned()),
            Some(c) if !room_glob && !c.contains('*') => Pattern::Exact(Address {
                room: room.to_owned(),
                channel: c.to_owned(),
            }),
            _ => Pattern::Glob {
                room: room.to_owned(),
                channel: channel.unwrap_or("*").to_owned(),
            },
        })
    }

    /// Whether this pattern covers `addr`.
    pub fn matches(&self, addr: &Address) -> bool {
        match self {
            Pattern::Exact(a) => a == addr,
            Pattern::Room(r) => r == addr.room(),
            Pattern::Glob { room, channel } => {
                glob_match(room, addr.room()) && glob_match(channel, addr.channel())
            }
        }
    }

    /// The exact address, when this pattern is one.
    pub fn as_exact(&self) -> Option<&Address> {
        match self {
            Pattern::Exact(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(a) => a.fmt(f),
            Pattern::Room(r) => write!(f, "{r}:*"),
            Pattern::Glob { room, channel } => write!(f, "{room}:{channel}"),
        }
    }
}

/// The kind of grammar error, before the whole address is attached.
enum NameError {
    Empty,
    TooLong,
    BadChar,
    Wildcard,
}

impl NameError {
    fn with(self, whole: String) -> AddressError {
        match self {
            NameError::Empty => AddressError::Empty(whole),
            NameError::TooLong => AddressError::TooLong(whole),
            NameError::BadChar => AddressError::BadChar(whole),
            NameError::Wildcard => AddressError::Wildcard(whole),
        }
    }
}

fn check_name(name: &str, allow_glob: bool) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let bytes = name.as_bytes();
    let first_ok =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || (allow_glob && b == b'*');
    if !first_ok(bytes[0]) {
        return Err(NameError::BadChar);
    }
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {}
            b'*' if allow_glob => {}
            b'*' => return Err(NameError::Wildcard),
            _ => return Err(NameError::BadChar),
        }
    }
    Ok(())
}

/// Glob match where `*` stands for any run of characters (names never contain `*`).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_room_and_glob_patterns_parse_to_their_kind() {
        assert!(matches!(Pattern::parse("a:b"), Ok(Pattern::Exact(_))));
        assert_eq!(Pattern::parse("a"), Ok(Pattern::Room("a".into())));
        assert_eq!(Pattern::parse("a:*"), Ok(Pattern::Room("a".into())));
        assert!(matches!(
            Pattern::parse("roles.*"),
            Ok(Pattern::Glob { .. })
        ));
        assert!(matches!(
            Pattern::parse("*:alerts"),
            Ok(Pattern::Glob { .. })
        ));
    }

    #[test]
    fn grammar_violations_are_rejected() {
        for bad in [
            "", ":", "A:b", "a:B", "-a", "a:", "a:b:c", "a b", "é", "a:_x",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Pattern::parse(&"x".repeat(65)).is_err());
        assert!(Pattern::parse(&"x".repeat(64)).is_ok());
        assert!(matches!(
            Address::parse("a:*"),
            Err(AddressError::ChannelRequired(_))
        ));
        assert!(matches!(
            Address::parse("a"),
            Err(AddressError::ChannelRequired(_))
        ));
        assert!(matches!(
            Address::parse("a*:b"),
            Err(AddressError::Wildcard(_))
        ));
        assert!(matches!(
            Address::new("a", "b*"),
            Err(AddressError::Wildcard(_))
        ));
    }

    #[test]
    fn globs_match_within_their_part_only() {
        let a = |s| Address::parse(s).unwrap();
        let p = Pattern::parse("roles.*").unwrap();
        assert!(p.matches(&a("roles.dev:general")));
        assert!(!p.matches(&a("roles:general")));
        let p = Pattern::parse("bip-*:review_*").unwrap();
        assert!(p.matches(&a("bip-43:review_bip")));
        assert!(p.matches(&a("bip-1:review_")));
        assert!(!p.matches(&a("bip-43:implement_bip")));
        let p = Pattern::parse("*a*b*:*").unwrap();
        assert!(p.matches(&a("xaxbx:c")));
        assert!(!p.matches(&a("xbxax:c")));
        assert!(Pattern::parse("*:alerts")
            .unwrap()
            .matches(&a("any:alerts")));
    }
}
