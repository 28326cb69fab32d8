//! The SQLite schema and connection settings of the queue store.
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
//! were the largest part of the writer's statement time). A database made before
//! keeps its rowid layout; every statement works on both.

use rusqlite::Connection;

/// Creates tables and indexes when absent.
pub(crate) const SCHEMA: &str = "
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

/// Opens (creating) the database in WAL mode with the chosen `synchronous` level.
///
/// # Errors
/// SQLite errors from opening or from the pragmas.
pub(crate) fn open(path: Option<&std::path::Path>, full: bool) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    // journal_mode returns a row, so it is read rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(if full {
        "PRAGMA synchronous=FULL;"
    } else {
        "PRAGMA synchronous=NORMAL;"
    })?;
    // 4 MiB of page cache holds the hot pages (every insert appends: growing ids).
    // A bigger cache costs CPU at every commit: SQLite ends each write transaction
    // by truncating its page cache (`pcache1TruncateUnsafe`), whose scan grows with
    // the cache's hash table; with 64 MiB it was 3-5 % of the broker's CPU under a
    // steady flow of tasks, and it fell out of the profile at 4 MiB. Checkpoints
    // every 8192 WAL pages (32 MiB) amortise their fsyncs over many commits.
    conn.execute_batch(
        "PRAGMA busy_timeout=5000; PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-4096; PRAGMA wal_autocheckpoint=8192;",
    )?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}
