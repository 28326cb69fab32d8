//! The single writer thread of one database: group commit.
//!
//! Every change goes through one `std::sync::mpsc` channel to
//! this thread, in the order the operators made it. The thread takes everything
//! waiting (up to `max_batch`), applies the writes in ONE transaction, commits (one
//! fsync with `synchronous=FULL`), and only then completes the acknowledgements,
//! callbacks and reads that were queued with the batch, in queue order. A burst of a
//! thousand submits therefore costs one commit, and an acknowledgement always means
//! "everything enqueued before me is durable". Reads queued here see every write
//! queued before them. The thread knows nothing of what the writes mean: each is the
//! operator's own [`Write`](super::Write).

use super::stats::WriterStats;
use super::{Batch, Op};
use rusqlite::Connection;
use std::sync::mpsc::Receiver;

/// Runs until every sender is dropped or `Op::Stop` arrives.
pub(super) fn run(mut conn: Connection, rx: Receiver<Op>, max_batch: usize, stats: &WriterStats) {
    let mut batch: Vec<Op> = Vec::with_capacity(max_batch);
    loop {
        let Ok(first) = rx.recv() else { return };
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let stop = batch.iter().any(|o| matches!(o, Op::Stop));
        let started = std::time::Instant::now();
        let failed = apply(&mut conn, &mut batch).err().map(|e| e.to_string());
        stats.batch(batch.len(), started.elapsed(), failed.is_none());
        if let Some(e) = &failed {
            tracing::error!(error = %e, "store: batch failed and was rolled back");
        }
        let outcome = || match &failed {
            None => Ok(()),
            Some(e) => Err(e.as_str()),
        };
        for op in batch.drain(..) {
            match op {
                Op::Ack(tx) => {
                    let _ = tx.send(outcome().map_err(str::to_owned));
                }
                Op::Then(f) => f(outcome()),
                Op::Read(f) => f(&conn),
                Op::Write(_) | Op::Applied | Op::Stop => {}
            }
        }
        if stop {
            return;
        }
    }
}

/// Applies the batch's writes in one transaction. A failing write rolls the whole
/// batch back (the transaction is dropped uncommitted): every acknowledgement queued
/// with it then reports the failure, whichever operator it belongs to.
fn apply(conn: &mut Connection, batch: &mut [Op]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        // The batch's statements borrow the transaction: dropped (back to rusqlite's
        // cache) before the commit.
        let mut b = Batch {
            tx: &tx,
            stmts: Vec::new(),
        };
        for op in batch.iter_mut() {
            if matches!(op, Op::Write(_)) {
                // A write is consumed by running it; its slot stays for the drain.
                if let Op::Write(w) = std::mem::replace(op, Op::Applied) {
                    w.apply(&mut b)?;
                }
            }
        }
    }
    tx.commit()
}
