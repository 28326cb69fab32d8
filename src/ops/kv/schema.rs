//! The key-value store's tables and their migrations (operator `kv` in the store's
//! `schema_versions`).
//!
//! `kv_entries` holds one row per live key, keyed by `(ns, key)`: one B-tree
//! (`WITHOUT ROWID`), so a get, a compare-and-set and a prefix listing are each one
//! range of it. `kv_expiry` indexes the rows that carry an expiry, for the sweeper.
//! `kv_namespaces` counts each namespace's keys and bytes and `kv_meta` the totals
//! and the last revision, so that a bound is checked by key, never by a scan; every
//! write that changes a row changes these counts in the same transaction.
//!
//! Versions:
//! 1. `kv_entries`, `kv_expiry`, `kv_namespaces`, `kv_meta`.

use crate::store::{Migration, Schema};
use rusqlite::Transaction;

/// The key-value store's schema, for [`Store::open`](crate::store::Store::open).
pub(crate) static SCHEMA: Schema = Schema {
    operator: "kv",
    steps: &[Migration {
        what: "kv_entries, kv_expiry, kv_namespaces and kv_meta",
        apply: v1,
    }],
    unrecorded: None,
};

fn v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE kv_entries (
            ns TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            version INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            expires_ms INTEGER,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (ns, key)
        ) WITHOUT ROWID;
        CREATE INDEX kv_expiry ON kv_entries (expires_ms) WHERE expires_ms IS NOT NULL;
        CREATE TABLE kv_namespaces (
            ns TEXT PRIMARY KEY,
            keys INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE kv_meta (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO kv_meta (name, value) VALUES ('revision', 0), ('keys', 0), ('bytes', 0);",
    )
}
