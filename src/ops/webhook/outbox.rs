//! A target's pending envelopes: a FIFO bounded in count and in bytes.
//!
//! The bus hands envelopes over as they are published; the target takes them one at a
//! time, at the pace its receiver answers. When a push would exceed either bound, the
//! configured [`OnFull`] decides: drop the oldest pending envelopes until the new one
//! fits, or refuse the new one. Either way the loss is counted, never silent. An
//! envelope larger than the byte bound alone is always refused.

use super::config::OnFull;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// One envelope waiting to be posted.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The `X-Hive-Delivery` id, the same for every attempt.
    pub(crate) delivery: String,
    /// The envelope's JSON text, posted as it is.
    pub(crate) body: String,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; `dropped` older envelopes made room for it.
    Queued {
        /// Oldest envelopes dropped.
        dropped: usize,
    },
    /// Not queued.
    Refused,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Pending>,
    bytes: usize,
}

/// A bounded FIFO of [`Pending`] envelopes with one waiting taker.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    max: usize,
    max_bytes: usize,
    on_full: OnFull,
}

impl Outbox {
    /// An empty outbox with these bounds (each at least 1).
    pub(crate) fn new(max: usize, max_bytes: usize, on_full: OnFull) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max: max.max(1),
            max_bytes: max_bytes.max(1),
            on_full,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `p` under the bounds.
    pub(crate) fn push(&self, p: Pending) -> Pushed {
        let size = p.body.len();
        if size > self.max_bytes {
            return Pushed::Refused;
        }
        let mut s = self.lock();
        let full = |s: &State| s.items.len() >= self.max || s.bytes + size > self.max_bytes;
        let mut dropped = 0;
        if full(&s) {
            if self.on_full == OnFull::Refuse {
                return Pushed::Refused;
            }
            while full(&s) {
                match s.items.pop_front() {
                    Some(old) => {
                        s.bytes -= old.body.len();
                        dropped += 1;
                    }
                    None => break,
                }
            }
        }
        s.bytes += size;
        s.items.push_back(p);
        drop(s);
        self.ready.notify_one();
        Pushed::Queued { dropped }
    }

    /// The oldest pending envelope, waiting for one.
    pub(crate) async fn pop(&self) -> Pending {
        loop {
            let ready = self.ready.notified();
            if let Some(p) = {
                let mut s = self.lock();
                let p = s.items.pop_front();
                if let Some(p) = &p {
                    s.bytes -= p.body.len();
                }
                p
            } {
                return p;
            }
            ready.await;
        }
    }

    /// Envelopes and bytes pending now.
    pub(crate) fn len(&self) -> (usize, usize) {
        let s = self.lock();
        (s.items.len(), s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: usize) -> Pending {
        Pending {
            delivery: n.to_string(),
            body: "x".repeat(n),
        }
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_within_count_and_bytes() {
        let o = Outbox::new(3, 10, OnFull::DropOldest);
        assert_eq!(o.push(p(4)), Pushed::Queued { dropped: 0 });
        assert_eq!(o.push(p(4)), Pushed::Queued { dropped: 0 });
        // 4 + 4 + 3 > 10: the oldest goes.
        assert_eq!(o.push(p(3)), Pushed::Queued { dropped: 1 });
        assert_eq!(o.len(), (2, 7));
        assert_eq!(o.push(p(11)), Pushed::Refused);
        assert_eq!(o.push(p(1)), Pushed::Queued { dropped: 0 });
        assert_eq!(o.push(p(1)), Pushed::Queued { dropped: 1 });
        assert_eq!(o.pop().await.body.len(), 3);
    }

    #[tokio::test]
    async fn refuse_keeps_the_oldest() {
        let o = Outbox::new(2, 100, OnFull::Refuse);
        o.push(p(1));
        o.push(p(2));
        assert_eq!(o.push(p(3)), Pushed::Refused);
        assert_eq!(o.pop().await.body.len(), 1);
        assert_eq!(o.pop().await.body.len(), 2);
        assert_eq!(o.len(), (0, 0));
    }
}
