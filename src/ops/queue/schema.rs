//! The queue's SQLite schema and its migrations (operator `queue` in the store's
//! `schema_versions`).
//!
//! `tasks` holds one row per task, its full record as JSON in `body` (the columns beside
//! it exist for recovery and listing queries). `stream` holds each task's published
//! frames by sequence, for replay. `results` is an append-only log of recorded results:
//! its key is a rowid, not the task, so a result recorded twice would show up there
//! (the crash test counts them) instead of being silently overwritten.
//!
//! No secondary indexes: every row is written several times per second per task on
//! the hot path, while the queries that would use an index (recovery at startup,
//! reading a task that left memory) are rare; they scan.
//!
//! `tasks` is `WITHOUT ROWID`: one B-tree keyed by the task id, instead of a rowid
//! table plus the automatic unique index its `TEXT PRIMARY KEY` needs, so each insert
//! and upsert touches one tree, not two (profiled: B-tree inserts and page balancing
//! were the largest part of the writer's statement time).
//!
//! Versions:
//! 1. the tables as the queue created them before versions were recorded. Databases
//!    of that time differ: the oldest have a rowid `tasks` and the indexes
//!    `tasks_state`, `tasks_created` and `results_task`; every statement works on
//!    both layouts.
//! 2. one layout for all: `tasks` rebuilt `WITHOUT ROWID` where it was not, and the
//!    three indexes dropped (each cost a B-tree insert per write, for queries that
//!    scan anyway). Rows are copied as they are.
//! 3. `traces (trace, task)`: the trace ids that are not their task's id, so that
//!    `show` / `stream` of a task that left memory find it by key, never by scanning
//!    `tasks` with `json_extract` on the writer thread (which any client could make
//!    cost 100 ms per lookup at 200 000 tasks, holding every commit). Filled from the
//!    existing rows once, by the migration. A trace id names the first task that took
//!    it (`INSERT OR IGNORE`).

use crate::store::{Migration, Schema};
use rusqlite::{Connection, Transaction};

/// The queue's schema, for [`Store::open`](crate::store::Store::open).
pub(crate) static SCHEMA: Schema = Schema {
    operator: "queue",
    steps: &[
        Migration {
            what: "tasks, stream and results tables",
            apply: v1_tables,
        },
        Migration {
            what: "tasks WITHOUT ROWID, no secondary indexes",
            apply: v2_layout,
        },
        Migration {
            what: "traces: trace ids that are not their task's id, by key",
            apply: v3_traces,
        },
    ],
    unrecorded: Some(unrecorded),
};

/// Version 1's tables, as the queue created them when it recorded no version.
const V1: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    idem TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream (
    task TEXT NOT NULL,
    seq INTEGER NOT NULL,
    frame TEXT NOT NULL,
    PRIMARY KEY (task, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
";

fn v1_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(V1)
}

fn v2_layout(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rowid: bool = tx.query_row(
        "SELECT NOT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'tasks'",
        [],
        |r| r.get(0),
    )?;
    if rowid {
        // Dropping the old table drops its indexes with it.
        tx.execute_batch(
            "CREATE TABLE tasks_v2 (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                kind TEXT NOT NULL,
                idem TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL,
                body TEXT NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO tasks_v2 (id, state, kind, idem, created_ms, updated_ms, body)
                SELECT id, state, kind, idem, created_ms, updated_ms, body FROM tasks;
            DROP TABLE tasks;
            ALTER TABLE tasks_v2 RENAME TO tasks;",
        )?;
    }
    tx.execute_batch(
        "DROP INDEX IF EXISTS tasks_state;
         DROP INDEX IF EXISTS tasks_created;
         DROP INDEX IF EXISTS results_task;",
    )
}

fn v3_traces(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE traces (
            trace TEXT PRIMARY KEY,
            task TEXT NOT NULL
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO traces (trace, task)
            SELECT json_extract(body, '$.trace_id'), id FROM tasks
            WHERE json_extract(body, '$.trace_id') IS NOT NULL
              AND json_extract(body, '$.trace_id') != id
            ORDER BY created_ms;",
    )
}

/// A database with a `tasks` table and no recorded version was written by the queue
/// before versions were recorded: version 1.
fn unrecorded(conn: &Connection) -> rusqlite::Result<u32> {
    let tasks: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tasks')",
        [],
        |r| r.get(0),
    )?;
    Ok(u32::from(tasks))
}

/// Upserts a task row; the columns a row never changes (kind, key, creation) keep
/// their first value.
pub(super) const PUT: &str =
    "INSERT INTO tasks (id, state, kind, idem, created_ms, updated_ms, body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT(id) DO UPDATE SET
        state = excluded.state, updated_ms = excluded.updated_ms, body = excluded.body";

/// Records a trace id that is not its task's id; the first task to take it keeps it.
pub(super) const TRACE: &str = "INSERT OR IGNORE INTO traces (trace, task) VALUES (?1, ?2)";

/// The id of the task `?1` names: a task id first, else a trace id. Two key lookups.
pub(super) const TASK_OF: &str = "COALESCE(
        (SELECT id FROM tasks WHERE id = ?1),
        (SELECT task FROM traces WHERE trace = ?1))";

/// Stores one frame of a task's stream.
pub(super) const STREAM: &str =
    "INSERT OR REPLACE INTO stream (task, seq, frame) VALUES (?1, ?2, ?3)";

/// Appends a recorded result.
pub(super) const RESULT: &str =
    "INSERT INTO results (task, attempt, at_ms, body) VALUES (?1, ?2, ?3, ?4)";

/// The tasks recovery loads: not final, dead or failed, or created since `?1`.
pub(super) const RECOVER: &str = "SELECT id, body FROM tasks
     WHERE state NOT IN ('succeeded', 'cancelled') OR created_ms >= ?1
     ORDER BY created_ms";

/// The last stored stream sequence of a task.
pub(super) const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM stream WHERE task = ?1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{versions, Store, StoreOptions};

    static OTHER: Schema = Schema {
        operator: "other",
        steps: &[Migration {
            what: "other_items",
            apply: |tx| tx.execute_batch("CREATE TABLE other_items (id TEXT PRIMARY KEY)"),
        }],
        unrecorded: None,
    };

    #[test]
    fn the_queue_and_another_operator_share_one_database_and_one_writer() {
        let opened = Store::open(None, StoreOptions::default(), &[&SCHEMA, &OTHER]).unwrap();
        assert_eq!(
            versions(opened.conn()).unwrap(),
            [("other".to_owned(), 1), ("queue".to_owned(), 3)]
        );
        let store = opened.start().unwrap();
        // Both operators' writes, one writer, one order.
        store.write(|b: &mut crate::store::Batch<'_>| {
            b.execute("INSERT INTO other_items VALUES ('o')", [])
                .map(drop)
        });
        store.write(|b: &mut crate::store::Batch<'_>| {
            b.prepare(STREAM)?
                .execute(rusqlite::params!["t", 1, "{}"])
                .map(drop)
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n: i64 = rt
            .block_on(
                store
                    .read(|c| {
                        c.query_row(
                            "SELECT (SELECT COUNT(*) FROM other_items) + (SELECT COUNT(*) FROM stream)",
                            [],
                            |r| r.get(0),
                        )
                    })
                    .wait(),
            )
            .unwrap();
        assert_eq!(n, 2);
        store.close();
    }

    #[test]
    fn a_task_is_found_by_id_or_trace_by_key_never_by_scanning_tasks() {
        let opened = Store::open(None, StoreOptions::default(), &[&SCHEMA]).unwrap();
        let plan: Vec<String> = opened
            .conn()
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT body FROM tasks WHERE id = {TASK_OF}"
            ))
            .unwrap()
            .query_map(["tr-1"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().all(|p| !p.starts_with("SCAN")), "{plan:?}");
        assert!(plan.iter().any(|p| p.contains("traces")), "{plan:?}");
    }

    #[test]
    fn a_fresh_database_has_the_tasks_table_without_rowid() {
        let opened = Store::open(None, StoreOptions::default(), &[&SCHEMA]).unwrap();
        let wr: bool = opened
            .conn()
            .query_row(
                "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'tasks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(wr);
    }
}
