//! The queue's writes to the store: task rows, stream frames, results, purges.
//!
//! [`TaskStore`] is the queue's view of the generic [`Store`]: every method enqueues one
//! [`TaskWrite`] (never waits), in the order the in-memory state changed, so the store's
//! ordering and acknowledgement rules (see [`crate::store`]) carry over unchanged. The
//! SQL is the queue's own (`schema`); the store only runs it in its batches.

use super::schema;
use crate::store::{Batch, ReadTicket, Store, StoreError, StoreOptions, Ticket, Write};
use rusqlite::{params, Connection};
use std::path::Path;

/// One task row as written.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Task id.
    pub(crate) id: String,
    /// State, wire spelling.
    pub(crate) state: &'static str,
    /// Kind.
    pub(crate) kind: String,
    /// Idempotency key.
    pub(crate) idem: String,
    /// Creation, wall-clock ms.
    pub(crate) created_ms: u64,
    /// Last change, wall-clock ms.
    pub(crate) updated_ms: u64,
    /// The full record as JSON.
    pub(crate) body: String,
    /// The trace id, only when it is not the task id (the default): it is indexed in
    /// `traces`, so that a lookup by trace id never scans `tasks`.
    pub(crate) trace: Option<String>,
}

/// One of the queue's writes: one enum rather than a closure per write, so a write is
/// one allocation and the hot path builds no closure.
pub(crate) enum TaskWrite {
    Put(Row),
    Stream {
        task: String,
        seq: u64,
        /// The published frame, whose text is shared with the sockets (no copy of
        /// what the bus serialized).
        frame: crate::bus::Delivery,
    },
    /// A task row and its result, in the same transaction.
    Finish {
        row: Row,
        attempt: u32,
        at_ms: u64,
        body: String,
    },
    Delete(String),
}

fn put(b: &mut Batch<'_>, r: &Row) -> rusqlite::Result<usize> {
    if let Some(trace) = &r.trace {
        b.prepare(schema::TRACE)?.execute(params![trace, r.id])?;
    }
    b.prepare(schema::PUT)?.execute(params![
        r.id,
        r.state,
        r.kind,
        r.idem,
        r.created_ms as i64,
        r.updated_ms as i64,
        r.body
    ])
}

impl Write for TaskWrite {
    fn apply(self: Box<Self>, b: &mut Batch<'_>) -> rusqlite::Result<()> {
        match *self {
            TaskWrite::Put(r) => {
                put(b, &r)?;
            }
            TaskWrite::Stream { task, seq, frame } => {
                b.prepare(schema::STREAM)?
                    .execute(params![task, seq as i64, frame.text()])?;
            }
            TaskWrite::Finish {
                row,
                attempt,
                at_ms,
                body,
            } => {
                put(b, &row)?;
                b.prepare(schema::RESULT)?
                    .execute(params![row.id, attempt, at_ms as i64, body])?;
            }
            TaskWrite::Delete(id) => {
                b.execute("DELETE FROM tasks WHERE id = ?1", [&id])?;
                b.execute("DELETE FROM stream WHERE task = ?1", [&id])?;
                b.execute("DELETE FROM traces WHERE task = ?1", [&id])?;
            }
        }
        Ok(())
    }
}

/// What opening the queue's database found: the tasks to load into memory.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// `(body, next stream seq)` of every task to load into memory.
    pub(crate) tasks: Vec<(String, u64)>,
    /// Approvals still pending (see `approval_store`).
    pub(crate) approvals: Vec<super::approval_store::ApprovalRecord>,
}

/// The queue's handle on its store; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct TaskStore {
    store: Store,
}

impl TaskStore {
    /// Opens (migrating) the queue's database, reads what must be recovered (tasks
    /// that are not final, dead and failed ones, and any task created after
    /// `keep_since_ms`), and starts the writer.
    pub(crate) fn open(
        path: Option<&Path>,
        keep_since_ms: u64,
        opts: StoreOptions,
    ) -> Result<(TaskStore, Recovered), StoreError> {
        let opened = Store::open(
            path,
            opts,
            &[&schema::SCHEMA, &super::approval_store::SCHEMA],
        )?;
        let mut rec = recover(opened.conn(), keep_since_ms)?;
        rec.approvals = super::approval_store::recover(opened.conn(), super::model::now_ms())?;
        let store = opened.start()?;
        Ok((TaskStore { store }, rec))
    }

    fn write(&self, w: TaskWrite) {
        self.store.write(w);
    }

    /// Enqueues a write of another table in the queue's database (the approvals').
    pub(crate) fn write_with(&self, w: impl crate::store::Write) {
        self.store.write(w);
    }

    /// Enqueues a task row (insert or replace).
    pub(crate) fn put(&self, row: Row) {
        self.write(TaskWrite::Put(row));
    }

    /// Enqueues one frame of a task's stream, sharing the published frame's text.
    pub(crate) fn stream_delivery(&self, task: &str, seq: u64, frame: crate::bus::Delivery) {
        self.write(TaskWrite::Stream {
            task: task.to_owned(),
            seq,
            frame,
        });
    }

    /// Enqueues a task row together with its recorded result (append-only): both land
    /// in the same transaction, so a final state never lacks its result.
    pub(crate) fn finish(&self, row: Row, attempt: u32, at_ms: u64, body: String) {
        self.write(TaskWrite::Finish {
            row,
            attempt,
            at_ms,
            body,
        });
    }

    /// Enqueues the removal of a task and its stream (DLQ purge).
    pub(crate) fn delete(&self, id: &str) {
        self.write(TaskWrite::Delete(id.to_owned()));
    }

    /// [`Store::ack`].
    pub(crate) fn ack(&self) -> Ticket {
        self.store.ack()
    }

    /// [`Store::then`].
    pub(crate) fn then(&self, f: impl FnOnce(Result<(), &str>) + Send + 'static) {
        self.store.then(f);
    }

    /// [`Store::read`].
    pub(crate) fn read<T, F>(&self, f: F) -> ReadTicket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.store.read(f)
    }

    /// [`Store::stats`].
    pub(crate) fn stats(&self) -> crate::store::StoreStats {
        self.store.stats()
    }

    /// [`Store::close`].
    pub(crate) fn close(&self) {
        self.store.close();
    }
}

/// The recovery read, on the connection before the writer owns it.
fn recover(conn: &Connection, keep_since_ms: u64) -> rusqlite::Result<Recovered> {
    let mut rec = Recovered::default();
    let mut q = conn.prepare(schema::RECOVER)?;
    let mut seq = conn.prepare(schema::LAST_SEQ)?;
    let rows = q.query_map([keep_since_ms as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (id, body) = row?;
        let next: i64 = seq.query_row([&id], |r| r.get(0))?;
        rec.tasks.push((body, next as u64 + 1));
    }
    Ok(rec)
}
