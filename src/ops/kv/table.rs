//! The key-value store's rows: compare-and-set, delete, expiry, get and the paged
//! prefix listing, as SQL over one connection.
//!
//! Every change runs on the store's single writer thread, inside a batch's
//! transaction, one after the other in the order they were enqueued: a
//! compare-and-set reads the key's version and writes the new one with nothing
//! between them, so of two sets naming the same `expected_version` exactly one
//! stores and the other sees the winner's version (`conflict`).
//!
//! Versions are revisions of the whole store (`kv_meta.revision`, +1 per stored
//! value): a key deleted and set again never gets back a version it had, so a
//! compare-and-set cannot succeed against a value it never read. `0` names "no such
//! key". An expired value is absent from the moment of its expiry, whether or not
//! the sweeper has removed its row; a write that finds one removes it first.

use rusqlite::{params, Connection, OptionalExtension};

/// The bounds a set is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    pub(crate) keys_per_ns: u64,
    pub(crate) bytes_per_ns: u64,
    pub(crate) keys_total: u64,
    pub(crate) bytes_total: u64,
}

/// A set, as the writer applies it.
#[derive(Debug, Clone)]
pub(crate) struct SetReq {
    pub(crate) ns: String,
    pub(crate) key: String,
    /// The value's JSON text.
    pub(crate) value: String,
    pub(crate) expected: Option<u64>,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) now_ms: u64,
}

/// What a set or a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored (or deleted); the value's new (or last) version.
    Done { version: u64 },
    /// `expected_version` was not the current one (`0`: no such key).
    Conflict { current: u64 },
    /// A delete of a key that does not exist.
    Missing,
    /// A bound would be passed: its name and value.
    Full { limit: &'static str, max: u64 },
}

/// One stored value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) version: u64,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) updated_ms: u64,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The key's live version and bytes; an expired row is removed on the way.
fn live(c: &Connection, ns: &str, key: &str, now: u64) -> rusqlite::Result<Option<(u64, u64)>> {
    let row: Option<(i64, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT version, bytes, expires_ms FROM kv_entries WHERE ns = ?1 AND key = ?2",
        )?
        .query_row(params![ns, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        None => Ok(None),
        Some((_, bytes, Some(exp))) if to_u64(exp) <= now => {
            remove(c, ns, key, to_u64(bytes))?;
            Ok(None)
        }
        Some((v, bytes, _)) => Ok(Some((to_u64(v), to_u64(bytes)))),
    }
}

/// Deletes a row and takes it off the counts.
fn remove(c: &Connection, ns: &str, key: &str, bytes: u64) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM kv_entries WHERE ns = ?1 AND key = ?2")?
        .execute(params![ns, key])?;
    count(c, ns, -1, -to_i64(bytes))
}

/// Adds to a namespace's and the store's counts.
fn count(c: &Connection, ns: &str, keys: i64, bytes: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO kv_namespaces (ns, keys, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT(ns) DO UPDATE SET keys = keys + ?2, bytes = bytes + ?3",
    )?
    .execute(params![ns, keys, bytes])?;
    c.prepare_cached("DELETE FROM kv_namespaces WHERE ns = ?1 AND keys <= 0")?
        .execute([ns])?;
    let mut meta = c.prepare_cached("UPDATE kv_meta SET value = value + ?2 WHERE name = ?1")?;
    meta.execute(params!["keys", keys])?;
    meta.execute(params!["bytes", bytes])?;
    Ok(())
}

fn meta(c: &Connection, name: &str) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT value FROM kv_meta WHERE name = ?1")?
        .query_row([name], |r| r.get::<_, i64>(0))
        .map(to_u64)
}

fn ns_counts(c: &Connection, ns: &str) -> rusqlite::Result<(u64, u64)> {
    Ok(
        c.prepare_cached("SELECT keys, bytes FROM kv_namespaces WHERE ns = ?1")?
            .query_row([ns], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
            .optional()?
            .unwrap_or((0, 0)),
    )
}

/// Applies a compare-and-set.
pub(crate) fn set(c: &Connection, r: &SetReq, q: Quota) -> rusqlite::Result<Outcome> {
    let old = live(c, &r.ns, &r.key, r.now_ms)?;
    let current = old.map_or(0, |(v, _)| v);
    if r.expected.is_some_and(|e| e != current) {
        return Ok(Outcome::Conflict { current });
    }
    let bytes = (r.key.len() + r.value.len()) as u64;
    let (add_keys, old_bytes) = match old {
        Some((_, b)) => (0, b),
        None => (1, 0),
    };
    let (ns_keys, ns_bytes) = ns_counts(c, &r.ns)?;
    let grow = bytes.saturating_sub(old_bytes);
    let checks = [
        (
            "keys_per_namespace",
            ns_keys + add_keys,
            q.keys_per_ns,
            add_keys > 0,
        ),
        (
            "bytes_per_namespace",
            ns_bytes + grow,
            q.bytes_per_ns,
            grow > 0,
        ),
        (
            "keys_total",
            meta(c, "keys")? + add_keys,
            q.keys_total,
            add_keys > 0,
        ),
        (
            "bytes_total",
            meta(c, "bytes")? + grow,
            q.bytes_total,
            grow > 0,
        ),
    ];
    // Only a write that grows a count is refused for it: a namespace over a bound
    // lowered since can still shrink.
    if let Some((limit, _, max, _)) = checks.iter().find(|(_, n, max, grows)| *grows && n > max) {
        return Ok(Outcome::Full { limit, max: *max });
    }
    let version = meta(c, "revision")? + 1;
    c.prepare_cached("UPDATE kv_meta SET value = ?1 WHERE name = 'revision'")?
        .execute([to_i64(version)])?;
    c.prepare_cached(
        "INSERT INTO kv_entries (ns, key, value, version, bytes, expires_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(ns, key) DO UPDATE SET value = ?3, version = ?4, bytes = ?5,
             expires_ms = ?6, updated_ms = ?7",
    )?
    .execute(params![
        r.ns,
        r.key,
        r.value,
        to_i64(version),
        to_i64(bytes),
        r.expires_ms.map(to_i64),
        to_i64(r.now_ms)
    ])?;
    count(
        c,
        &r.ns,
        to_i64(add_keys),
        to_i64(bytes) - to_i64(old_bytes),
    )?;
    Ok(Outcome::Done { version })
}

/// Deletes a key, when `expected` (if given) is its version.
pub(crate) fn delete(
    c: &Connection,
    ns: &str,
    key: &str,
    expected: Option<u64>,
    now: u64,
) -> rusqlite::Result<Outcome> {
    let old = live(c, ns, key, now)?;
    let current = old.map_or(0, |(v, _)| v);
    if expected.is_some_and(|e| e != current) {
        return Ok(Outcome::Conflict { current });
    }
    match old {
        None => Ok(Outcome::Missing),
        Some((version, bytes)) => {
            remove(c, ns, key, bytes)?;
            Ok(Outcome::Done { version })
        }
    }
}

/// Removes up to `max` values expired at `now`; returns how many.
pub(crate) fn sweep(c: &Connection, now: u64, max: usize) -> rusqlite::Result<usize> {
    let rows: Vec<(String, String, i64)> = c
        .prepare_cached(
            "SELECT ns, key, bytes FROM kv_entries
             WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 LIMIT ?2",
        )?
        .query_map(params![to_i64(now), max as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (ns, key, bytes) in &rows {
        remove(c, ns, key, to_u64(*bytes))?;
    }
    Ok(rows.len())
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        key: r.get(0)?,
        value: r.get(1)?,
        version: to_u64(r.get(2)?),
        expires_ms: r.get::<_, Option<i64>>(3)?.map(to_u64),
        updated_ms: to_u64(r.get(4)?),
    })
}

/// The live value of a key.
pub(crate) fn get(
    c: &Connection,
    ns: &str,
    key: &str,
    now: u64,
) -> rusqlite::Result<Option<Entry>> {
    c.prepare_cached(
        "SELECT key, value, version, expires_ms, updated_ms FROM kv_entries
         WHERE ns = ?1 AND key = ?2 AND (expires_ms IS NULL OR expires_ms > ?3)",
    )?
    .query_row(params![ns, key, to_i64(now)], entry)
    .optional()
}

/// One page of a prefix listing.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) entries: Vec<Entry>,
    /// The last key of this page, when more may follow.
    pub(crate) more_after: Option<String>,
}

/// Live keys of `ns` starting with `prefix`, in byte order, after `after`: at most
/// `limit` of them and, past the first, no more than `max_bytes` of values.
pub(crate) fn list(
    c: &Connection,
    ns: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    max_bytes: usize,
    now: u64,
) -> rusqlite::Result<Page> {
    // `key >= prefix` starts the range scan at the prefix; keys sort bytewise
    // (BINARY collation), so every key with the prefix follows it contiguously.
    let mut st = c.prepare_cached(
        "SELECT key, value, version, expires_ms, updated_ms FROM kv_entries
         WHERE ns = ?1 AND key >= ?2 AND key > ?3
           AND substr(key, 1, length(?2)) = ?2
           AND (expires_ms IS NULL OR expires_ms > ?4)
         ORDER BY key LIMIT ?5",
    )?;
    let rows = st.query_map(
        params![
            ns,
            prefix,
            after.unwrap_or(""),
            to_i64(now),
            (limit + 1) as i64
        ],
        entry,
    )?;
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    for e in rows {
        let e = e?;
        if entries.len() == limit || (!entries.is_empty() && bytes + e.value.len() > max_bytes) {
            more = true;
            break;
        }
        bytes += e.value.len();
        entries.push(e);
    }
    let more_after = if more {
        entries.last().map(|e| e.key.clone())
    } else {
        None
    };
    Ok(Page {
        entries,
        more_after,
    })
}

/// The opaque cursor for "after this key": `c1.` and the key's bytes in hex, so that
/// any key survives the trip and a client has no reason to build one.
pub(crate) fn cursor_of(key: &str) -> String {
    let mut s = String::with_capacity(3 + key.len() * 2);
    s.push_str("c1.");
    for b in key.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The key a cursor stands for; `None` when it is not one this store made.
pub(crate) fn key_of_cursor(cursor: &str) -> Option<String> {
    let hex = cursor.strip_prefix("c1.")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};

    fn req(key: &str, expected: Option<u64>) -> SetReq {
        SetReq {
            ns: "id:a".into(),
            key: key.into(),
            value: "1".into(),
            expected,
            expires_ms: None,
            now_ms: 10,
        }
    }

    const Q: Quota = Quota {
        keys_per_ns: 2,
        bytes_per_ns: 1000,
        keys_total: 10,
        bytes_total: 10_000,
    };

    #[test]
    fn versions_never_come_back_and_counts_follow_every_write() {
        let opened = Store::open(
            None,
            StoreOptions::default(),
            &[&super::super::schema::SCHEMA],
        )
        .unwrap();
        let c = opened.conn();
        assert_eq!(
            set(c, &req("a", Some(0)), Q).unwrap(),
            Outcome::Done { version: 1 }
        );
        assert_eq!(
            set(c, &req("a", Some(0)), Q).unwrap(),
            Outcome::Conflict { current: 1 }
        );
        assert_eq!(
            delete(c, "id:a", "a", Some(1), 10).unwrap(),
            Outcome::Done { version: 1 }
        );
        // Set again after a delete: a new revision, not 1 again.
        assert_eq!(
            set(c, &req("a", None), Q).unwrap(),
            Outcome::Done { version: 2 }
        );
        assert_eq!(
            set(c, &req("b", None), Q).unwrap(),
            Outcome::Done { version: 3 }
        );
        assert_eq!(
            set(c, &req("c", None), Q).unwrap(),
            Outcome::Full {
                limit: "keys_per_namespace",
                max: 2
            }
        );
        // Overwriting an existing key does not grow the count.
        assert_eq!(
            set(c, &req("b", None), Q).unwrap(),
            Outcome::Done { version: 4 }
        );
        assert_eq!(ns_counts(c, "id:a").unwrap(), (2, 4));
        let mut r = req("b", None);
        r.expires_ms = Some(20);
        set(c, &r, Q).unwrap();
        assert!(get(c, "id:a", "b", 19).unwrap().is_some());
        assert!(get(c, "id:a", "b", 20).unwrap().is_none());
        assert_eq!(sweep(c, 20, 100).unwrap(), 1);
        assert_eq!(ns_counts(c, "id:a").unwrap(), (1, 2));
        assert_eq!(meta(c, "keys").unwrap(), 1);
    }

    #[test]
    fn cursors_round_trip_any_key_and_refuse_forgeries() {
        for k in ["", "a/b", "ключ", "\u{1f41d}"] {
            assert_eq!(key_of_cursor(&cursor_of(k)).as_deref(), Some(k));
        }
        assert_eq!(key_of_cursor("c1.f"), None);
        assert_eq!(key_of_cursor("c1.ff"), None);
        assert_eq!(key_of_cursor("zz"), None);
    }
}
