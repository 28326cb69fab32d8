//! Durable state for operators: SQLite (rusqlite, bundled) in WAL mode with one writer
//! thread doing group commit (see `writer`).
//!
//! The queue keeps its scheduling state in memory; this store is its durable log. Writes
//! are enqueued in order without waiting ([`Store::put`], [`Store::stream`],
//! [`Store::finish`]); a caller that must know they are durable enqueues an
//! acknowledgement ([`Store::ack`]) and awaits it. Reads run on the writer thread
//! too, so they see every write enqueued before them.

mod schema;
mod writer;

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The batch holding this write failed and was rolled back.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer thread is gone (shut down or panicked).
    #[error("store closed")]
    Closed,
    /// Starting the writer thread failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// One task row as written.
#[derive(Debug, Clone)]
pub struct Row {
    /// Task id.
    pub id: String,
    /// State, wire spelling.
    pub state: &'static str,
    /// Kind.
    pub kind: String,
    /// Idempotency key.
    pub idem: String,
    /// Creation, wall-clock ms.
    pub created_ms: u64,
    /// Last change, wall-clock ms.
    pub updated_ms: u64,
    /// The full record as JSON.
    pub body: String,
}

type ReadFn = Box<dyn FnOnce(&Connection) + Send>;
type ThenFn = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A frame's JSON text as the store keeps it until written: either owned, or the
/// bytes the bus already serialized and shares with the sockets.
pub(crate) enum Frame {
    Owned(String),
    Shared(crate::bus::Delivery),
}

impl Frame {
    fn as_str(&self) -> &str {
        match self {
            Frame::Owned(s) => s,
            Frame::Shared(d) => d.text(),
        }
    }
}

pub(crate) enum Op {
    Put(Row),
    Stream {
        task: String,
        seq: u64,
        /// The published frame's shared text (no copy of what the bus serialized).
        frame: Frame,
    },
    /// A task row and its result, in the same transaction.
    Finish {
        row: Row,
        attempt: u32,
        at_ms: u64,
        body: String,
    },
    Delete(String),
    Ack(oneshot::Sender<Result<(), String>>),
    Then(ThenFn),
    Read(ReadFn),
    Stop,
}

/// Options of [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `synchronous=FULL` when true, `NORMAL` otherwise.
    pub synchronous_full: bool,
    /// Most operations per transaction.
    pub max_batch: usize,
    /// Await acknowledgements through `spawn_blocking`, which stops tokio's paused clock
    /// from auto-advancing while a commit is in flight (tests with `start_paused`).
    pub blocking_acks: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous_full: true,
            max_batch: 4096,
            blocking_acks: false,
        }
    }
}

/// Handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: Sender<Op>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    blocking_acks: bool,
}

/// What [`Store::open`] found on disk: the rows to recover.
#[derive(Debug, Default)]
pub struct Recovered {
    /// `(body, next stream seq)` of every task to load into memory.
    pub tasks: Vec<(String, u64)>,
}

/// A pending acknowledgement; await [`Ticket::wait`].
pub struct Ticket {
    rx: oneshot::Receiver<Result<(), String>>,
    blocking: bool,
}

impl Ticket {
    /// Waits until everything enqueued before the ticket is committed.
    ///
    /// # Errors
    /// `Commit` when the batch failed, `Closed` when the writer is gone.
    pub async fn wait(self) -> Result<(), StoreError> {
        match receive(self.rx, self.blocking).await? {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

/// A pending read; await [`ReadTicket::wait`].
pub struct ReadTicket<T> {
    rx: oneshot::Receiver<rusqlite::Result<T>>,
    blocking: bool,
}

impl<T: Send + 'static> ReadTicket<T> {
    /// The read's result.
    ///
    /// # Errors
    /// `Sqlite` from the read; `Closed` when the writer is gone.
    pub async fn wait(self) -> Result<T, StoreError> {
        receive(self.rx, self.blocking)
            .await?
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::from)
    }
}

/// Receives a writer's answer; with `blocking` (`StoreOptions::blocking_acks`) through
/// `spawn_blocking`, so that tokio's paused clock does not run ahead of the commit.
/// `Err(Closed)` when that blocking task failed.
async fn receive<T: Send + 'static>(
    rx: oneshot::Receiver<T>,
    blocking: bool,
) -> Result<Result<T, oneshot::error::RecvError>, StoreError> {
    if blocking {
        tokio::task::spawn_blocking(move || rx.blocking_recv())
            .await
            .map_err(|_| StoreError::Closed)
    } else {
        Ok(rx.await)
    }
}

impl Store {
    /// Opens the database (in memory when `path` is `None`), reads what must be
    /// recovered (tasks that are not final, dead and failed ones, and any task created
    /// after `keep_since_ms`), and starts the writer thread.
    ///
    /// # Errors
    /// SQLite errors opening or reading; I/O errors starting the thread.
    pub fn open(
        path: Option<&Path>,
        keep_since_ms: u64,
        opts: StoreOptions,
    ) -> Result<(Store, Recovered), StoreError> {
        if let Some(dir) = path.and_then(Path::parent) {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let conn = schema::open(path, opts.synchronous_full)?;
        let mut rec = Recovered::default();
        {
            let mut q = conn.prepare(
                "SELECT id, body FROM tasks
                 WHERE state NOT IN ('succeeded', 'cancelled') OR created_ms >= ?1
                 ORDER BY created_ms",
            )?;
            let mut seq =
                conn.prepare("SELECT COALESCE(MAX(seq), 0) FROM stream WHERE task = ?1")?;
            let rows = q.query_map([keep_since_ms as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (id, body) = row?;
                let next: i64 = seq.query_row([&id], |r| r.get(0))?;
                rec.tasks.push((body, next as u64 + 1));
            }
        }
        let (tx, rx) = channel();
        let max_batch = opts.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name("hive-store".into())
            .spawn(move || writer::run(conn, rx, max_batch))?;
        Ok((
            Store {
                tx,
                thread: Arc::new(Mutex::new(Some(handle))),
                blocking_acks: opts.blocking_acks,
            },
            rec,
        ))
    }

    fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            tracing::error!("queue store: writer thread is gone; a write was lost");
        }
    }

    /// Enqueues a task row (insert or replace).
    pub fn put(&self, row: Row) {
        self.send(Op::Put(row));
    }

    /// Enqueues one frame of a task's stream.
    pub fn stream(&self, task: &str, seq: u64, frame: String) {
        self.send(Op::Stream {
            task: task.to_owned(),
            seq,
            frame: Frame::Owned(frame),
        });
    }

    /// [`Store::stream`] of a published frame, sharing its serialized text.
    pub(crate) fn stream_delivery(&self, task: &str, seq: u64, frame: crate::bus::Delivery) {
        self.send(Op::Stream {
            task: task.to_owned(),
            seq,
            frame: Frame::Shared(frame),
        });
    }

    /// Enqueues a task row together with its recorded result (append-only): both land
    /// in the same transaction, so a final state never lacks its result.
    pub fn finish(&self, row: Row, attempt: u32, at_ms: u64, body: String) {
        self.send(Op::Finish {
            row,
            attempt,
            at_ms,
            body,
        });
    }

    /// Enqueues the removal of a task and its stream (DLQ purge).
    pub fn delete(&self, id: &str) {
        self.send(Op::Delete(id.to_owned()));
    }

    /// Enqueues an acknowledgement: the ticket completes once everything enqueued
    /// before it is committed.
    pub fn ack(&self) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Ack(tx));
        Ticket {
            rx,
            blocking: self.blocking_acks,
        }
    }

    /// Enqueues `f` to run on the writer thread once everything enqueued before it is
    /// committed (`Ok`) or its batch failed (`Err` with SQLite's message). The
    /// callback form of [`Store::ack`]: a caller with many writes in flight hands
    /// each commit's callbacks to one task (they run in order, back to back), instead
    /// of parking a task on every ticket. `f` must be quick and must not block.
    ///
    /// With `blocking_acks` a ticket is also awaited through `spawn_blocking` until
    /// the commit, so that a paused test clock does not run ahead of it.
    pub fn then(&self, f: impl FnOnce(Result<(), &str>) + Send + 'static) {
        self.send(Op::Then(Box::new(f)));
        if self.blocking_acks {
            let ticket = self.ack();
            tokio::spawn(async move {
                let _ = ticket.wait().await;
            });
        }
    }

    /// Enqueues `f` to run on the writer's connection after every write enqueued
    /// before this call (the enqueueing happens now, not when the result is awaited).
    pub fn read<T, F>(&self, f: F) -> ReadTicket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Read(Box::new(move |c| {
            let _ = tx.send(f(c));
        })));
        ReadTicket {
            rx,
            blocking: self.blocking_acks,
        }
    }

    /// Stops the writer after everything enqueued so far, and waits for it.
    pub fn close(&self) {
        self.send(Op::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}
