//! Durable state for operators: SQLite (rusqlite, bundled) in WAL mode, one writer
//! thread per database file doing group commit (see `writer`), and per-operator schema
//! versions (see `schema`).
//!
//! The store knows nothing of tasks or approvals. Each operator owns its tables: it
//! hands [`Store::open`] its [`Schema`] (name and migration steps), and submits its
//! own writes, a [`Write`] (a closure over the batch's transaction, or a type of its
//! own).
//!
//! The contract:
//! - **Order.** Everything enqueued on one [`Store`] (writes, acknowledgements,
//!   callbacks, reads) takes effect in the order it was enqueued, whichever clone of
//!   the handle and whichever operator enqueued it. Enqueueing never waits.
//! - **Group commit.** The writer takes everything waiting (up to `max_batch`) and
//!   applies the writes in one transaction, one commit (one fsync with
//!   `synchronous=FULL`). A write that fails rolls its whole batch back.
//! - **Acknowledgements fire after the commit.** [`Store::ack`]'s ticket and
//!   [`Store::then`]'s callback complete only once every write enqueued before them
//!   is committed (`Ok`), or its batch was rolled back (`Err`); callbacks run on the
//!   writer thread, in order, back to back.
//! - **Reads see every earlier write.** [`Store::read`] runs on the writer's
//!   connection after the commit of every write enqueued before it. It also holds the
//!   writer while it runs: a slow read (a scan) delays every operator's commits and
//!   acknowledgements in that file, so reads here must be short.
//! - **One writer thread per file.** Only the writer writes; operators sharing a file
//!   share one `Store` (each listing its schema at open), and two stores never open the
//!   same file (the broker's `.hive/broker.lock` guarantees it for `.hive/`).
//! - **Schemas belong to operators.** Versions are kept per operator in
//!   `schema_versions`; an older database is migrated at open, a newer one is refused
//!   before anything is written to it ([`StoreError::SchemaTooNew`]).

mod schema;
mod stats;
mod writer;

pub use schema::{versions, Migration, Schema};
pub use stats::{Histogram, StoreStats};

use rusqlite::{CachedStatement, Connection, Transaction};
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
    /// The database holds a schema newer than this code knows; nothing was written.
    #[error(
        "{path}: schema version {found} of operator `{operator}` is newer than this build \
         supports ({supported}); refusing to open it, nothing was changed (run a newer \
         hivebus, or point it at another database)"
    )]
    SchemaTooNew {
        /// The operator whose schema is newer.
        operator: &'static str,
        /// The version found in the database.
        found: u32,
        /// The newest version this code knows.
        supported: u32,
        /// The database file (`:memory:` for an in-memory one).
        path: String,
    },
    /// A migration step failed; its transaction was rolled back, the database is as
    /// it was.
    #[error("migrating `{operator}` to schema version {to}: {source}")]
    Migrate {
        /// The operator being migrated.
        operator: &'static str,
        /// The version the failed step leads to.
        to: u32,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Two schemas of one open name the same operator.
    #[error("operator `{0}` listed twice")]
    DuplicateSchema(&'static str),
}

/// One write an operator submits: it runs on the writer thread, inside the batch's
/// transaction, in the order it was enqueued. An error rolls the batch back.
///
/// Closures `FnOnce(&mut Batch) -> rusqlite::Result<()>` are writes; an operator with
/// a hot path implements it on its own type (the queue's `TaskWrite` is an enum of
/// rows), so one allocation carries the data and no closure is built per write.
pub trait Write: Send + 'static {
    /// Applies the write.
    ///
    /// # Errors
    /// SQLite's error, which fails the whole batch.
    fn apply(self: Box<Self>, batch: &mut Batch<'_>) -> rusqlite::Result<()>;
}

impl<F> Write for F
where
    F: FnOnce(&mut Batch<'_>) -> rusqlite::Result<()> + Send + 'static,
{
    fn apply(self: Box<Self>, batch: &mut Batch<'_>) -> rusqlite::Result<()> {
        (*self)(batch)
    }
}

/// The transaction of one batch, as a [`Write`] sees it: it dereferences to the
/// [`Transaction`], and [`Batch::prepare`] hands out statements prepared once per
/// batch.
///
/// Why not `prepare_cached` per write: rusqlite's cache hashes the SQL text, resets
/// the statement and moves it in and out of its LRU on every call; measured at about
/// 0.5 us per insert (2.2 -> 2.8 us), several per task. A batch keeps each statement
/// it used (found by the SQL's address, a few comparisons) and returns it to
/// rusqlite's cache when the batch ends, as the queue's writer did before the store
/// became generic.
pub struct Batch<'t> {
    tx: &'t Transaction<'t>,
    stmts: Vec<(&'static str, CachedStatement<'t>)>,
}

impl<'t> Batch<'t> {
    /// The statement for `sql`, prepared at its first use in this batch (and taken
    /// from rusqlite's cache when an earlier batch prepared it).
    ///
    /// # Errors
    /// SQLite's error preparing `sql`.
    pub fn prepare(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'t>> {
        // Operators pass constants: the address matches; the text compare is for two
        // copies of one constant in different places.
        let at = self
            .stmts
            .iter()
            .position(|(s, _)| std::ptr::eq(*s, sql) || *s == sql);
        let at = match at {
            Some(i) => i,
            None => {
                let st = self.tx.prepare_cached(sql)?;
                self.stmts.push((sql, st));
                self.stmts.len() - 1
            }
        };
        Ok(&mut self.stmts[at].1)
    }
}

impl<'t> std::ops::Deref for Batch<'t> {
    type Target = Transaction<'t>;

    fn deref(&self) -> &Transaction<'t> {
        self.tx
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("statements", &self.stmts.len())
            .finish_non_exhaustive()
    }
}

type ReadFn = Box<dyn FnOnce(&Connection) + Send>;
type ThenFn = Box<dyn FnOnce(Result<(), &str>) + Send>;

pub(crate) enum Op {
    Write(Box<dyn Write>),
    /// A write's slot once the writer ran it.
    Applied,
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
    /// What the writer measures (commit latency, batch size), for metrics.
    stats: Arc<stats::WriterStats>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    blocking_acks: bool,
}

/// A database [`Store::open`] opened and migrated, whose writer has not started yet:
/// operators read what they must recover on [`Opened::conn`], then
/// [`Opened::start`] the writer.
pub struct Opened {
    conn: Connection,
    opts: StoreOptions,
}

impl Opened {
    /// The connection, for recovery reads before the writer owns it.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts the writer thread, which owns the connection from now on.
    ///
    /// # Errors
    /// I/O errors starting the thread.
    pub fn start(self) -> Result<Store, StoreError> {
        let (tx, rx) = channel();
        let max_batch = self.opts.max_batch.max(1);
        let conn = self.conn;
        let stats = Arc::new(stats::WriterStats::default());
        let mine = stats.clone();
        let handle = std::thread::Builder::new()
            .name("hive-store".into())
            .spawn(move || writer::run(conn, rx, max_batch, &mine))?;
        Ok(Store {
            tx,
            stats,
            thread: Arc::new(Mutex::new(Some(handle))),
            blocking_acks: self.opts.blocking_acks,
        })
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
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
    /// Opens the database (in memory when `path` is `None`), refuses it when any of
    /// `schemas` is newer in it than in this code, and otherwise migrates each schema
    /// to the code's version in one transaction. The writer starts with
    /// [`Opened::start`], after the operators' recovery reads.
    ///
    /// ```no_run
    /// use hivebus::store::{Migration, Schema, Store, StoreOptions};
    /// static NOTES: Schema = Schema {
    ///     operator: "notes",
    ///     steps: &[Migration {
    ///         what: "notes table",
    ///         apply: |tx| tx.execute_batch("CREATE TABLE notes_v1 (id TEXT PRIMARY KEY, body TEXT)"),
    ///     }],
    ///     unrecorded: None,
    /// };
    /// # fn doc() -> Result<(), hivebus::store::StoreError> {
    /// let store = Store::open(None, StoreOptions::default(), &[&NOTES])?.start()?;
    /// store.write(|b: &mut hivebus::store::Batch<'_>| {
    ///     b.execute("INSERT INTO notes_v1 VALUES ('a', 'hello')", []).map(drop)
    /// });
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] for a newer database (the file is left as it was),
    /// [`StoreError::Migrate`] when a step fails (rolled back), SQLite and I/O errors.
    pub fn open(
        path: Option<&Path>,
        opts: StoreOptions,
        schemas: &[&Schema],
    ) -> Result<Opened, StoreError> {
        if let Some(dir) = path.and_then(Path::parent) {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut conn = schema::connect(path)?;
        // Read-only first: a database we must refuse is refused before the switch to
        // WAL or any table is written.
        schema::check(&conn, path, schemas)?;
        schema::configure(&conn, opts.synchronous_full)?;
        schema::migrate(&mut conn, path, schemas)?;
        Ok(Opened { conn, opts })
    }

    fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            tracing::error!("store: writer thread is gone; a write was lost");
        }
    }

    /// Enqueues a write; it is applied in the next batch's transaction, after every
    /// write enqueued before it. Never waits: enqueue an [`ack`](Store::ack) or a
    /// [`then`](Store::then) behind it to learn when it is durable.
    pub fn write(&self, w: impl Write) {
        self.send(Op::Write(Box::new(w)));
    }

    /// [`Store::write`] of an already boxed write.
    pub fn write_boxed(&self, w: Box<dyn Write>) {
        self.send(Op::Write(w));
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

    /// Commit latency, batch size and failed batches so far (see [`StoreStats`]).
    pub fn stats(&self) -> StoreStats {
        self.stats.snapshot()
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
