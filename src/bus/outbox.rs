//! The bounded queue between the bus and one session, and its slow-consumer policy.
//!
//! Publishers never wait on a subscriber: they `try_send` into its [`Outbox`]. The
//! queue is bounded twice: in frames (`outbound_queue`) and in bytes of frame text
//! (`outbound_queue_bytes`), so that a stalled reader of large frames pins at most the
//! byte bound, not `outbound_queue` times the largest frame. The byte count is one
//! atomic add per queued frame and one subtraction per batch read; it counts a frame
//! shared by many sessions once per session, which overstates, never understates, what
//! one session pins. When either bound is reached the policy decides: `disconnect` flags the session so that its owner
//! closes it (code 4008), `drop` counts the loss and remembers, per channel, the first
//! offset missed so that the session can be told exactly where to recover from.

use super::delivery::Delivery;
use super::SlowConsumer;
use crate::address::Address;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// The sending half, held by channels and the presence table.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Delivery>,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    policy: SlowConsumer,
    kicked: AtomicBool,
    kick: Notify,
    dropped: AtomicU64,
    /// Bytes of frame text queued now, against `max_bytes`.
    queued_bytes: AtomicUsize,
    /// 0: no byte bound.
    max_bytes: usize,
    // Touched only when a message is dropped: the first missed offset per channel.
    missed: Mutex<BTreeMap<String, u64>>,
}

/// What the session learns after losing messages under the `drop` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// Messages dropped since the last report.
    pub dropped: u64,
    /// Per channel address, the first offset dropped; recover from `offset - 1`.
    pub first_missed: BTreeMap<String, u64>,
}

/// The receiving half: what a session (socket task or embedded agent) reads.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Delivery>,
    state: Arc<State>,
}

/// Builds a connected pair with room for `capacity` frames and `max_bytes` bytes of
/// frame text (0: no byte bound).
pub(crate) fn outbox(capacity: usize, max_bytes: usize, policy: SlowConsumer) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let state = Arc::new(State {
        policy,
        kicked: AtomicBool::new(false),
        kick: Notify::new(),
        dropped: AtomicU64::new(0),
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        missed: Mutex::new(BTreeMap::new()),
    });
    (
        Outbox {
            tx,
            state: state.clone(),
        },
        Inbox { rx, state },
    )
}

/// Result of offering a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    Dropped,
    Kicked,
    Gone,
}

impl Outbox {
    /// Queues `d` without waiting. `origin` names the channel, for lag reports.
    pub(crate) fn offer(&self, d: &Delivery, origin: Option<(&Address, u64)>) -> Offer {
        if self.state.kicked.load(Ordering::Relaxed) {
            return Offer::Kicked;
        }
        let len = d.text().len();
        let s = &self.state;
        // Reserve the bytes first: two publishers racing for the last bytes cannot both
        // get them. The first frame of an empty queue always fits, so a frame larger
        // than the bound still reaches a reader that keeps up.
        let before = s.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let full = s.max_bytes > 0 && before > 0 && before + len > s.max_bytes;
        let queued = if full {
            Offer::Dropped
        } else {
            match self.tx.try_send(d.clone()) {
                Ok(()) => return Offer::Queued,
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
                Err(mpsc::error::TrySendError::Full(_)) => Offer::Dropped,
            }
        };
        s.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        match queued {
            Offer::Gone => Offer::Gone,
            // Full, in frames or in bytes: the policy decides.
            _ => match self.state.policy {
                SlowConsumer::Disconnect => {
                    self.state.kicked.store(true, Ordering::Relaxed);
                    self.state.kick.notify_one();
                    Offer::Kicked
                }
                SlowConsumer::Drop => {
                    self.state.dropped.fetch_add(1, Ordering::Relaxed);
                    if let Some((addr, offset)) = origin {
                        let mut missed =
                            self.state.missed.lock().unwrap_or_else(|p| p.into_inner());
                        missed.entry(addr.to_string()).or_insert(offset);
                    }
                    Offer::Dropped
                }
            },
        }
    }
}

/// See [`Inbox::kick_signal`].
#[derive(Debug, Clone)]
pub struct KickSignal(Arc<State>);

impl KickSignal {
    /// Completes when the session has been flagged as a slow consumer.
    pub async fn kicked(&self) {
        loop {
            let notified = self.0.kick.notified();
            if self.0.kicked.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }
}

impl Inbox {
    /// The next frame; `None` once the session is gone from the bus.
    pub async fn recv(&mut self) -> Option<Delivery> {
        let d = self.rx.recv().await?;
        self.release(d.text().len());
        Some(d)
    }

    /// Up to `limit` frames appended to `buf`, waiting for at least one; 0 once the
    /// session is gone from the bus.
    pub async fn recv_many(&mut self, buf: &mut Vec<Delivery>, limit: usize) -> usize {
        let from = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        self.release(buf[from..].iter().map(|d| d.text().len()).sum());
        n
    }

    /// A frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let d = self.rx.try_recv().ok()?;
        self.release(d.text().len());
        Some(d)
    }

    /// Bytes of frame text queued now.
    pub fn queued_bytes(&self) -> usize {
        self.state.queued_bytes.load(Ordering::Relaxed)
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.state.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// A handle that completes when the bus flags this session as a slow consumer;
    /// separate from the inbox so that both can be awaited in one `select!`.
    pub fn kick_signal(&self) -> KickSignal {
        KickSignal(self.state.clone())
    }

    /// Whether the session was flagged as a slow consumer.
    pub fn is_kicked(&self) -> bool {
        self.state.kicked.load(Ordering::Relaxed)
    }

    /// Takes the loss report accumulated under the `drop` policy, if anything was lost.
    pub fn take_lag(&self) -> Option<Lag> {
        if self.state.dropped.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let dropped = self.state.dropped.swap(0, Ordering::Relaxed);
        let first_missed =
            std::mem::take(&mut *self.state.missed.lock().unwrap_or_else(|p| p.into_inner()));
        Some(Lag {
            dropped,
            first_missed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Envelope, FrameType};

    fn frame(bytes: usize) -> Delivery {
        Delivery::new(Envelope::new(
            FrameType::Message,
            serde_json::json!("x".repeat(bytes)),
        ))
    }

    #[tokio::test]
    async fn the_byte_bound_trips_before_the_frame_bound_and_reads_give_the_bytes_back() {
        let (tx, mut rx) = outbox(1000, 10_000, SlowConsumer::Drop);
        let f = frame(3_000);
        let n = f.text().len();
        let fits = 10_000 / n;
        for _ in 0..fits {
            assert_eq!(tx.offer(&f, None), Offer::Queued);
        }
        assert_eq!(rx.queued_bytes(), fits * n);
        assert_eq!(tx.offer(&f, None), Offer::Dropped, "over 10 000 bytes");
        assert_eq!(
            rx.queued_bytes(),
            fits * n,
            "a refused frame is not counted"
        );
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 2).await, 2);
        assert_eq!(rx.queued_bytes(), (fits - 2) * n);
        assert_eq!(tx.offer(&f, None), Offer::Queued, "room again");
        assert_eq!(rx.take_lag().map(|l| l.dropped), Some(1));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_bound_still_reaches_an_empty_queue_and_kicks_a_full_one() {
        let (tx, mut rx) = outbox(1000, 100, SlowConsumer::Disconnect);
        let big = frame(1_000);
        assert_eq!(tx.offer(&big, None), Offer::Queued);
        assert_eq!(tx.offer(&big, None), Offer::Kicked);
        assert!(rx.is_kicked());
        assert!(rx.try_recv().is_some());
        assert_eq!(rx.queued_bytes(), 0);
    }
}
