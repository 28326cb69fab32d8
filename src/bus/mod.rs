//! The bus core: an in-process router of rooms, channels and sessions, with no sockets.
//!
//! [`Bus`] is a cheap-clone handle over `Arc<Shared>`. A session, remote (a WebSocket
//! task) or embedded (an agent in the same process), attaches with [`Bus::connect`] and
//! gets a [`Member`] to act with and an [`Inbox`] to read from; both paths use exactly
//! this API. Operators (the task queue, approvals, ...) are sessions too.
//!
//! Locking: the channel registry and the presence table are `DashMap`s (sharded, short
//! sections); each channel has its own mutex (see `channel`). The list of wildcard
//! subscriptions is a `RwLock`, written only on wildcard join / leave. No lock is held
//! while another of these is taken, except registry shard -> channel mutex.
//!
//! Bounds: channels (`max_channels`), subscriptions per session, history per channel
//! and in total (count, age, bytes), and each session's outbox (frames and bytes);
//! every overflow is named (`docs/PROTOCOL.md`). The bus imports only the wire types;
//! whatever sits above it (safety, operators) plugs in through [`PublishFilter`] or
//! attaches as a session.
//!
//! # Layout
//! - `config`: the `[bus]` section: [`BusConfig`], [`SlowConsumer`], bootstrap
//!   [`RoomConfig`].
//! - `channel`: one channel: offset, epoch, history and subscribers under one mutex;
//!   recovery by offset and epoch.
//! - `history`: the bounded ring of a channel's publishes and the bus-wide byte budget.
//! - `delivery`: [`Delivery`], a publish serialized once and shared by subscribers.
//! - `outbox`: the bounded per-session queue, the slow-consumer policy, [`Inbox`].
//! - `member`: [`Member`], what one attached session does: join, leave, publish.
//! - `publish`: publishing as the server (channels and PRIVATE), through the filter.
//! - `info`: presence rows, counters and channel summaries.

mod channel;
mod config;
mod delivery;
mod engine;
mod history;
mod info;
mod member;
mod outbox;
mod publish;
pub mod route;

pub(crate) use publish::Stamp;

pub use channel::{HistoryPage, Position, Recovery};
pub use config::{BusConfig, RoomConfig, SlowConsumer};
pub use delivery::Delivery;
pub use info::{ChannelInfo, ChannelSummary, PeerInfo, Presence, Stats};
pub use member::{JoinOutcome, Member};
pub use outbox::{Inbox, KickSignal, Lag};

use crate::address::{Address, Pattern};
use crate::error::{ErrorCode, WireError};
use crate::frame::{now_ts, Envelope};
use channel::Channel;
use dashmap::DashMap;
use outbox::Outbox;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

/// A hook run on every publish and PRIVATE frame before anything else sees it: before
/// stamping, history, fan-out and whatever the caller does with the returned
/// [`Delivery`] (trace logs, dead-letter). The safety layer implements it.
pub trait PublishFilter: Send + Sync + 'static {
    /// Inspects (and may rewrite) `env`, published at `addr` (`None` for PRIVATE).
    ///
    /// # Errors
    /// A refusal (`blocked`), returned to the sender as is; nothing was published.
    fn inspect(&self, addr: Option<&Address>, env: &mut Envelope) -> Result<(), WireError>;

    /// The name of a rule that `text` matches on its own, whatever the scope: for
    /// identifiers, which are refused when they look like a secret, never rewritten.
    fn secret_in(&self, text: &str) -> Option<String> {
        let _ = text;
        None
    }
}

/// A session id (`s-` and 12 hex digits), shared so that comparing two is one pointer
/// comparison on the fan-out path.
pub type SessionId = Arc<str>;

/// The in-process bus. Cheap to clone; every clone is the same bus.
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

struct Shared {
    config: BusConfig,
    channels: DashMap<Address, Arc<Channel>>,
    /// Bytes of history of all channels, against `history_bytes_total`.
    history: Arc<history::HistoryBudget>,
    /// Where channels get their order and keep their history (see `engine`).
    engine: Box<dyn engine::Engine>,
    /// Rooms and whether each is persistent (bootstrap or admin-made).
    rooms: DashMap<String, bool>,
    sessions: DashMap<SessionId, SessionEntry>,
    /// Wildcard subscriptions, applied to channels as they are created.
    patterns: RwLock<Vec<PatternSub>>,
    /// Set once, read lock-free on every publish.
    filter: OnceLock<Arc<dyn PublishFilter>>,
    started: Instant,
    connections_total: AtomicU64,
    messages: AtomicU64,
    deliveries: AtomicU64,
    dropped: AtomicU64,
}

struct SessionEntry {
    info: PeerInfo,
    connected_at: String,
    outbox: Outbox,
}

#[derive(Clone)]
struct PatternSub {
    pattern: Pattern,
    session: SessionId,
    outbox: Outbox,
    tags: Arc<route::Tags>,
}

impl Bus {
    /// Makes a bus and its bootstrap rooms and channels.
    ///
    /// # Errors
    /// [`WireError`] `invalid_address` when a configured room or channel name is invalid.
    ///
    /// ```
    /// let bus = hivebus::Bus::new(Default::default()).unwrap();
    /// assert_eq!(bus.stats().channels, 0);
    /// ```
    pub fn new(config: BusConfig) -> Result<Bus, WireError> {
        let rooms = config.rooms.clone();
        let budget = history::HistoryBudget::new(
            config.history_bytes_total,
            config.history_bytes_per_channel,
        );
        let engine = Box::new(engine::MemoryEngine::new(
            config.history_size,
            config.history_ttl(),
            budget.clone(),
        ));
        let bus = Bus {
            shared: Arc::new(Shared {
                history: budget,
                engine,
                config,
                channels: DashMap::new(),
                rooms: DashMap::new(),
                sessions: DashMap::new(),
                patterns: RwLock::new(Vec::new()),
                filter: OnceLock::new(),
                started: Instant::now(),
                connections_total: AtomicU64::new(0),
                messages: AtomicU64::new(0),
                deliveries: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        };
        for room in rooms {
            Pattern::parse(&room.name)?;
            bus.shared.rooms.insert(room.name.clone(), true);
            for ch in room.channels {
                bus.create_channel(&Address::new(&room.name, &ch)?, None)?;
            }
        }
        Ok(bus)
    }

    /// Installs the publish filter (the safety layer). It can be set once; the filter
    /// itself may swap its policy at run time.
    ///
    /// # Errors
    /// `conflict` when a filter is already installed.
    pub fn set_filter(&self, filter: Arc<dyn PublishFilter>) -> Result<(), WireError> {
        self.shared
            .filter
            .set(filter)
            .map_err(|_| WireError::new(ErrorCode::Conflict, "a publish filter is already set"))
    }

    /// Runs the publish filter on `env` as if it were published at `addr`, without
    /// publishing it: for frames and command arguments handed to an operator, which
    /// may store them (queue, dead-letter) before anything reaches the bus.
    ///
    /// # Errors
    /// `blocked` when the filter refuses it.
    pub fn inspect(&self, addr: Option<&Address>, env: &mut Envelope) -> Result<(), WireError> {
        match self.shared.filter.get() {
            Some(f) => f.inspect(addr, env),
            None => Ok(()),
        }
    }

    /// The safety rule `text` would match on its own, if any (see
    /// [`PublishFilter::secret_in`]).
    pub fn secret_in(&self, text: &str) -> Option<String> {
        self.shared.filter.get().and_then(|f| f.secret_in(text))
    }

    /// Bytes of history retained by all channels together (at most
    /// `history_bytes_total`).
    pub fn history_bytes(&self) -> usize {
        self.shared.history.used()
    }

    /// The engine channels take their order and history from (`memory`).
    pub fn engine(&self) -> &'static str {
        self.shared.engine.name()
    }

    /// A handle that does not keep the bus alive.
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.shared))
    }

    /// The configuration this bus was made with.
    pub fn config(&self) -> &BusConfig {
        &self.shared.config
    }

    /// Attaches a session and returns its handle and inbox. Detaches when the
    /// [`Member`] is dropped.
    pub fn connect(&self, info: PeerInfo) -> (Member, Inbox) {
        let id: SessionId =
            format!("s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]).into();
        let tags = Arc::new(route::Tags {
            roles: info.roles.clone(),
            expertise: info.expertise.clone(),
        });
        let (outbox, inbox) = outbox::outbox(
            self.shared.config.outbound_queue,
            self.shared.config.outbound_queue_bytes,
            self.shared.config.slow_consumer,
        );
        self.shared.sessions.insert(
            id.clone(),
            SessionEntry {
                info,
                connected_at: now_ts(),
                outbox: outbox.clone(),
            },
        );
        self.shared
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        (Member::new(self.clone(), id, outbox, tags), inbox)
    }

    /// Reads a channel's history: after `since` when given, else the newest `limit`.
    ///
    /// # Errors
    /// `channel_not_found` when the channel does not exist.
    pub fn history(
        &self,
        addr: &Address,
        since: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, WireError> {
        let limit = limit.min(self.shared.config.max_history_page);
        Ok(self.existing(addr)?.history(since, limit))
    }

    /// Creates a persistent channel (and its room), as an admin or bootstrap config does.
    ///
    /// # Errors
    /// `channel_exists` when it already exists.
    pub fn create_channel(&self, addr: &Address, by: Option<&str>) -> Result<(), WireError> {
        self.shared.rooms.insert(addr.room().to_owned(), true);
        match self.make_channel(addr, by.map(str::to_owned), true)? {
            (_, true) => Ok(()),
            (_, false) => Err(WireError::new(
                ErrorCode::ChannelExists,
                format!("{addr} already exists"),
            )),
        }
    }

    /// Deletes a channel that nobody is subscribed to; its history goes with it.
    ///
    /// # Errors
    /// `channel_not_found`, or `channel_not_empty` while it has subscribers.
    pub fn delete_channel(&self, addr: &Address) -> Result<(), WireError> {
        let ch = self.existing(addr)?;
        if !ch.close_if_unused(true, Duration::ZERO) {
            return Err(WireError::new(
                ErrorCode::ChannelNotEmpty,
                format!("{addr} has {} subscriber(s)", ch.subscriber_count()),
            ));
        }
        self.shared
            .channels
            .remove_if(addr, |_, v| Arc::ptr_eq(v, &ch));
        Ok(())
    }

    /// Channels whose room matches `room` (all channels when `None`), sorted by address.
    pub fn list_channels(&self, room: Option<&str>) -> Vec<ChannelSummary> {
        let mut out: Vec<ChannelSummary> = self
            .channels_where(|a| room.is_none_or(|r| a.room() == r))
            .iter()
            .map(|ch| {
                let snap = ch.snapshot();
                ChannelSummary {
                    address: ch.addr.to_string(),
                    subscribers: snap.subscribers.len(),
                    offset: snap.position.offset,
                    epoch: snap.position.epoch,
                    persistent: ch.persistent,
                }
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        out
    }

    /// Rooms, sorted.
    pub fn list_rooms(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self.shared.rooms.iter().map(|r| r.key().clone()).collect();
        rooms.sort();
        rooms
    }

    /// A channel's position, metadata and participants (presence).
    ///
    /// # Errors
    /// `channel_not_found` when it does not exist.
    pub fn channel_info(&self, addr: &Address) -> Result<ChannelInfo, WireError> {
        let ch = self.existing(addr)?;
        let snap = ch.snapshot();
        let mut participants: Vec<Presence> = snap
            .subscribers
            .iter()
            .filter_map(|id| self.presence_of(id))
            .collect();
        participants.sort_by(|a, b| a.session.cmp(&b.session));
        Ok(ChannelInfo {
            address: addr.to_string(),
            offset: snap.position.offset,
            epoch: snap.position.epoch,
            history: snap.history_len,
            created_at: ch.created_at.clone(),
            created_by: ch.created_by.clone(),
            persistent: ch.persistent,
            participants,
        })
    }

    /// One session's presence row.
    pub fn presence_of(&self, id: &str) -> Option<Presence> {
        self.shared.sessions.get(id).map(|e| Presence {
            session: id.to_owned(),
            info: e.info.clone(),
            connected_at: e.connected_at.clone(),
        })
    }

    /// Every attached session.
    pub fn presence(&self) -> Vec<Presence> {
        let ids: Vec<SessionId> = self
            .shared
            .sessions
            .iter()
            .map(|e| e.key().clone())
            .collect();
        ids.iter().filter_map(|id| self.presence_of(id)).collect()
    }

    /// Server-wide counters.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            connections: s.sessions.len(),
            connections_total: s.connections_total.load(Ordering::Relaxed),
            rooms: s.rooms.len(),
            channels: s.channels.len(),
            messages: s.messages.load(Ordering::Relaxed),
            deliveries: s.deliveries.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            uptime_secs: s.started.elapsed().as_secs(),
            history_bytes: s.history.used(),
        }
    }

    /// Removes channels nobody uses: no subscribers, not persistent, nothing left in
    /// history, empty for `channel_idle_secs`; then rooms left without channels or
    /// subscriptions. Returns how many channels went. The server calls this
    /// periodically; an embedding program may too.
    pub fn sweep(&self) -> usize {
        let idle = Duration::from_secs(self.shared.config.channel_idle_secs);
        let mut removed = 0;
        for ch in self.channels_where(|_| true) {
            if ch.close_if_unused(false, idle) {
                self.shared
                    .channels
                    .remove_if(&ch.addr, |_, v| Arc::ptr_eq(v, &ch));
                removed += 1;
            }
        }
        let in_use: std::collections::HashSet<String> = self
            .shared
            .channels
            .iter()
            .map(|c| c.key().room().to_owned())
            .collect();
        let watched = self.read_patterns();
        self.shared.rooms.retain(|room, persistent| {
            *persistent
                || in_use.contains(room)
                || watched
                    .iter()
                    .any(|p| matches!(&p.pattern, Pattern::Room(r) if r == room))
        });
        removed
    }

    // ---- internals used by Member ----

    fn existing(&self, addr: &Address) -> Result<Arc<Channel>, WireError> {
        self.shared
            .channels
            .get(addr)
            .map(|c| c.clone())
            .ok_or_else(|| WireError::new(ErrorCode::ChannelNotFound, format!("no channel {addr}")))
    }

    /// The channel, created on demand when `auto_create` allows.
    fn channel_for_join(&self, addr: &Address, by: &str) -> Result<Arc<Channel>, WireError> {
        if let Some(ch) = self.shared.channels.get(addr) {
            return Ok(ch.clone());
        }
        if !self.shared.config.auto_create {
            return Err(if self.shared.rooms.contains_key(addr.room()) {
                WireError::new(ErrorCode::ChannelNotFound, format!("no channel {addr}"))
            } else {
                WireError::new(ErrorCode::RoomNotFound, format!("no room {}", addr.room()))
            });
        }
        self.shared
            .rooms
            .entry(addr.room().to_owned())
            .or_insert(false);
        Ok(self.make_channel(addr, Some(by.to_owned()), false)?.0)
    }

    /// The channel at `addr`, made now if absent (then true), with the wildcard
    /// subscriptions that cover it attached. Refused at `max_channels`.
    fn make_channel(
        &self,
        addr: &Address,
        by: Option<String>,
        persistent: bool,
    ) -> Result<(Arc<Channel>, bool), WireError> {
        if let Some(ch) = self.shared.channels.get(addr) {
            return Ok((ch.clone(), false));
        }
        self.check_channel_room()?;
        let mut created = false;
        let ch = self
            .shared
            .channels
            .entry(addr.clone())
            .or_insert_with(|| {
                created = true;
                Channel::new(
                    addr.clone(),
                    &self.shared.config,
                    self.shared.engine.as_ref(),
                    by,
                    persistent,
                )
            })
            .clone();
        if created {
            self.attach_patterns(&ch);
        }
        Ok((ch, created))
    }

    /// Refuses a new channel at `max_channels`. Checked before creating, so that a
    /// burst of concurrent creations may overshoot by at most the number of racers.
    fn check_channel_room(&self) -> Result<(), WireError> {
        let max = self.shared.config.max_channels;
        if self.shared.channels.len() >= max {
            return Err(WireError::new(
                ErrorCode::Overloaded,
                format!("the bus holds its maximum of {max} channels"),
            )
            .with_details(serde_json::json!({"max_channels": max})));
        }
        Ok(())
    }

    fn channel_for_publish(&self, addr: &Address) -> Result<Arc<Channel>, WireError> {
        self.channel_for_join(addr, "server")
    }

    /// Makes sure the room of a room-wide subscription exists.
    fn ensure_room(&self, room: &str) -> Result<(), WireError> {
        if self.shared.rooms.contains_key(room) {
            return Ok(());
        }
        if !self.shared.config.auto_create {
            return Err(WireError::new(
                ErrorCode::RoomNotFound,
                format!("no room {room}"),
            ));
        }
        self.shared.rooms.entry(room.to_owned()).or_insert(false);
        Ok(())
    }

    fn channels_where(&self, keep: impl Fn(&Address) -> bool) -> Vec<Arc<Channel>> {
        self.shared
            .channels
            .iter()
            .filter(|c| keep(c.key()))
            .map(|c| c.value().clone())
            .collect()
    }

    fn read_patterns(&self) -> Vec<PatternSub> {
        self.shared
            .patterns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Subscribes the wildcard subscriptions that cover a new channel.
    fn attach_patterns(&self, ch: &Arc<Channel>) {
        for p in self.read_patterns() {
            if p.pattern.matches(&ch.addr) {
                // A closed channel here was removed already; nothing to attach to.
                let _ = ch.subscribe(&p.session, &p.outbox, &p.tags, &p.pattern, None);
            }
        }
    }

    fn detach(&self, id: &SessionId) {
        self.shared.sessions.remove(id);
    }
}

/// A [`Bus`] handle that does not keep it alive; see [`Bus::downgrade`].
#[derive(Clone)]
pub struct WeakBus(Weak<Shared>);

impl WeakBus {
    /// The bus, if it still exists.
    pub fn upgrade(&self) -> Option<Bus> {
        self.0.upgrade().map(|shared| Bus { shared })
    }
}

impl std::fmt::Debug for WeakBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakBus")
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("stats", &self.stats()).finish()
    }
}

#[cfg(test)]
mod tests;
