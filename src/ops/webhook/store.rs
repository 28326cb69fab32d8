//! The webhook operator's durable state: its schema (operator `webhook` in the store's
//! `schema_versions`), its writes and the read that reloads it at start.
//!
//! `webhook_registrations` holds one row per registration (the secret too: the broker
//! signs with it). `webhook_deadletters` holds each registration's dead letters by
//! sequence; a write that adds one also deletes the older ones the in-memory list let go
//! (beyond `deadletter_max` or `deadletter_max_bytes`), in the same transaction, so
//! the table holds what the list holds.
//! Unregistering deletes both in one transaction.
//!
//! Versions:
//! 1. both tables.

use super::model::{DeadLetter, Registration};
use crate::address::Pattern;
use crate::store::{Batch, Migration, Opened, Schema, Store, StoreError, StoreOptions};
use rusqlite::{params, Connection, Transaction};
use std::path::Path;

/// The webhook operator's schema.
pub(crate) static SCHEMA: Schema = Schema {
    operator: "webhook",
    steps: &[Migration {
        what: "webhook_registrations and webhook_deadletters",
        apply: v1_tables,
    }],
    unrecorded: None,
};

fn v1_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE webhook_registrations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            pattern TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE webhook_deadletters (
            reg TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (reg, seq)
        ) WITHOUT ROWID;",
    )
}

/// What the store held at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Each registration, oldest first, with its dead letters (oldest first).
    pub(crate) registrations: Vec<(Registration, Vec<DeadLetter>)>,
    /// Rows that could not be read back (a pattern or URL this build refuses); left in
    /// the table, logged, not served.
    pub(crate) skipped: usize,
}

/// The operator's handle on its store; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct HookStore {
    store: Store,
}

impl HookStore {
    /// Opens (migrating) the database, reads the registrations back, starts the writer.
    pub(crate) fn open(path: Option<&Path>) -> Result<(HookStore, Loaded), StoreError> {
        let opened: Opened = Store::open(path, StoreOptions::default(), &[&SCHEMA])?;
        let loaded = load(opened.conn())?;
        let store = opened.start()?;
        Ok((HookStore { store }, loaded))
    }

    /// Stores a registration; resolves once it is durable.
    pub(crate) async fn put(&self, r: &Registration) -> Result<(), StoreError> {
        let (id, owner, pattern, url, secret, created) = (
            r.id.clone(),
            r.owner.clone(),
            r.pattern.to_string(),
            r.url.to_string(),
            r.secret.clone(),
            r.created_ms as i64,
        );
        self.store.write(move |b: &mut Batch<'_>| {
            b.execute(
                "INSERT INTO webhook_registrations (id, owner, pattern, url, secret, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, owner, pattern, url, secret, created],
            )
            .map(drop)
        });
        self.store.ack().wait().await
    }

    /// Removes a registration and its dead letters; resolves once it is durable.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.store.write(move |b: &mut Batch<'_>| {
            b.execute("DELETE FROM webhook_registrations WHERE id = ?1", [&id])?;
            b.execute("DELETE FROM webhook_deadletters WHERE reg = ?1", [&id])
                .map(drop)
        });
        self.store.ack().wait().await
    }

    /// Enqueues a dead letter of `reg`, and the removal of those before `first_kept`.
    pub(crate) fn dead_letter(&self, reg: &str, d: &DeadLetter, first_kept: u64) {
        let (reg, seq) = (reg.to_owned(), d.seq as i64);
        let body = serde_json::to_string(d).unwrap_or_default();
        let floor = i64::try_from(first_kept).unwrap_or(i64::MAX);
        self.store.write(move |b: &mut Batch<'_>| {
            b.execute(
                "INSERT OR REPLACE INTO webhook_deadletters (reg, seq, body) VALUES (?1, ?2, ?3)",
                params![reg, seq, body],
            )?;
            b.execute(
                "DELETE FROM webhook_deadletters WHERE reg = ?1 AND seq < ?2",
                params![reg, floor],
            )
            .map(drop)
        });
    }

    /// Flushes and stops the writer.
    pub(crate) fn close(&self) {
        self.store.close();
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let mut out = Loaded::default();
    let mut regs = conn.prepare(
        "SELECT id, owner, pattern, url, secret, created_ms FROM webhook_registrations
         ORDER BY created_ms, id",
    )?;
    let mut dls =
        conn.prepare("SELECT body FROM webhook_deadletters WHERE reg = ?1 ORDER BY seq")?;
    let rows = regs.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (id, owner, pattern, url, secret, created) = row?;
        let (Ok(pattern), Ok(url)) = (Pattern::parse(&pattern), reqwest::Url::parse(&url)) else {
            tracing::warn!(%id, "webhook: a stored registration no longer parses; skipped");
            out.skipped += 1;
            continue;
        };
        let letters = dls
            .query_map([&id], |r| r.get::<_, String>(0))?
            .filter_map(|b| {
                b.ok()
                    .and_then(|b| serde_json::from_str::<DeadLetter>(&b).ok())
            })
            .collect();
        out.registrations.push((
            Registration {
                id,
                owner,
                pattern,
                url,
                secret,
                created_ms: u64::try_from(created).unwrap_or(0),
            },
            letters,
        ));
    }
    Ok(out)
}
