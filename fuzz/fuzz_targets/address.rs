//! Fuzz target: the address grammar. Parsing never panics; whatever parses prints back
//! to a string that parses to the same pattern; an exact pattern matches its address.
#![no_main]

use hivebus::{Address, Pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (left, right) = text.split_once('\n').unwrap_or((text, "a:b"));
    if let Ok(p) = Pattern::parse(left) {
        assert_eq!(Pattern::parse(&p.to_string()).as_ref(), Ok(&p));
        if let Ok(a) = Address::parse(right) {
            let _ = p.matches(&a);
            assert!(Pattern::Exact(a.clone()).matches(&a));
        }
        if let Some(a) = p.as_exact() {
            assert!(p.matches(a));
        }
    }
    if let Ok(a) = Address::parse(left) {
        assert_eq!(Address::parse(&a.to_string()).as_ref(), Ok(&a));
    }
});
