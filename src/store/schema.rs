//! Schema versions: every operator owns its tables and the steps that migrate them; the
//! store only records, per operator, which version a database holds.
//!
//! Versions live in a table, `schema_versions(operator TEXT PRIMARY KEY, version
//! INTEGER)`, not in SQLite's `PRAGMA user_version`: several operators may share one
//! database file (one writer thread per file, one fsync per commit for all of them),
//! and a single integer per file could not say that the queue is at version 2 while
//! approvals are at version 1, nor let one operator add a version without the others
//! agreeing on a combined number.
//!
//! Invariants:
//! - a database whose version for some operator is newer than the code supports is
//!   refused before anything is written to it (not even the switch to WAL), with an
//!   error naming the operator and both versions;
//! - an older one is migrated step by step in ONE transaction together with the new
//!   version numbers, so a crash during a migration leaves the old schema and the old
//!   version, never a half-migrated database;
//! - version 0 means "none of this operator's tables"; step `i` of a [`Schema`] takes
//!   a database from version `i` to `i + 1`, so the code's version is the number of
//!   steps.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, Transaction};
use std::path::Path;

/// The table that records each operator's version.
const VERSIONS: &str = "CREATE TABLE IF NOT EXISTS schema_versions (
    operator TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)";

/// One operator's schema: its name and the steps that build it.
///
/// Tables of different operators share one namespace in a shared file: a new
/// operator prefixes its tables with its name (the queue's `tasks`, `stream` and
/// `results` predate the rule).
#[derive(Debug)]
pub struct Schema {
    /// The operator's name, its key in `schema_versions` (e.g. `"queue"`).
    pub operator: &'static str,
    /// `steps[i]` migrates from version `i` to `i + 1`; the code's version is
    /// `steps.len()`.
    pub steps: &'static [Migration],
    /// The version of a database this operator wrote before `schema_versions`
    /// existed (it recorded no version); `None` when there is no such past, and an
    /// unrecorded operator is then at version 0.
    pub unrecorded: Option<fn(&Connection) -> rusqlite::Result<u32>>,
}

impl Schema {
    /// The version this code writes.
    pub fn version(&self) -> u32 {
        // Migration lists are a handful of static steps.
        u32::try_from(self.steps.len()).unwrap_or(u32::MAX)
    }
}

/// One migration step of a [`Schema`].
#[derive(Debug)]
pub struct Migration {
    /// What the step does, for the log.
    pub what: &'static str,
    /// Runs inside the migration's transaction.
    pub apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// Opens (creating) the database; nothing is written yet.
pub(super) fn connect(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    conn.execute_batch("PRAGMA busy_timeout=5000;")?;
    Ok(conn)
}

/// The connection settings of the writer; run after [`check`] accepted the file.
pub(super) fn configure(conn: &Connection, full: bool) -> rusqlite::Result<()> {
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
        "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-4096; PRAGMA wal_autocheckpoint=8192;",
    )
}

/// The version `schema` has in this database, read without writing.
fn found(conn: &Connection, schema: &Schema) -> rusqlite::Result<u32> {
    let table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_versions')",
        [],
        |r| r.get(0),
    )?;
    let recorded: Option<i64> = if table {
        conn.query_row(
            "SELECT version FROM schema_versions WHERE operator = ?1",
            [schema.operator],
            |r| r.get(0),
        )
        .optional()?
    } else {
        None
    };
    match (recorded, schema.unrecorded) {
        // A negative or huge number is nothing this code wrote: treat it as newer.
        (Some(v), _) => Ok(u32::try_from(v).unwrap_or(u32::MAX)),
        (None, Some(guess)) => guess(conn),
        (None, None) => Ok(0),
    }
}

/// Refuses the database when any schema in it is newer than the code; returns each
/// schema's version as found.
pub(super) fn check(
    conn: &Connection,
    path: Option<&Path>,
    schemas: &[&Schema],
) -> Result<Vec<u32>, StoreError> {
    let mut versions = Vec::with_capacity(schemas.len());
    for (i, s) in schemas.iter().enumerate() {
        if schemas[..i].iter().any(|o| o.operator == s.operator) {
            return Err(StoreError::DuplicateSchema(s.operator));
        }
        let v = found(conn, s)?;
        if v > s.version() {
            return Err(StoreError::SchemaTooNew {
                operator: s.operator,
                found: v,
                supported: s.version(),
                path: path.map_or_else(|| ":memory:".into(), |p| p.display().to_string()),
            });
        }
        versions.push(v);
    }
    Ok(versions)
}

/// Brings every schema to the code's version and records the versions, in one
/// transaction.
pub(super) fn migrate(
    conn: &mut Connection,
    path: Option<&Path>,
    schemas: &[&Schema],
) -> Result<(), StoreError> {
    // IMMEDIATE: take the write lock before reading, so nothing changes between the
    // versions read here and the steps run (`check` ran before any lock).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = check(&tx, path, schemas)?;
    tx.execute_batch(VERSIONS)?;
    for (s, from) in schemas.iter().zip(found) {
        for (i, step) in s.steps.iter().enumerate().skip(from as usize) {
            let to = u32::try_from(i + 1).unwrap_or(u32::MAX);
            (step.apply)(&tx).map_err(|source| StoreError::Migrate {
                operator: s.operator,
                to,
                source,
            })?;
            tracing::info!(
                operator = s.operator,
                to,
                step = step.what,
                "store: migrated"
            );
        }
        tx.execute(
            "INSERT INTO schema_versions (operator, version) VALUES (?1, ?2)
             ON CONFLICT(operator) DO UPDATE SET version = excluded.version",
            rusqlite::params![s.operator, s.version()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Each operator's recorded version (`schema_versions`), for tests and tools.
///
/// # Errors
/// SQLite errors; a database without the table has no rows.
pub fn versions(conn: &Connection) -> rusqlite::Result<Vec<(String, u32)>> {
    let table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_versions')",
        [],
        |r| r.get(0),
    )?;
    if !table {
        return Ok(Vec::new());
    }
    let mut q = conn.prepare("SELECT operator, version FROM schema_versions ORDER BY operator")?;
    let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Store, StoreError, StoreOptions};
    use super::*;

    static A: Schema = Schema {
        operator: "a",
        steps: &[
            Migration {
                what: "a_items",
                apply: |tx| tx.execute_batch("CREATE TABLE a_items (id INTEGER PRIMARY KEY)"),
            },
            Migration {
                what: "fails",
                apply: |tx| tx.execute_batch("INSERT INTO no_such_table VALUES (1)"),
            },
        ],
        unrecorded: None,
    };

    static A1: Schema = Schema {
        operator: "a",
        steps: &[Migration {
            what: "a_items",
            apply: |tx| tx.execute_batch("CREATE TABLE a_items (id INTEGER PRIMARY KEY)"),
        }],
        unrecorded: None,
    };

    #[test]
    fn a_failing_step_leaves_the_database_at_its_old_version() {
        let dir = std::env::temp_dir().join(format!("hive-schema-{}", fastrand::u64(..)));
        let db = dir.join("s.db");
        Store::open(Some(&db), StoreOptions::default(), &[&A1])
            .unwrap()
            .start()
            .unwrap()
            .close();
        match Store::open(Some(&db), StoreOptions::default(), &[&A]) {
            Err(StoreError::Migrate {
                operator: "a",
                to: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let conn = Connection::open(&db).unwrap();
        assert_eq!(versions(&conn).unwrap(), [("a".to_owned(), 1)]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_operator_listed_twice_is_refused() {
        let r = Store::open(None, StoreOptions::default(), &[&A1, &A1]);
        assert!(matches!(r, Err(StoreError::DuplicateSchema("a"))), "{r:?}");
    }

    #[test]
    fn a_fresh_database_records_the_codes_version() {
        let opened = Store::open(None, StoreOptions::default(), &[&A1]).unwrap();
        assert_eq!(versions(opened.conn()).unwrap(), [("a".to_owned(), 1)]);
    }
}
