//! [`Member`]: what one attached session does on the bus: join, leave, publish, send
//! privately. The WebSocket session and an embedded agent both hold one.
//!
//! A member remembers its own subscriptions, so that a publish to a joined channel needs
//! no registry lookup, and so that dropping the member removes every trace of it.

use super::channel::{Channel, Closed, Position, Recovery};
use super::delivery::Delivery;
use super::outbox::Outbox;
use super::route::{Route, Tags};
use super::{Bus, PatternSub, SessionId};
use crate::address::{Address, Pattern};
use crate::error::{ErrorCode, WireError};
use crate::frame::Envelope;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A session's handle on the bus. Dropping it detaches the session.
pub struct Member {
    bus: Bus,
    id: SessionId,
    outbox: Outbox,
    /// What the session declared for routing (fixed for its life).
    tags: Arc<Tags>,
    subs: Mutex<Subs>,
}

#[derive(Default)]
struct Subs {
    exact: HashMap<Address, Arc<Channel>>,
    patterns: Vec<Pattern>,
}

impl Subs {
    fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }
}

/// What a join did.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    /// The subscription as stored (`room:*` for a whole room).
    pub pattern: String,
    /// The channels that exist now and are covered, with their position at the moment
    /// of joining: what is delivered live afterwards has a greater offset.
    pub channels: Vec<(Address, Position)>,
    /// For each channel that was asked to recover, what it recovered.
    pub recovery: Vec<(Address, Recovery)>,
}

impl Member {
    pub(super) fn new(bus: Bus, id: SessionId, outbox: Outbox, tags: Arc<Tags>) -> Self {
        Member {
            bus,
            id,
            outbox,
            tags,
            subs: Mutex::new(Subs::default()),
        }
    }

    fn subs(&self) -> MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the session declared for routing.
    pub fn tags(&self) -> &Arc<Tags> {
        &self.tags
    }

    /// The bus this member is attached to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Subscribes to `pattern`. For each channel in `recover` (its last seen position),
    /// returns what was published after it, read atomically with the subscription.
    /// Joining twice is harmless and recovers again.
    ///
    /// # Errors
    /// `too_many_subscriptions`, `room_not_found` / `channel_not_found` when it may not
    /// be created.
    ///
    /// ```
    /// # use hivebus::{Bus, PeerInfo, Pattern};
    /// let bus = Bus::new(Default::default()).unwrap();
    /// let (member, _inbox) = bus.connect(PeerInfo::default());
    /// let out = member.join(&Pattern::parse("bip-43:general").unwrap(), &Default::default()).unwrap();
    /// assert_eq!(out.channels.len(), 1);
    /// ```
    pub fn join(
        &self,
        pattern: &Pattern,
        recover: &HashMap<Address, Position>,
    ) -> Result<JoinOutcome, WireError> {
        let already = {
            let subs = self.subs();
            let already = match pattern {
                Pattern::Exact(a) => subs.exact.contains_key(a),
                _ => subs.patterns.contains(pattern),
            };
            if !already && subs.len() >= self.bus.shared.config.max_subscriptions {
                return Err(WireError::new(
                    ErrorCode::TooManySubscriptions,
                    format!(
                        "at most {} subscriptions per session",
                        self.bus.shared.config.max_subscriptions
                    ),
                )
                .with_details(serde_json::json!({"max_subscriptions": self.bus.shared.config.max_subscriptions})));
            }
            already
        };
        let mut outcome = JoinOutcome {
            pattern: pattern.to_string(),
            channels: Vec::new(),
            recovery: Vec::new(),
        };
        if let Pattern::Exact(addr) = pattern {
            let ch = self.subscribe_exact(addr, pattern, recover.get(addr), &mut outcome)?;
            self.subs().exact.insert(addr.clone(), ch);
            return Ok(outcome);
        }
        if let Pattern::Room(room) = pattern {
            self.bus.ensure_room(room)?;
        }
        if !already {
            self.bus
                .shared
                .patterns
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(PatternSub {
                    pattern: pattern.clone(),
                    session: self.id.clone(),
                    outbox: self.outbox.clone(),
                    tags: self.tags.clone(),
                });
            self.subs().patterns.push(pattern.clone());
        }
        for ch in self.bus.channels_where(|a| pattern.matches(a)) {
            // A channel closed under us was removed: it is simply not covered any more.
            if let Ok((pos, r)) = ch.subscribe(
                &self.id,
                &self.outbox,
                &self.tags,
                pattern,
                recover.get(&ch.addr),
            ) {
                outcome.channels.push((ch.addr.clone(), pos));
                if let Some(r) = r {
                    outcome.recovery.push((ch.addr.clone(), r));
                }
            }
        }
        outcome.channels.sort_by(|a, b| a.0.cmp(&b.0));
        outcome.recovery.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(outcome)
    }

    fn subscribe_exact(
        &self,
        addr: &Address,
        pattern: &Pattern,
        recover: Option<&Position>,
        outcome: &mut JoinOutcome,
    ) -> Result<Arc<Channel>, WireError> {
        for _ in 0..3 {
            let ch = self.bus.channel_for_join(addr, &self.id)?;
            match ch.subscribe(&self.id, &self.outbox, &self.tags, pattern, recover) {
                Ok((pos, r)) => {
                    outcome.channels.push((addr.clone(), pos));
                    if let Some(r) = r {
                        outcome.recovery.push((addr.clone(), r));
                    }
                    return Ok(ch);
                }
                Err(Closed) => continue,
            }
        }
        Err(WireError::new(
            ErrorCode::Internal,
            "channel kept closing under join",
        ))
    }

    /// Removes the subscription `pattern`; returns the channels that no longer reach
    /// this session.
    ///
    /// # Errors
    /// `not_joined` when the session holds no such subscription.
    pub fn leave(&self, pattern: &Pattern) -> Result<Vec<Address>, WireError> {
        let not_joined = || {
            WireError::new(
                ErrorCode::NotJoined,
                format!("no subscription {pattern} to leave"),
            )
        };
        let mut left = Vec::new();
        if let Pattern::Exact(addr) = pattern {
            let ch = self.subs().exact.remove(addr).ok_or_else(not_joined)?;
            if ch.unsubscribe(&self.id, Some(pattern)) {
                left.push(addr.clone());
            }
            return Ok(left);
        }
        {
            let mut subs = self.subs();
            let i = subs
                .patterns
                .iter()
                .position(|p| p == pattern)
                .ok_or_else(not_joined)?;
            subs.patterns.remove(i);
        }
        self.bus
            .shared
            .patterns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| !(Arc::ptr_eq(&p.session, &self.id) && &p.pattern == pattern));
        for ch in self.bus.channels_where(|a| pattern.matches(a)) {
            if ch.unsubscribe(&self.id, Some(pattern)) {
                left.push(ch.addr.clone());
            }
        }
        left.sort();
        Ok(left)
    }

    /// The session's subscriptions, as strings.
    pub fn subscriptions(&self) -> Vec<String> {
        let subs = self.subs();
        let mut out: Vec<String> = subs.exact.keys().map(|a| a.to_string()).collect();
        out.extend(subs.patterns.iter().map(|p| p.to_string()));
        out.sort();
        out
    }

    /// Publishes `env` on `addr`, stamped as sent by this session. The session must
    /// have joined `addr`, exactly or through a wildcard; `echo` delivers it to the
    /// session itself as well. Returns the frame as subscribers got it.
    ///
    /// # Errors
    /// `not_joined` when no subscription covers `addr`.
    pub fn publish(
        &self,
        addr: &Address,
        env: Envelope,
        echo: bool,
    ) -> Result<Delivery, WireError> {
        self.publish_routed(addr, env, echo, None)
    }

    /// [`Member::publish`], delivered only to the subscribers `route` admits
    /// (`bus::route`); history keeps it as any publish.
    ///
    /// # Errors
    /// As [`Member::publish`].
    pub fn publish_routed(
        &self,
        addr: &Address,
        mut env: Envelope,
        echo: bool,
        route: Option<&Route>,
    ) -> Result<Delivery, WireError> {
        env.from = Some(self.id.to_string());
        let joined = {
            let subs = self.subs();
            match subs.exact.get(addr) {
                Some(ch) => Some(ch.clone()),
                None if subs.patterns.iter().any(|p| p.matches(addr)) => None,
                None => {
                    return Err(WireError::new(
                        ErrorCode::NotJoined,
                        format!("join {addr} first"),
                    ))
                }
            }
        };
        let ch = match joined {
            Some(ch) => ch,
            None => self.bus.channel_for_join(addr, &self.id)?,
        };
        self.bus.publish_on(&ch, env, Some(&self.id), echo, route)
    }

    /// Sends `env` to the sessions in `to`, stamped as sent by this session. Returns
    /// the ids that named no live session.
    ///
    /// # Errors
    /// `blocked` when the safety layer refuses it.
    pub fn send_private(&self, to: &[String], mut env: Envelope) -> Result<Vec<String>, WireError> {
        env.from = Some(self.id.to_string());
        self.bus.send_private(to, env)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let subs = std::mem::take(&mut *self.subs());
        for ch in subs.exact.values() {
            ch.unsubscribe(&self.id, None);
        }
        if !subs.patterns.is_empty() {
            self.bus
                .shared
                .patterns
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|p| !Arc::ptr_eq(&p.session, &self.id));
            for ch in self
                .bus
                .channels_where(|a| subs.patterns.iter().any(|p| p.matches(a)))
            {
                ch.unsubscribe(&self.id, None);
            }
        }
        self.bus.detach(&self.id);
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("id", &self.id).finish()
    }
}
