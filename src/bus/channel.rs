//! [`Channel`]: one `room:channel`, its log (offset, epoch, history: the engine's, see
//! `engine`) and its local subscribers.
//!
//! One mutex guards all of it, so that offset assignment, the history append and the
//! fan-out happen as one step: every subscriber sees a channel's publishes in offset
//! order, and a join that recovers from history can neither miss nor repeat a publish
//! that races with it. The critical section does no I/O and never waits: subscribers
//! are fed with `try_send` (see `outbox`).

use super::delivery::Delivery;
use super::engine::{ChannelLog, Engine};
use super::outbox::{Offer, Outbox};
use super::route::{Route, Tags};
use super::BusConfig;
use super::SessionId;
use crate::address::{Address, Pattern};
use crate::frame::{now_ts, Envelope};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// A channel's position: where a subscriber is, or where the channel is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The last offset seen (0 before the first publish).
    pub offset: u64,
    /// The epoch that offset belongs to.
    pub epoch: String,
}

/// The outcome of a join that asked to recover.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// True when `messages` is exactly everything published after the given position.
    pub recovered: bool,
    /// True when nothing was lost but the missed publishes did not fit in one reply
    /// (`max_page_bytes`): `recovered` is then false, and the client pages the rest
    /// with `history {since}` from the last offset it got.
    pub more: bool,
    /// What history still held after the position (nothing when the epoch changed).
    pub messages: Vec<Delivery>,
    /// The channel's position now.
    pub position: Position,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The publishes, oldest first.
    pub messages: Vec<Delivery>,
    /// The channel's position now.
    pub position: Position,
    /// False when publishes in the asked range were already evicted.
    pub complete: bool,
    /// True when the byte budget cut the page; ask again from its last offset.
    pub more: bool,
}

/// What `channel_info` reports, before presence details are added.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) subscribers: Vec<SessionId>,
    pub(crate) position: Position,
    pub(crate) history_len: usize,
}

pub(crate) struct Channel {
    pub(crate) addr: Address,
    pub(crate) created_at: String,
    pub(crate) created_by: Option<String>,
    /// Bootstrap and admin-created channels are never swept.
    pub(crate) persistent: bool,
    /// Byte budget of one history page or recovery (`max_page_bytes`).
    page_bytes: usize,
    state: Mutex<State>,
}

struct State {
    /// Offset, epoch and history, from the engine.
    log: Box<dyn ChannelLog>,
    subs: Vec<Sub>,
    /// Set when the channel is removed from the registry; late joiners retry.
    closed: bool,
    /// When the last subscriber left.
    empty_since: Instant,
}

struct Sub {
    session: SessionId,
    outbox: Outbox,
    /// The session's declared roles and expertise, for routed publishes.
    tags: Arc<Tags>,
    /// The subscriptions of this session that cover this channel; delivery happens once.
    reasons: Vec<Pattern>,
}

/// The channel was removed while the caller held it.
#[derive(Debug)]
pub(crate) struct Closed;

/// Counts from one fan-out, for the bus statistics.
pub(crate) struct Fanout {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) delivery: Delivery,
    /// History of the whole bus passed its reclaim mark (see `bus::history`).
    pub(crate) history_pressed: bool,
}

impl Channel {
    pub(crate) fn new(
        addr: Address,
        config: &BusConfig,
        engine: &dyn Engine,
        created_by: Option<String>,
        persistent: bool,
    ) -> Arc<Self> {
        let log = engine.open(&addr);
        Arc::new(Channel {
            addr,
            created_at: now_ts(),
            created_by,
            persistent,
            page_bytes: config.max_page_bytes,
            state: Mutex::new(State {
                log,
                subs: Vec::new(),
                closed: false,
                empty_since: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this file; the state is
        // still consistent field by field, so keep serving rather than poison the bus.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stamps `env` with the next offset, stores it and queues it to every subscriber
    /// (the sender only when `echo`).
    pub(crate) fn publish(
        &self,
        mut env: Envelope,
        sender: Option<&SessionId>,
        echo: bool,
        route: Option<&Route>,
    ) -> Result<Fanout, Box<Envelope>> {
        let mut st = self.lock();
        if st.closed {
            // Hand the envelope back so the caller can retry without having cloned it.
            return Err(Box::new(env));
        }
        let offset = st.log.next_offset();
        env.offset = Some(offset);
        env.epoch = Some(st.log.epoch().to_owned());
        let delivery = Delivery::text_only(env);
        Ok(self.fan_out(st, offset, delivery, sender, echo, route))
    }

    /// Publishes a frame whose text `make(offset, epoch)` writes (under the channel's
    /// lock, as `publish` serializes under it): for a server-side maker that writes its
    /// frames from typed fields instead of an [`Envelope`]. `None` when the channel
    /// closed; `make` was not called then.
    pub(crate) fn publish_text(&self, make: &dyn Fn(u64, &str) -> String) -> Option<Fanout> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        let offset = st.log.next_offset();
        let epoch = st.log.epoch().to_owned();
        let text = make(offset, &epoch);
        let delivery = Delivery::from_text(text, Some(offset), Some(epoch));
        Some(self.fan_out(st, offset, delivery, None, false, None))
    }

    /// Stores `delivery` in history and queues it to every subscriber.
    fn fan_out(
        &self,
        mut st: MutexGuard<'_, State>,
        offset: u64,
        delivery: Delivery,
        sender: Option<&SessionId>,
        echo: bool,
        route: Option<&Route>,
    ) -> Fanout {
        st.log.keep(offset, &delivery, Instant::now());
        let (mut delivered, mut dropped) = (0, 0);
        for sub in &st.subs {
            if !echo && sender.is_some_and(|s| Arc::ptr_eq(s, &sub.session)) {
                continue;
            }
            if route.is_some_and(|r| !r.admits(&sub.tags)) {
                continue;
            }
            match sub.outbox.offer(&delivery, Some((&self.addr, offset))) {
                Offer::Queued => delivered += 1,
                Offer::Dropped | Offer::Kicked => dropped += 1,
                Offer::Gone => {}
            }
        }
        Fanout {
            delivered,
            dropped,
            delivery,
            history_pressed: st.log.pressed(),
        }
    }

    /// Bytes of history this channel retains.
    pub(crate) fn history_bytes(&self) -> usize {
        self.lock().log.bytes()
    }

    /// Evicts this channel's oldest publishes until at most `level` bytes remain;
    /// returns the bytes freed.
    pub(crate) fn trim_history(&self, level: usize) -> usize {
        self.lock().log.trim_to(level)
    }

    /// Adds `reason` to the session's subscription, and when `recover` is given, reads
    /// what it missed in the same critical section.
    pub(crate) fn subscribe(
        &self,
        session: &SessionId,
        outbox: &Outbox,
        tags: &Arc<Tags>,
        reason: &Pattern,
        recover: Option<&Position>,
    ) -> Result<(Position, Option<Recovery>), Closed> {
        let mut st = self.lock();
        if st.closed {
            return Err(Closed);
        }
        match st
            .subs
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.session, session))
        {
            Some(sub) if !sub.reasons.contains(reason) => sub.reasons.push(reason.clone()),
            Some(_) => {}
            None => st.subs.push(Sub {
                session: session.clone(),
                outbox: outbox.clone(),
                tags: tags.clone(),
                reasons: vec![reason.clone()],
            }),
        }
        let position = Position {
            offset: st.log.top(),
            epoch: st.log.epoch().to_owned(),
        };
        let Some(pos) = recover else {
            return Ok((position, None));
        };
        st.log.expire(Instant::now());
        if pos.epoch != position.epoch || pos.offset > position.offset {
            let r = Recovery {
                recovered: false,
                more: false,
                messages: Vec::new(),
                position: position.clone(),
            };
            return Ok((position, Some(r)));
        }
        let range = st.log.after(pos.offset, usize::MAX, self.page_bytes);
        let r = Recovery {
            recovered: range.complete && !range.more,
            more: range.more,
            messages: range.messages,
            position: position.clone(),
        };
        Ok((position, Some(r)))
    }

    /// Removes `reason` from the session's subscription; true when the session no longer
    /// receives from this channel.
    pub(crate) fn unsubscribe(&self, session: &SessionId, reason: Option<&Pattern>) -> bool {
        let mut st = self.lock();
        let Some(i) = st
            .subs
            .iter()
            .position(|s| Arc::ptr_eq(&s.session, session))
        else {
            return true;
        };
        let gone = match reason {
            Some(r) => {
                st.subs[i].reasons.retain(|x| x != r);
                st.subs[i].reasons.is_empty()
            }
            None => true,
        };
        if gone {
            st.subs.swap_remove(i);
            if st.subs.is_empty() {
                st.empty_since = Instant::now();
            }
        }
        gone
    }

    /// Reads history: after `since` when given, else the newest `limit`.
    pub(crate) fn history(&self, since: Option<u64>, limit: usize) -> HistoryPage {
        let mut st = self.lock();
        st.log.expire(Instant::now());
        let position = Position {
            offset: st.log.top(),
            epoch: st.log.epoch().to_owned(),
        };
        let r = match since {
            Some(s) => st.log.after(s, limit, self.page_bytes),
            None => st.log.last(limit, self.page_bytes),
        };
        HistoryPage {
            messages: r.messages,
            position,
            complete: r.complete,
            more: r.more,
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            subscribers: st.subs.iter().map(|s| s.session.clone()).collect(),
            position: Position {
                offset: st.log.top(),
                epoch: st.log.epoch().to_owned(),
            },
            history_len: st.log.len(),
        }
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().subs.len()
    }

    /// Marks the channel closed when it has no subscribers and, unless `force`, has
    /// been empty for `idle` with nothing left in history. True when closed.
    pub(crate) fn close_if_unused(&self, force: bool, idle: std::time::Duration) -> bool {
        let mut st = self.lock();
        if !st.subs.is_empty() {
            return false;
        }
        if !force {
            st.log.expire(Instant::now());
            if self.persistent || !st.log.is_empty() || st.empty_since.elapsed() < idle {
                return false;
            }
        }
        st.closed = true;
        true
    }
}
