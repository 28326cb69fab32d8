//! The bounded queue between the bus and one session, and its slow-consumer policy.
//!
//! Publishers never wait on a subscriber: they `try_send` into its [`Outbox`]. When the
//! queue is full the policy decides: `disconnect` flags the session so that its owner
//! closes it (code 4008), `drop` counts the loss and remembers, per channel, the first
//! offset missed so that the session can be told exactly where to recover from.

use super::delivery::Delivery;
use crate::address::Address;
use crate::config::SlowConsumer;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Builds a connected pair with room for `capacity` frames.
pub(crate) fn outbox(capacity: usize, policy: SlowConsumer) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let state = Arc::new(State {
        policy,
        kicked: AtomicBool::new(false),
        kick: Notify::new(),
        dropped: AtomicU64::new(0),
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
        match self.tx.try_send(d.clone()) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            Err(mpsc::error::TrySendError::Full(_)) => match self.state.policy {
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
        self.rx.recv().await
    }

    /// Up to `limit` frames into `buf`, waiting for at least one; 0 once the session
    /// is gone from the bus.
    pub async fn recv_many(&mut self, buf: &mut Vec<Delivery>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// A frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
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
