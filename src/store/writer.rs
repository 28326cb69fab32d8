//! The single writer thread: group commit.
//!
//! Every change goes through one `std::sync::mpsc` channel to this thread, in the order
//! the queue made it. The thread takes everything waiting (up to `max_batch`), applies
//! it in ONE transaction, commits (one fsync with `synchronous=FULL`), and only then
//! completes the acknowledgements that were queued with the batch. A burst of a
//! thousand submits therefore costs one commit, and an acknowledgement always means
//! "everything enqueued before me is durable". Reads queued here see every write
//! queued before them.

use super::{Op, Row};
use rusqlite::{params, Connection};
use std::sync::mpsc::Receiver;

/// Runs until every sender is dropped or `Op::Stop` arrives.
pub(super) fn run(mut conn: Connection, rx: Receiver<Op>, max_batch: usize) {
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
        let failed = apply(&mut conn, &mut batch).err().map(|e| e.to_string());
        if let Some(e) = &failed {
            tracing::error!(error = %e, "queue store: batch failed and was rolled back");
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
                _ => {}
            }
        }
        if stop {
            return;
        }
    }
}

fn apply(conn: &mut Connection, batch: &mut [Op]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT INTO tasks (id, state, kind, idem, created_ms, updated_ms, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET
                state = excluded.state, updated_ms = excluded.updated_ms, body = excluded.body",
        )?;
        let mut stream = tx.prepare_cached(
            "INSERT OR REPLACE INTO stream (task, seq, frame) VALUES (?1, ?2, ?3)",
        )?;
        let mut result = tx.prepare_cached(
            "INSERT INTO results (task, attempt, at_ms, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut put_row = |r: &Row| {
            put.execute(params![
                r.id,
                r.state,
                r.kind,
                r.idem,
                r.created_ms as i64,
                r.updated_ms as i64,
                r.body
            ])
        };
        for op in batch.iter() {
            match op {
                Op::Put(r) => {
                    put_row(r)?;
                }
                Op::Stream { task, seq, frame } => {
                    stream.execute(params![task, *seq as i64, frame.as_str()])?;
                }
                Op::Finish {
                    row: r,
                    attempt,
                    at_ms,
                    body,
                } => {
                    put_row(r)?;
                    result.execute(params![r.id, *attempt, *at_ms as i64, body])?;
                }
                Op::Delete(id) => {
                    tx.execute("DELETE FROM tasks WHERE id = ?1", [id])?;
                    tx.execute("DELETE FROM stream WHERE task = ?1", [id])?;
                }
                Op::Ack(_) | Op::Then(_) | Op::Read(_) | Op::Stop => {}
            }
        }
    }
    tx.commit()
}
