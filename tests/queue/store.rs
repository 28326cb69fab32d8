//! The store under the queue: schema versions and migrations per operator, refusal of
//! a database from a newer hivebus, a second operator's tables in the queue's file, and
//! the generic writer's promises (acknowledgements after commit, callbacks in order,
//! a failed batch rolled back whole, reads after earlier writes).

use crate::harness::{config, finish, next_lease, show, start_in, submit, task, temp_dir};
use hivebus::ops::queue::{Queue, QueueError};
use hivebus::store::{versions, Batch, Migration, Schema, Store, StoreError, StoreOptions};
use rusqlite::{Connection, Transaction};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The queue's schema version this code writes (`ops/queue/schema.rs`).
const QUEUE: u32 = 3;
/// The approvals' schema version, in the queue's file (`ops/queue/approval_store.rs`).
const APPROVALS: u32 = 1;

/// The queue's tables exactly as `d1aa060` (before versions) created them: version 1.
const SCHEMA_D1AA060: &str = "
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

/// The first queue's tables (`1c0846e`): a rowid `tasks` and three secondary indexes;
/// also version 1, since nothing recorded versions then.
const SCHEMA_1C0846E: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    idem TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks(created_ms);
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
CREATE INDEX IF NOT EXISTS results_task ON results(task);
";

type TaskRows = Vec<(String, String, String, String, i64, i64, String)>;

/// Real task rows, as the queue writes them: two tasks submitted to a broker, one of
/// them leased (so it is `running`).
async fn real_rows() -> (TaskRows, String, String) {
    let q = start_in(config(), temp_dir("rows")).await;
    let c = q.client().await;
    let queued = submit(&c, task("work", "old-1", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = submit(&c, task("other", "old-2", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["other"], 1).await;
    next_lease(&mut w).await;
    // A submit behind the lease's writes: its answer means they are committed.
    submit(&c, task("flush", "old-3", "normal")).await.unwrap();
    let db = q.dir.join("queue.db");
    drop(w);
    q.stop().await;
    let conn = Connection::open(db).unwrap();
    let mut s = conn
        .prepare("SELECT id, state, kind, idem, created_ms, updated_ms, body FROM tasks WHERE idem != 'old-3'")
        .unwrap();
    let rows = s
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<TaskRows>>()
        .unwrap();
    (rows, queued, running)
}

/// Writes a database the old way: `schema` and `rows` with raw SQL, no version.
fn old_database(path: &Path, schema: &str, rows: &TaskRows) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(schema).unwrap();
    for r in rows {
        conn.execute(
            "INSERT INTO tasks (id, state, kind, idem, created_ms, updated_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6],
        )
        .unwrap();
    }
}

fn table_sql(conn: &Connection) -> Vec<String> {
    let mut q = conn
        .prepare("SELECT type || ' ' || name FROM sqlite_schema ORDER BY name")
        .unwrap();
    let rows = q.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// Opens the old database with the queue, checks the tasks are there and still work.
async fn opens_and_keeps_its_tasks(dir: std::path::PathBuf, queued: &str, running: &str) {
    let q = start_in(config(), dir.clone()).await;
    let c = q.client().await;
    assert_eq!(show(&c, queued).await["state"], "queued");
    assert_eq!(
        show(&c, running).await["state"],
        "queued",
        "the attempt running in the old database ended with its broker"
    );
    // The recovered tasks are leased and finished as any other.
    let mut w = q.consumer(&["work", "other"], 2).await;
    let mut done = Vec::new();
    for _ in 0..2 {
        let l = next_lease(&mut w).await;
        done.push(l.payload["task"].as_str().unwrap().to_owned());
        finish(&w, &l, "ok").await.unwrap();
    }
    done.sort();
    let mut want = vec![queued.to_owned(), running.to_owned()];
    want.sort();
    assert_eq!(done, want);
    drop(w);
    q.stop().await;
    let conn = Connection::open(dir.join("queue.db")).unwrap();
    assert_eq!(
        versions(&conn).unwrap(),
        vec![
            ("approvals".to_owned(), APPROVALS),
            ("queue".to_owned(), QUEUE)
        ]
    );
    let wr: bool = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'tasks'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(wr, "tasks is WITHOUT ROWID after the migration");
    let results: i64 = conn
        .query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(results, 2);
}

#[tokio::test]
async fn a_database_from_before_schema_versions_opens_as_version_1_and_keeps_its_tasks() {
    let (rows, queued, running) = real_rows().await;
    let dir = temp_dir("v1");
    old_database(&dir.join("queue.db"), SCHEMA_D1AA060, &rows);
    opens_and_keeps_its_tasks(dir, &queued, &running).await;
}

#[tokio::test]
async fn the_first_layout_is_migrated_to_without_rowid_and_loses_its_indexes_and_no_row() {
    let (rows, queued, running) = real_rows().await;
    let dir = temp_dir("v1-rowid");
    let db = dir.join("queue.db");
    old_database(&db, SCHEMA_1C0846E, &rows);
    let before = table_sql(&Connection::open(&db).unwrap());
    assert!(
        before.contains(&"index tasks_state".to_owned()),
        "{before:?}"
    );
    opens_and_keeps_its_tasks(dir, &queued, &running).await;
    let after = table_sql(&Connection::open(&db).unwrap());
    assert_eq!(
        after,
        [
            "table approvals",
            "table results",
            "table schema_versions",
            "index sqlite_autoindex_schema_versions_1",
            "table stream",
            "table tasks",
            "table traces"
        ],
        "no index of the first layout is left"
    );
}

/// The database's file bytes, and the names of the files beside it.
fn snapshot(dir: &Path) -> (Vec<u8>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (std::fs::read(dir.join("queue.db")).unwrap(), names)
}

fn open_queue(dir: &Path) -> Result<Queue, QueueError> {
    let mut cfg = config();
    cfg.db_path = Some(dir.join("queue.db"));
    cfg.logs_dir = None;
    let bus = hivebus::Bus::new(Default::default()).unwrap();
    Queue::open_with(bus, cfg, StoreOptions::default())
}

fn assert_too_new(r: Result<Queue, QueueError>, operator: &str, found: u32) {
    let e = r.expect_err("a newer database must be refused");
    let text = e.to_string();
    match e {
        QueueError::Store(StoreError::SchemaTooNew {
            operator: o,
            found: f,
            supported,
            ..
        }) => {
            assert_eq!((o, f, supported), (operator, found, QUEUE), "{text}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        text.contains(&format!("`{operator}`"))
            && text.contains(&format!("version {found}"))
            && text.contains(&format!("supports ({QUEUE})"))
            && text.contains("nothing was changed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_hivebus_is_refused_and_left_as_it_was() {
    // Written by the queue (WAL), then marked as a future version.
    let dir = temp_dir("newer");
    let q = start_in(config(), dir.clone()).await;
    let c = q.client().await;
    let id = submit(&c, task("work", "future", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(c);
    q.stop().await;
    std::fs::remove_dir_all(dir.join("logs")).unwrap();
    Connection::open(dir.join("queue.db"))
        .unwrap()
        .execute(
            "UPDATE schema_versions SET version = ?1 WHERE operator = 'queue'",
            [QUEUE + 1],
        )
        .unwrap();
    let before = snapshot(&dir);
    assert_too_new(open_queue(&dir), "queue", QUEUE + 1);
    assert!(before == snapshot(&dir), "the refused database was changed");
    // The task is still there for the newer hivebus.
    let conn = Connection::open(dir.join("queue.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM tasks WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_newer_database_in_rollback_journal_mode_is_not_even_switched_to_wal() {
    // Refusal happens before `journal_mode=WAL`, which would rewrite the header.
    let dir = temp_dir("newer-delete");
    let db = dir.join("queue.db");
    old_database(&db, SCHEMA_D1AA060, &Vec::new());
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE schema_versions (operator TEXT PRIMARY KEY, version INTEGER NOT NULL);
             INSERT INTO schema_versions VALUES ('queue', 99);",
        )
        .unwrap();
    let before = snapshot(&dir);
    assert_too_new(open_queue(&dir), "queue", 99);
    assert!(before == snapshot(&dir), "the refused database was changed");
}

/// A test-only operator: version 1 makes a table, version 2 adds a column.
static NOTES_V1: Schema = Schema {
    operator: "notes",
    steps: &[Migration {
        what: "notes table",
        apply: notes_v1,
    }],
    unrecorded: None,
};

static NOTES_V2: Schema = Schema {
    operator: "notes",
    steps: &[
        Migration {
            what: "notes table",
            apply: notes_v1,
        },
        Migration {
            what: "notes.author",
            apply: notes_v2,
        },
    ],
    unrecorded: None,
};

fn notes_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE notes_items (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
}

fn notes_v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE notes_items ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody'")
}

fn note(store: &Store, id: &'static str) {
    store.write(move |b: &mut Batch<'_>| {
        b.execute(
            "INSERT INTO notes_items (id, body) VALUES (?1, 'text')",
            [id],
        )
        .map(drop)
    });
}

#[tokio::test]
async fn a_second_operator_keeps_its_tables_and_version_beside_the_queues() {
    let dir = temp_dir("shared");
    let db = dir.join("queue.db");
    let q = start_in(config(), dir.clone()).await;
    let c = q.client().await;
    let id = submit(&c, task("work", "shared", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(c);
    q.stop().await;

    // The notes operator at version 1 in the queue's file.
    let store = Store::open(Some(&db), StoreOptions::default(), &[&NOTES_V1])
        .unwrap()
        .start()
        .unwrap();
    note(&store, "n1");
    store.ack().wait().await.unwrap();
    store.close();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(
        versions(&conn).unwrap(),
        [
            ("approvals".to_owned(), APPROVALS),
            ("notes".to_owned(), 1),
            ("queue".to_owned(), QUEUE)
        ]
    );
    drop(conn);

    // The queue opens its file again, untroubled by a table and a version not its own.
    let q = start_in(config(), dir.clone()).await;
    let c = q.client().await;
    assert_eq!(show(&c, &id).await["state"], "queued");
    drop(c);
    q.stop().await;

    // Notes moves to version 2; the queue's version does not move.
    let opened = Store::open(Some(&db), StoreOptions::default(), &[&NOTES_V2]).unwrap();
    let author: String = opened
        .conn()
        .query_row("SELECT author FROM notes_items WHERE id = 'n1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(author, "nobody");
    opened.start().unwrap().close();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(
        versions(&conn).unwrap(),
        [
            ("approvals".to_owned(), APPROVALS),
            ("notes".to_owned(), 2),
            ("queue".to_owned(), QUEUE)
        ]
    );
    drop(conn);

    // Code that knows only notes version 1 is refused, naming the operator.
    let before = snapshot(&dir);
    match Store::open(Some(&db), StoreOptions::default(), &[&NOTES_V1]) {
        Err(StoreError::SchemaTooNew {
            operator: "notes",
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(before == snapshot(&dir));
}

/// A store on a file in `dir` holding the notes operator's table.
fn notes_store(dir: &Path) -> Store {
    Store::open(
        Some(&dir.join("notes.db")),
        StoreOptions::default(),
        &[&NOTES_V1],
    )
    .unwrap()
    .start()
    .unwrap()
}

/// Rows of `notes_items` as another connection sees them: committed ones only.
fn committed(dir: &Path) -> i64 {
    Connection::open(dir.join("notes.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM notes_items", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn callbacks_fire_after_the_commit_in_the_order_they_were_enqueued() {
    let dir = temp_dir("then");
    let store = notes_store(&dir);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for (i, id) in ids.into_iter().enumerate() {
        note(&store, id);
        let (seen, dir) = (seen.clone(), dir.clone());
        store.then(move |r| {
            // Another connection sees only committed rows: this one's write is there.
            seen.lock()
                .unwrap()
                .push((i, r.is_ok(), committed(&dir) > i as i64));
        });
    }
    store.ack().wait().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        (0..ids.len()).map(|i| (i, true, true)).collect::<Vec<_>>()
    );
    assert_eq!(committed(&dir), ids.len() as i64);
    store.close();
}

#[tokio::test]
async fn an_acknowledgement_means_every_earlier_write_is_committed_and_reads_see_them() {
    let dir = temp_dir("ack");
    let store = notes_store(&dir);
    let clone = store.clone();
    note(&store, "x");
    note(&clone, "y");
    // A read enqueued after the writes sees them, without waiting for an ack first.
    let read = store.read(|c| {
        c.query_row("SELECT COUNT(*) FROM notes_items", [], |r| {
            r.get::<_, i64>(0)
        })
    });
    let ack = clone.ack();
    assert_eq!(read.wait().await.unwrap(), 2i64);
    ack.wait().await.unwrap();
    assert_eq!(committed(&dir), 2);
    store.close();
    assert!(matches!(store.ack().wait().await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn a_failing_write_rolls_back_its_whole_batch_and_the_next_batch_commits() {
    let dir = temp_dir("fail");
    let store = notes_store(&dir);
    // Hold the writer inside a read, so the next three land in one batch.
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let held = store.read(move |_| {
        let _ = release.recv();
        Ok(())
    });
    note(&store, "kept-out");
    note(&store, "kept-out"); // duplicate key: fails the batch
    let outcome = Arc::new(Mutex::new(None));
    let o = outcome.clone();
    store.then(move |r| *o.lock().unwrap() = Some(r.map_err(str::to_owned)));
    let ack = store.ack();
    hold.send(()).unwrap();
    held.wait().await.unwrap();
    match ack.wait().await {
        Err(StoreError::Commit(e)) => assert!(e.contains("UNIQUE"), "{e}"),
        other => panic!("expected a failed commit, got {other:?}"),
    }
    assert!(matches!(&*outcome.lock().unwrap(), Some(Err(_))));
    assert_eq!(committed(&dir), 0, "the good write went with the bad one");
    note(&store, "later");
    store.ack().wait().await.unwrap();
    assert_eq!(committed(&dir), 1);
    store.close();
}

#[tokio::test]
async fn a_task_that_left_memory_is_found_by_its_trace_id_by_key_also_after_the_v3_migration() {
    let dir = temp_dir("traces");
    let cfg = || hivebus::ops::queue::QueueConfig {
        // Finished tasks leave memory at once: `show` must go to SQLite.
        max_terminal_in_memory: 0,
        ..config()
    };
    let q = start_in(cfg(), dir.clone()).await;
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    let mut body = task("build", "tr-1", "normal");
    body["traceId"] = serde_json::json!("tr-custom-1");
    let id = submit(&c, body).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease = next_lease(&mut w).await;
    finish(&w, &lease, "ok").await.unwrap();
    let found = c
        .command("op.queue.show", serde_json::json!({"trace": "tr-custom-1"}))
        .await
        .unwrap();
    assert_eq!(
        (found["task"].as_str(), found["state"].as_str()),
        (Some(id.as_str()), Some("succeeded")),
        "{found}"
    );
    drop((c, w));
    q.stop().await;
    let conn = Connection::open(dir.join("queue.db")).unwrap();
    // A version-2 database (no `traces`): the migration fills it from the rows.
    conn.execute_batch(
        "DROP TABLE traces; UPDATE schema_versions SET version = 2 WHERE operator = 'queue';",
    )
    .unwrap();
    drop(conn);
    std::fs::remove_dir_all(dir.join("logs")).ok();
    let q = start_in(cfg(), dir.clone()).await;
    let c = q.client().await;
    let found = c
        .command("op.queue.show", serde_json::json!({"trace": "tr-custom-1"}))
        .await
        .unwrap();
    assert_eq!(found["task"], id.as_str(), "{found}");
    q.stop().await;
}
