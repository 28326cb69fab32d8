//! Scope: which addresses the policy covers, as include and exclude globs.
//!
//! Globs use the address grammar of [`crate::address::Pattern`]: `secure-*` is every
//! channel of the rooms whose name starts with `secure-`, `bip-*:review_*` the review
//! channels of every BIP room. An empty include list covers every address.

use crate::address::{Address, Pattern};
use crate::error::{ErrorCode, WireError};

/// Compiled include / exclude globs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Scope {
    /// Parses both lists.
    ///
    /// # Errors
    /// `invalid_field` naming the glob that breaks the address grammar.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, WireError> {
        let parse = |list: &[String], what: &str| {
            list.iter()
                .map(|g| {
                    Pattern::parse(g).map_err(|e| {
                        WireError::new(ErrorCode::InvalidField, format!("safety.{what}: {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Scope {
            include: parse(include, "include")?,
            exclude: parse(exclude, "exclude")?,
        })
    }

    /// Whether a publish at `addr` (None for PRIVATE frames) is inspected.
    pub(crate) fn covers(&self, addr: Option<&Address>) -> bool {
        match addr {
            None => self.include.is_empty(),
            Some(a) => {
                (self.include.is_empty() || self.include.iter().any(|p| p.matches(a)))
                    && !self.exclude.iter().any(|p| p.matches(a))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn include_and_exclude_globs_select_addresses() {
        let sc = Scope::new(&s(&["secure-*", "bip-*:review_*"]), &s(&["secure-lab:*"])).unwrap();
        let a = |x| Address::parse(x).unwrap();
        assert!(sc.covers(Some(&a("secure-ops:general"))));
        assert!(sc.covers(Some(&a("bip-43:review_bip"))));
        assert!(!sc.covers(Some(&a("bip-43:implement_bip"))));
        assert!(!sc.covers(Some(&a("secure-lab:notes"))));
        assert!(
            !sc.covers(None),
            "private frames only when include is empty"
        );
        assert!(Scope::default().covers(None));
        assert!(Scope::new(&s(&["Bad Glob"]), &[]).is_err());
    }
}
