//! The cron operator's table, its migrations (operator `cron` in the store's
//! `schema_versions`) and its rows.
//!
//! `cron_schedules` holds one row per live schedule, its whole record as JSON in
//! `body`; the runner keeps every schedule in memory and writes a row whenever one
//! changes (made, fired, skipped, cancelled). All are read back at open.
//!
//! Versions:
//! 1. `cron_schedules (id, owner, body)`.

use super::model::Schedule;
use crate::store::{Batch, Migration, Schema};
use rusqlite::{params, Connection, Transaction};

/// The cron operator's schema, for [`Store::open`](crate::store::Store::open).
pub(crate) static SCHEMA: Schema = Schema {
    operator: "cron",
    steps: &[Migration {
        what: "cron_schedules",
        apply: v1,
    }],
    unrecorded: None,
};

fn v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE cron_schedules (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            body TEXT NOT NULL
        ) WITHOUT ROWID",
    )
}

const PUT: &str = "INSERT INTO cron_schedules (id, owner, body) VALUES (?1, ?2, ?3)
    ON CONFLICT(id) DO UPDATE SET body = excluded.body";
const DELETE: &str = "DELETE FROM cron_schedules WHERE id = ?1";

/// A write of one schedule's row.
pub(crate) fn put(
    s: &Schedule,
) -> impl FnOnce(&mut Batch<'_>) -> rusqlite::Result<()> + Send + 'static {
    let (id, owner) = (s.id.clone(), s.owner.clone());
    // A record this operator made always serializes.
    let body = serde_json::to_string(s).unwrap_or_default();
    move |b: &mut Batch<'_>| b.prepare(PUT)?.execute(params![id, owner, body]).map(drop)
}

/// The removal of one schedule's row.
pub(crate) fn delete(
    id: &str,
) -> impl FnOnce(&mut Batch<'_>) -> rusqlite::Result<()> + Send + 'static {
    let id = id.to_owned();
    move |b: &mut Batch<'_>| b.prepare(DELETE)?.execute([id]).map(drop)
}

/// Every stored schedule; a row that does not parse is logged and left alone.
pub(crate) fn load(c: &Connection) -> rusqlite::Result<Vec<Schedule>> {
    let mut st = c.prepare("SELECT id, body FROM cron_schedules")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, body) = row?;
        match serde_json::from_str::<Schedule>(&body) {
            Ok(s) => out.push(s),
            Err(e) => {
                tracing::error!(%id, error = %e, "cron: a stored schedule does not parse; left in place")
            }
        }
    }
    Ok(out)
}
