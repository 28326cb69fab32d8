//! When a schedule fires: a cron rule in an explicit time zone, or one instant.
//!
//! Rules are standard cron (five fields, minute to weekday, or six with seconds
//! first; Vixie day-of-month OR day-of-week; names and `@daily` aliases), parsed by
//! `croner`. The zone is `UTC` or a fixed offset (`+02:00`, `-05:30`), never a zone
//! name: a fixed offset has no daylight-saving gaps or folds, so a rule never skips
//! or doubles a firing twice a year, and no tz database is compiled in to go stale.
//! A rule meant for local office hours under DST is written per season or in UTC.
//!
//! Invariants: [`Rule::next_after`] is strictly after its argument (a firing never
//! repeats its own instant); a rule whose firings come closer than the configured
//! minimum anywhere in its next [`PROBE`] firings (within a year) is refused when it
//! is made. A search for the next firing is bounded by croner (the year 5000): a
//! rule that never matches costs one such search, which the operator runs off the
//! async workers.

use chrono::{DateTime, FixedOffset};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// How many upcoming firings are checked against the minimum interval...
pub(crate) const PROBE: usize = 64;
/// ...within this long after the first.
const HORIZON_MS: u64 = 366 * 24 * 3600 * 1000;

/// Why a rule was refused; the message is for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecError {
    pub(crate) field: &'static str,
    pub(crate) why: String,
    /// The bound it passed (`min_interval_ms`), when that is why.
    pub(crate) limit: Option<&'static str>,
}

fn err(field: &'static str, why: impl Into<String>) -> SpecError {
    SpecError {
        field,
        why: why.into(),
        limit: None,
    }
}

/// A time zone: UTC or a fixed offset from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Zone(FixedOffset);

impl Zone {
    /// Parses `UTC`, `Z`, or `+HH:MM` / `-HH:MM` (up to 18 hours).
    pub(crate) fn parse(s: &str) -> Result<Zone, SpecError> {
        let bad = || {
            err(
                "tz",
                format!("`{s}` is not a zone: use `UTC` or a fixed offset like `+02:00` (zone names are not accepted)"),
            )
        };
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return FixedOffset::east_opt(0).map(Zone).ok_or_else(bad);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if h > 18 || m > 59 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Zone)
            .ok_or_else(bad)
    }

    /// The canonical spelling: `UTC` or `+HH:MM`.
    pub(crate) fn name(&self) -> String {
        let secs = self.0.local_minus_utc();
        if secs == 0 {
            return "UTC".into();
        }
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.abs();
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    }

    /// `ms` (Unix) as a time in this zone.
    fn at(&self, ms: u64) -> Option<DateTime<FixedOffset>> {
        DateTime::from_timestamp_millis(i64::try_from(ms).ok()?).map(|t| t.with_timezone(&self.0))
    }
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    /// A cron rule in a zone.
    Cron { cron: Box<Cron>, zone: Zone },
    /// Once, at this instant (Unix ms).
    Once { at_ms: u64 },
}

impl Rule {
    /// Parses a cron rule.
    pub(crate) fn cron(expr: &str, zone: Zone) -> Result<Rule, SpecError> {
        if expr.len() > 256 {
            return Err(err("cron", "a cron rule is at most 256 bytes"));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| err("cron", format!("`{expr}` is not a cron rule: {e}")))?;
        Ok(Rule::Cron {
            cron: Box::new(cron),
            zone,
        })
    }

    /// The first firing strictly after `ms`; `None` when there is none (a one-shot
    /// already past, a rule that never matches again).
    pub(crate) fn next_after(&self, ms: u64) -> Option<u64> {
        match self {
            Rule::Once { at_ms } => (*at_ms > ms).then_some(*at_ms),
            Rule::Cron { cron, zone } => {
                let t = zone.at(ms)?;
                let next = cron.find_next_occurrence(&t, false).ok()?;
                u64::try_from(next.timestamp_millis())
                    .ok()
                    .filter(|n| *n > ms)
            }
        }
    }

    /// Refuses a rule that never fires after `now`, or whose next [`PROBE`] firings
    /// come closer than `min_ms`.
    pub(crate) fn check(&self, now: u64, min_ms: u64) -> Result<u64, SpecError> {
        let first = self
            .next_after(now)
            .ok_or_else(|| err("cron", "this rule never fires again"))?;
        if let Rule::Cron { .. } = self {
            let mut prev = first;
            for _ in 0..PROBE {
                // Past a year out the gaps no longer matter: a rule that fires that
                // rarely is far from any minimum, and each search for it is long.
                if prev - first > HORIZON_MS {
                    break;
                }
                let Some(n) = self.next_after(prev) else {
                    break;
                };
                if n - prev < min_ms {
                    let mut e = err(
                        "cron",
                        format!(
                            "this rule fires {} ms apart; the broker's minimum is {min_ms} ms ([cron] min_interval_ms)",
                            n - prev
                        ),
                    );
                    e.limit = Some("min_interval_ms");
                    return Err(e);
                }
                prev = n;
            }
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-01T00:00:00Z.
    const T0: u64 = 1_767_225_600_000;

    #[test]
    fn zones_are_utc_or_fixed_offsets_only() {
        assert_eq!(Zone::parse("UTC").unwrap().name(), "UTC");
        assert_eq!(Zone::parse("+02:00").unwrap().name(), "+02:00");
        assert_eq!(Zone::parse("-05:30").unwrap().name(), "-05:30");
        for bad in ["Europe/Paris", "+2", "+25:00", "02:00", "", "+02:60"] {
            assert_eq!(Zone::parse(bad).unwrap_err().field, "tz", "{bad}");
        }
    }

    #[test]
    fn rules_fire_in_their_zone_and_strictly_after() {
        let utc = Rule::cron("0 9 * * *", Zone::parse("UTC").unwrap()).unwrap();
        assert_eq!(utc.next_after(T0), Some(T0 + 9 * 3_600_000));
        let paris = Rule::cron("0 9 * * *", Zone::parse("+01:00").unwrap()).unwrap();
        assert_eq!(paris.next_after(T0), Some(T0 + 8 * 3_600_000));
        let each = Rule::cron("* * * * *", Zone::parse("UTC").unwrap()).unwrap();
        assert_eq!(each.next_after(T0), Some(T0 + 60_000));
        assert!(Rule::cron("61 * * * *", Zone::parse("UTC").unwrap()).is_err());
        let once = Rule::Once { at_ms: T0 + 5 };
        assert_eq!(once.next_after(T0 + 5), None);
    }

    #[test]
    fn a_rule_that_never_matches_is_refused() {
        let z = Zone::parse("UTC").unwrap();
        let feb30 = Rule::cron("0 0 30 2 *", z).unwrap();
        let e = feb30.check(T0, 60_000).unwrap_err();
        assert_eq!((e.field, e.limit), ("cron", None));
    }

    #[test]
    fn rules_closer_than_the_minimum_are_refused() {
        let z = Zone::parse("UTC").unwrap();
        let secs = Rule::cron("*/10 * * * * *", z).unwrap();
        assert_eq!(
            secs.check(T0, 60_000).unwrap_err().limit,
            Some("min_interval_ms")
        );
        assert_eq!(secs.check(T0, 10_000).unwrap(), T0 + 10_000);
        // Irregular: 00 and 01 past each hour are one minute apart.
        let pair = Rule::cron("0,1 * * * *", z).unwrap();
        assert!(pair.check(T0, 120_000).is_err());
    }
}
