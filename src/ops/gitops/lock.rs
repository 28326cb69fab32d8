//! The branch lock: at most one task works on a BIP's implementation at a time.
//!
//! A lock names the BIP, the task holding it, and the branch and worktree it works
//! on. It is durable: kept in the `gitops_locks` table of the store (schema operator
//! `gitops`, its own version), written and committed before `acquire` answers, and
//! read back when the store opens, so a broker restart does not free a BIP that a
//! task still works on. It is released when the task ends: [`Locks::watch`] listens
//! to the queue's task events and frees every lock of a task that reached a terminal
//! state (succeeded, failed, dead, cancelled).
//!
//! Invariants: the in-memory map is what decides (under one short `Mutex`, never held
//! across an await); every change to it is enqueued to the store in the same critical
//! section, so the store applies changes in the order they were decided; `acquire`
//! returns only after its row is committed (and undoes the reservation when the
//! commit fails).
//!
//! Known limit: the queue's events are not waited on (an observer that falls behind
//! loses events, see `ops/queue/hooks.rs`); a lost terminal event leaves the lock
//! held until `op.git.unlock` (admin) frees it. The channel is sized generously, and
//! only RESULT and SYSTEM frames are observed.

use super::GitopsError;
use crate::frame::FrameType;
use crate::ops::queue::hooks::TaskEvent;
use crate::store::{Batch, Migration, Schema, Store, StoreOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The gitops schema: `gitops_locks`, one row per locked BIP.
pub static SCHEMA: Schema = Schema {
    operator: "gitops",
    steps: &[Migration {
        what: "gitops_locks",
        apply: |tx| {
            tx.execute_batch(
                "CREATE TABLE gitops_locks (
                    bip TEXT PRIMARY KEY,
                    task TEXT NOT NULL,
                    branch TEXT NOT NULL,
                    worktree TEXT NOT NULL,
                    since_ms INTEGER NOT NULL
                )",
            )
        },
    }],
    unrecorded: None,
};

/// How many queue events may wait for the lock watcher before the queue drops some.
pub const WATCH_CAPACITY: usize = 16 * 1024;

/// One held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockRecord {
    /// The BIP.
    pub bip: String,
    /// The task holding it.
    pub task: String,
    /// The implementation branch.
    pub branch: String,
    /// The worktree the task works in.
    pub worktree: String,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub since_ms: u64,
}

/// The per-BIP branch locks; cheap to clone.
#[derive(Clone)]
pub struct Locks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    held: Mutex<BTreeMap<String, LockRecord>>,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks").finish_non_exhaustive()
    }
}

/// What [`Locks::acquire`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The lock is new.
    New(LockRecord),
    /// The same task held it already (a resubmitted start): its record.
    Already(LockRecord),
}

fn store_err(e: impl std::fmt::Display) -> GitopsError {
    GitopsError::Store(e.to_string())
}

impl Locks {
    /// Opens the lock store (in memory when `path` is `None`), migrating it to the
    /// gitops schema, and loads the locks held when it was last closed.
    ///
    /// # Errors
    /// `store_failed`: the file cannot be opened, or holds a newer gitops schema.
    pub fn open(path: Option<&Path>) -> Result<Locks, GitopsError> {
        let opened = Store::open(path, StoreOptions::default(), &[&SCHEMA]).map_err(store_err)?;
        let mut held = BTreeMap::new();
        {
            let mut q = opened
                .conn()
                .prepare("SELECT bip, task, branch, worktree, since_ms FROM gitops_locks")
                .map_err(store_err)?;
            let rows = q
                .query_map([], |r| {
                    Ok(LockRecord {
                        bip: r.get(0)?,
                        task: r.get(1)?,
                        branch: r.get(2)?,
                        worktree: r.get(3)?,
                        since_ms: r.get::<_, i64>(4)?.max(0).unsigned_abs(),
                    })
                })
                .map_err(store_err)?;
            for r in rows {
                let r = r.map_err(store_err)?;
                held.insert(r.bip.clone(), r);
            }
        }
        if !held.is_empty() {
            tracing::info!(locks = held.len(), "gitops: branch locks recovered");
        }
        let store = opened.start().map_err(store_err)?;
        Ok(Locks {
            inner: Arc::new(Inner {
                store,
                held: Mutex::new(held),
            }),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LockRecord>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock of `rec.bip` for `rec.task`, durably.
    ///
    /// # Errors
    /// `bip_locked` when another task holds it; `store_failed` when the commit fails
    /// (the lock is then not held).
    pub async fn acquire(&self, rec: LockRecord) -> Result<Acquired, GitopsError> {
        {
            let mut held = self.held();
            if let Some(cur) = held.get(&rec.bip) {
                return if cur.task == rec.task {
                    Ok(Acquired::Already(cur.clone()))
                } else {
                    Err(GitopsError::Locked {
                        bip: cur.bip.clone(),
                        holder: cur.task.clone(),
                        branch: cur.branch.clone(),
                    })
                };
            }
            held.insert(rec.bip.clone(), rec.clone());
            let row = rec.clone();
            self.inner.store.write(move |b: &mut Batch<'_>| {
                b.prepare(
                    "INSERT OR REPLACE INTO gitops_locks (bip, task, branch, worktree, since_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(rusqlite::params![
                    row.bip,
                    row.task,
                    row.branch,
                    row.worktree,
                    i64::try_from(row.since_ms).unwrap_or(i64::MAX)
                ])
                .map(drop)
            });
        }
        if let Err(e) = self.inner.store.ack().wait().await {
            self.forget(&rec.bip, &rec.task);
            return Err(store_err(e));
        }
        Ok(Acquired::New(rec))
    }

    /// The lock of `bip`, if held.
    pub fn get(&self, bip: &str) -> Option<LockRecord> {
        self.held().get(bip).cloned()
    }

    /// Every held lock, by BIP.
    pub fn list(&self) -> Vec<LockRecord> {
        self.held().values().cloned().collect()
    }

    /// Removes `bip`'s lock from memory and enqueues its deletion, if `task` holds it.
    fn forget(&self, bip: &str, task: &str) -> bool {
        let mut held = self.held();
        if held.get(bip).is_none_or(|r| r.task != task) {
            return false;
        }
        held.remove(bip);
        let bip = bip.to_owned();
        self.inner.store.write(move |b: &mut Batch<'_>| {
            b.prepare("DELETE FROM gitops_locks WHERE bip = ?1")?
                .execute([bip])
                .map(drop)
        });
        true
    }

    /// Releases `bip`'s lock if `task` holds it; whether it did. Durable on return.
    ///
    /// # Errors
    /// `store_failed` when the deletion could not be committed.
    pub async fn release(&self, bip: &str, task: &str) -> Result<bool, GitopsError> {
        let done = self.forget(bip, task);
        self.inner.store.ack().wait().await.map_err(store_err)?;
        Ok(done)
    }

    /// Hands `bip`'s lock from task `from` to task `to` (the implementation task
    /// ended, a review round goes on with the branch): one change, so no other task
    /// can take the BIP in between. Durable on return.
    ///
    /// # Errors
    /// `not_lock_holder` when `from` does not hold it; `store_failed`.
    pub async fn hand_over(
        &self,
        bip: &str,
        from: &str,
        to: &str,
    ) -> Result<LockRecord, GitopsError> {
        let rec = {
            let mut held = self.held();
            let Some(cur) = held.get_mut(bip).filter(|r| r.task == from) else {
                return Err(GitopsError::NotHolder {
                    bip: bip.to_owned(),
                    task: from.to_owned(),
                });
            };
            cur.task = to.to_owned();
            let rec = cur.clone();
            let (b, t) = (rec.bip.clone(), rec.task.clone());
            self.inner.store.write(move |batch: &mut Batch<'_>| {
                batch
                    .prepare("UPDATE gitops_locks SET task = ?2 WHERE bip = ?1")?
                    .execute([b, t])
                    .map(drop)
            });
            rec
        };
        self.inner.store.ack().wait().await.map_err(store_err)?;
        Ok(rec)
    }

    /// Frees `bip`'s lock whoever holds it (an administrator's `op.git.unlock`, for a
    /// lock whose task's end was missed); the record freed. Durable on return.
    ///
    /// # Errors
    /// `store_failed` when the deletion could not be committed.
    pub async fn unlock(&self, bip: &str) -> Result<Option<LockRecord>, GitopsError> {
        let cur = self.get(bip);
        if let Some(r) = &cur {
            self.forget(&r.bip, &r.task);
        }
        self.inner.store.ack().wait().await.map_err(store_err)?;
        Ok(cur)
    }

    /// Releases every lock `task` holds; the BIPs freed. Durable on return.
    ///
    /// # Errors
    /// `store_failed` when a deletion could not be committed.
    pub async fn release_task(&self, task: &str) -> Result<Vec<String>, GitopsError> {
        let bips: Vec<String> = self
            .held()
            .values()
            .filter(|r| r.task == task)
            .map(|r| r.bip.clone())
            .collect();
        let freed: Vec<String> = bips.into_iter().filter(|b| self.forget(b, task)).collect();
        self.inner.store.ack().wait().await.map_err(store_err)?;
        Ok(freed)
    }

    /// The queue event kinds [`Locks::watch`] needs: a task reaches a terminal state
    /// with a RESULT (succeeded, failed, dead) or a SYSTEM frame (cancelled, dead).
    pub const WATCHED: [FrameType; 2] = [FrameType::Result, FrameType::System];

    /// Releases a task's locks when it ends, reading `events` (from
    /// `Queue::events_of(WATCH_CAPACITY, &Locks::WATCHED)`) until the queue is gone.
    pub fn watch(&self, mut events: mpsc::Receiver<TaskEvent>) -> tokio::task::JoinHandle<()> {
        let locks = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if !ev.state.is_terminal() {
                    continue;
                }
                // Cheap check first: most tasks hold no lock.
                if !locks.held().values().any(|r| r.task == ev.task) {
                    continue;
                }
                match locks.release_task(&ev.task).await {
                    Ok(freed) => {
                        tracing::info!(task = %ev.task, state = ev.state.as_str(), ?freed, "gitops: branch locks released")
                    }
                    Err(e) => {
                        tracing::error!(task = %ev.task, error = %e, "gitops: releasing branch locks failed")
                    }
                }
            }
        })
    }

    /// Flushes and closes the store (the broker's shutdown).
    pub fn close(&self) {
        self.inner.store.close();
    }
}
