//! The audit log: an append-only, hash-chained record of security-relevant events
//! (credentials refused, admin commands, authority refusals, approvals decided, policy
//! reloads, task ownership changes, webhook registrations), written by the broker to
//! `.hive/audit.log` and checked by `hive audit verify`.
//!
//! [`Audit`] is a cheap-clone handle any layer above this one can hold (the
//! dispatcher, the transport, operators). [`Audit::record`] never blocks and never
//! fails: it hands the entry to one writer thread through a bounded queue
//! ([`AuditConfig::queue`] entries); when that queue is full the entry is counted,
//! and the writer's next record is an `audit_dropped` entry with the count, so a loss
//! is itself in the chain. Authority refusals, the one kind a hostile client can cause
//! at will, pass a token bucket first ([`AuditConfig::refusals_per_sec`]); the ones it
//! holds back are summed the same way (`refusals_suppressed`). The writer appends
//! whole lines, syncs the file once per batch (group commit) and then rewrites the
//! head file (`audit.head`: last seq and hash), which is what shows records cut from
//! the end. A record is durable once its batch is synced; a SIGKILL loses only what
//! was still queued.
//!
//! Invariants: seqs are 1, 2, 3, ... in file order; each line's `prev` is the hash of
//! the line before; each record's details are at most [`MAX_DETAILS_BYTES`] (larger
//! ones are replaced by their size); nothing a credential or payload holds is written
//! (entries carry names, subjects, roles and addresses, never arguments or tokens).
//!
//! # Layout
//! - `chain`: the line format, its seal and [`chain::verify`].

pub mod chain;

use crate::auth::Identity;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest serialised `details` of one record, in bytes.
pub const MAX_DETAILS_BYTES: usize = 4096;

/// `[audit]`: where the log goes and how much it may hold back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Write the log (default true).
    pub enabled: bool,
    /// The log file (default `.hive/audit.log`); the head file sits beside it with
    /// the extension `.head`.
    pub path: Option<PathBuf>,
    /// Entries waiting for the writer before new ones are counted as dropped.
    pub queue: usize,
    /// Authority refusals recorded per second, on average (a burst of as many is
    /// allowed); the rest are summed into one `refusals_suppressed` record.
    pub refusals_per_sec: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: None,
            queue: 4096,
            refusals_per_sec: 20,
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// The credential's subject.
    pub subject: String,
    /// Its role.
    pub role: &'static str,
    /// The session, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl Actor {
    /// The actor of a session.
    pub fn of(identity: &Identity, session: &str) -> Actor {
        Actor {
            subject: identity.subject.clone(),
            role: identity.role.as_str(),
            session: Some(session.to_owned()),
        }
    }
}

/// One event to record. Build it with [`Entry::new`] and the setters.
#[derive(Debug, Clone)]
pub struct Entry {
    kind: &'static str,
    actor: Option<Actor>,
    target: Option<String>,
    outcome: Option<String>,
    details: Value,
}

impl Entry {
    /// An event of `kind` (`admin_command`, `refused`, `auth_failed`, ...; the list
    /// is in `docs/SECURITY.md`).
    pub fn new(kind: &'static str) -> Entry {
        Entry {
            kind,
            actor: None,
            target: None,
            outcome: None,
            details: Value::Null,
        }
    }

    /// Who did it.
    pub fn actor(mut self, actor: Actor) -> Entry {
        self.actor = Some(actor);
        self
    }

    /// What it was done to: an address, a task id, a command name.
    pub fn target(mut self, target: impl Into<String>) -> Entry {
        self.target = Some(target.into());
        self
    }

    /// How it ended: `ok`, or an error code.
    pub fn outcome(mut self, outcome: impl Into<String>) -> Entry {
        self.outcome = Some(outcome.into());
        self
    }

    /// Anything else worth keeping (bounded by [`MAX_DETAILS_BYTES`]).
    pub fn details(mut self, details: Value) -> Entry {
        self.details = details;
        self
    }
}

enum Msg {
    Record(Entry),
    Flush(tokio::sync::oneshot::Sender<()>),
}

struct Inner {
    tx: SyncSender<Msg>,
    /// Entries refused by a full queue since the writer last said so.
    dropped: Arc<AtomicU64>,
    /// Refusals held back by the bucket since the writer last said so.
    suppressed: Arc<AtomicU64>,
    bucket: Mutex<Bucket>,
    path: PathBuf,
}

/// The token bucket for refusals: `rate` per second, bursts of `rate`.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The handle on the audit log. Cheap to clone; [`Audit::disabled`] records nothing.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => write!(f, "Audit({})", i.path.display()),
            None => f.write_str("Audit(disabled)"),
        }
    }
}

impl Audit {
    /// A handle that records nothing (tests, embedded buses without a state dir).
    pub fn disabled() -> Audit {
        Audit { inner: None }
    }

    /// Opens (or creates) the log at `path`, continues its chain and starts the
    /// writer. A torn last line (a crash mid-write) is cut off and said so in the
    /// first new record; so is a head file that disagrees with the log.
    ///
    /// # Errors
    /// When the file cannot be opened, read or written.
    pub fn open(path: &Path, config: &AuditConfig) -> std::io::Result<Audit> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let (tail, torn) = last_line(&mut file)?;
        let last = match tail.as_deref().map(chain::open) {
            Some(Ok(s)) => chain::Head {
                seq: s.record.get("seq").and_then(Value::as_u64).unwrap_or(0),
                hash: s.hash,
            },
            Some(Err(why)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: the last line is not a record ({why})", path.display()),
                ))
            }
            None => chain::Head {
                seq: 0,
                hash: chain::GENESIS.to_owned(),
            },
        };
        let head_path = head_path(path);
        let head = std::fs::read_to_string(&head_path)
            .ok()
            .and_then(|t| chain::Head::parse(&t));
        let (tx, rx) = sync_channel(config.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let suppressed = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            file,
            head_path,
            last: last.clone(),
            dropped: dropped.clone(),
            suppressed: suppressed.clone(),
        };
        // The first record says where this run picked the chain up.
        let mut opened = json!({"version": env!("CARGO_PKG_VERSION"), "seq": last.seq});
        if torn > 0 {
            opened["torn_bytes_cut"] = json!(torn);
        }
        if let Some(h) = head.filter(|h| *h != last) {
            opened["head_mismatch"] = json!({"head_seq": h.seq, "log_seq": last.seq});
        }
        writer.write_batch(vec![Entry::new("audit_opened").details(opened)])?;
        std::thread::Builder::new()
            .name("hive-audit".into())
            .spawn(move || writer.run(rx))?;
        let rate = f64::from(config.refusals_per_sec.max(1));
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                tx,
                dropped,
                suppressed,
                bucket: Mutex::new(Bucket {
                    rate,
                    tokens: rate,
                    at: Instant::now(),
                }),
                path: path.to_owned(),
            })),
        })
    }

    /// Whether records are written.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Records `entry`; never blocks (see the module docs for what a full queue does).
    pub fn record(&self, entry: Entry) {
        let Some(inner) = &self.inner else { return };
        match inner.tx.try_send(Msg::Record(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Records an authority refusal, within the refusal rate.
    pub fn refusal(&self, entry: Entry) {
        let Some(inner) = &self.inner else { return };
        let allowed = inner.bucket.lock().map(|mut b| b.take()).unwrap_or(false);
        if allowed {
            self.record(entry);
        } else {
            inner.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything recorded before the call is synced to disk.
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A full queue: wait for room rather than lose the flush.
        let sender = inner.tx.clone();
        let sent = tokio::task::spawn_blocking(move || sender.send(Msg::Flush(tx)).is_ok()).await;
        if matches!(sent, Ok(true)) {
            let _ = rx.await;
        }
    }
}

/// The head file of the log at `path`: `audit.log` -> `audit.head`.
pub fn head_path(path: &Path) -> PathBuf {
    path.with_extension("head")
}

/// The last complete line of `file`, and how many bytes of a torn line after it were
/// cut off. Reads at most the last 64 KiB (a record is far smaller).
fn last_line(file: &mut std::fs::File) -> std::io::Result<(Option<String>, u64)> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let torn = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => buf.len() - i - 1,
        None if start == 0 => buf.len(),
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the audit log's last 64 KiB hold no line end",
            ))
        }
    };
    if torn > 0 {
        file.set_len(len - torn as u64)?;
        buf.truncate(buf.len() - torn);
    }
    file.seek(SeekFrom::End(0))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    let from = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = String::from_utf8_lossy(&buf[from..]).into_owned();
    Ok(((!line.is_empty()).then_some(line), torn as u64))
}

/// The writer thread's state.
struct Writer {
    file: std::fs::File,
    head_path: PathBuf,
    last: chain::Head,
    dropped: Arc<AtomicU64>,
    suppressed: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            for msg in std::iter::once(first).chain(rx.try_iter()) {
                match msg {
                    Msg::Record(e) => batch.push(e),
                    Msg::Flush(done) => flushes.push(done),
                }
                if batch.len() >= 1024 {
                    break;
                }
            }
            if let Err(e) = self.write_batch(batch) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    /// Appends `batch` (after any loss counters), syncs, then moves the head.
    fn write_batch(&mut self, mut batch: Vec<Entry>) -> std::io::Result<()> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.insert(
                0,
                Entry::new("audit_dropped").details(json!({"count": dropped})),
            );
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            batch.push(Entry::new("refusals_suppressed").details(json!({"count": suppressed})));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut out = String::new();
        for entry in batch {
            let (line, hash) = chain::seal(self.body(entry));
            out.push_str(&line);
            out.push('\n');
            self.last.seq += 1;
            self.last.hash = hash;
        }
        self.file.write_all(out.as_bytes())?;
        self.file.sync_data()?;
        // Written whole, then renamed: a crash leaves the old head or the new one.
        let tmp = self.head_path.with_extension("head.tmp");
        std::fs::write(&tmp, self.last.to_line())?;
        std::fs::rename(&tmp, &self.head_path)
    }

    /// The record's JSON without its closing brace (keys in `serde_json`'s map order;
    /// the seal covers the bytes, so no order is load-bearing).
    fn body(&self, e: Entry) -> String {
        let mut details = e.details;
        let size = serde_json::to_string(&details).map_or(0, |s| s.len());
        if size > MAX_DETAILS_BYTES {
            details = json!({"truncated": true, "bytes": size});
        }
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut v = serde_json::Map::new();
        v.insert("seq".into(), json!(self.last.seq + 1));
        v.insert("ts".into(), json!(ts));
        v.insert("prev".into(), json!(self.last.hash));
        v.insert("kind".into(), json!(e.kind));
        if let Some(a) = e.actor {
            v.insert("actor".into(), json!(a));
        }
        if let Some(t) = e.target {
            v.insert("target".into(), json!(t));
        }
        if let Some(o) = e.outcome {
            v.insert("outcome".into(), json!(o));
        }
        if !details.is_null() {
            v.insert("details".into(), details);
        }
        let mut s = Value::Object(v).to_string();
        s.pop(); // the closing brace: `chain::seal` adds the hash before it
        s
    }
}

#[cfg(test)]
mod tests;
