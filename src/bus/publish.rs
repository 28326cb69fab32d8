//! Publishing as the server: on a channel (stamped, stored in history, fanned out) and
//! privately to named sessions, with or without the publish filter.
//!
//! Sessions publish through their [`Member`](super::Member); these are the paths of the
//! server itself and of operators. [`Bus::publish`] and [`Bus::send_private`] run the
//! filter (the safety layer); the crate-private `*_inspected` / `*_text` variants are
//! for operators republishing what a session sent, which was inspected when it arrived,
//! and `publish_text` lets the maker write the frame's text from typed fields instead
//! of building an [`Envelope`].

use super::channel::{self, Channel};
use super::route::Route;
use super::{Bus, Delivery, SessionId};
use crate::address::Address;
use crate::error::{ErrorCode, WireError};
use crate::frame::{now_ts, Envelope};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Bus {
    /// Publishes `env` on `addr` as the server (no membership check), creating the
    /// channel when `auto_create` allows. Stamps `ts`, `room`, `channel`, `offset`,
    /// `epoch`; keeps `from` as given. Returns the frame exactly as subscribers got it.
    ///
    /// # Errors
    /// `channel_not_found` / `room_not_found` when the channel does not exist and may
    /// not be created; `blocked` when the publish filter refuses it.
    pub fn publish(&self, addr: &Address, env: Envelope) -> Result<Delivery, WireError> {
        let ch = self.channel_for_publish(addr)?;
        self.publish_on(&ch, env, None, false, None)
    }

    pub(super) fn publish_on(
        &self,
        ch: &Arc<Channel>,
        mut env: Envelope,
        sender: Option<&SessionId>,
        echo: bool,
        route: Option<&Route>,
    ) -> Result<Delivery, WireError> {
        if let Some(f) = self.shared.filter.get() {
            f.inspect(Some(&ch.addr), &mut env)?;
        }
        env.ts = Some(now_ts());
        env.room = Some(ch.addr.room().to_owned());
        env.channel = Some(ch.addr.channel().to_owned());
        env.echo = None;
        let mut current = ch.clone();
        // A channel removed between lookup and publish is made again (at most twice:
        // removal needs an idle channel, and this publish makes it busy).
        for _ in 0..3 {
            match current.publish(env, sender, echo, route) {
                Ok(f) => return Ok(self.counted(f)),
                Err(back) => {
                    env = *back;
                    current = self.channel_for_publish(&ch.addr)?;
                }
            }
        }
        Err(kept_closing())
    }

    /// [`Bus::publish`] of a frame its maker writes as text, given the stamp (`ts`,
    /// address, offset, epoch) the bus would have put in an envelope: no envelope is
    /// built (see `ops::queue::frames`). Not inspected: for an operator republishing
    /// what a session sent, which the session inspected when the operator claimed it;
    /// inspecting it again would cost a second scan and, in monitor mode, count its
    /// findings twice.
    ///
    /// # Errors
    /// As [`Bus::publish`], except `blocked`.
    pub(crate) fn publish_text(
        &self,
        addr: &Address,
        make: &dyn Fn(&Stamp<'_>) -> String,
    ) -> Result<Delivery, WireError> {
        let ts = now_ts();
        let mut ch = self.channel_for_publish(addr)?;
        // Remade when removed between lookup and publish, as in `publish_on`.
        for _ in 0..3 {
            let made = ch.publish_text(&|offset, epoch| {
                make(&Stamp {
                    ts: &ts,
                    room: addr.room(),
                    channel: addr.channel(),
                    offset,
                    epoch,
                })
            });
            match made {
                Some(f) => return Ok(self.counted(f)),
                None => ch = self.channel_for_publish(addr)?,
            }
        }
        Err(kept_closing())
    }

    fn counted(&self, f: channel::Fanout) -> Delivery {
        let s = &self.shared;
        s.messages.fetch_add(1, Ordering::Relaxed);
        s.deliveries.fetch_add(f.delivered, Ordering::Relaxed);
        if f.dropped > 0 {
            s.dropped.fetch_add(f.dropped, Ordering::Relaxed);
        }
        if f.history_pressed {
            self.reclaim_history();
        }
        f.delivery
    }

    /// Brings the bus's history back under its reclaim mark, cutting the largest
    /// channels first (see `bus::history`). Runs on the publishing thread, after the
    /// channel's lock is released, taking one channel lock at a time.
    fn reclaim_history(&self) {
        let Some((need, _one_at_a_time)) = self.shared.history.begin_reclaim() else {
            return;
        };
        let mut sizes: Vec<(usize, Arc<Channel>)> = self
            .channels_where(|_| true)
            .into_iter()
            .map(|ch| (ch.history_bytes(), ch))
            .filter(|(bytes, _)| *bytes > 0)
            .collect();
        sizes.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let desc: Vec<usize> = sizes.iter().map(|(bytes, _)| *bytes).collect();
        let level = super::history::water_level(&desc, need);
        for (bytes, ch) in &sizes {
            if *bytes <= level {
                break;
            }
            ch.trim_history(level);
        }
    }

    /// Sends `env` to the sessions in `to` directly (no history). Returns the sessions
    /// that were not found.
    ///
    /// # Errors
    /// `blocked` when the publish filter refuses it; nobody received it.
    pub fn send_private(&self, to: &[String], mut env: Envelope) -> Result<Vec<String>, WireError> {
        if let Some(f) = self.shared.filter.get() {
            f.inspect(None, &mut env)?;
        }
        Ok(self.send_private_inspected(to, env))
    }

    /// [`Bus::send_private`] of a frame whose content already passed the publish filter
    /// (see [`Bus::publish_text`]). Returns the sessions that were not found.
    pub(crate) fn send_private_inspected(&self, to: &[String], mut env: Envelope) -> Vec<String> {
        env.ts = Some(now_ts());
        env.echo = None;
        self.deliver_private(to, &Delivery::new(env))
    }

    /// [`Bus::send_private_inspected`] of a frame its maker already serialized and
    /// stamped (see `ops::queue::frames`). Returns the sessions that were not found.
    pub(crate) fn send_private_text(&self, to: &[String], text: String) -> Vec<String> {
        self.deliver_private(to, &Delivery::from_text(text, None, None))
    }

    fn deliver_private(&self, to: &[String], d: &Delivery) -> Vec<String> {
        let mut missing = Vec::new();
        for id in to {
            match self.shared.sessions.get(id.as_str()) {
                Some(entry) => {
                    entry.outbox.offer(d, None);
                }
                None => missing.push(id.clone()),
            }
        }
        missing
    }

    /// Sends `env` to every attached session (server notices such as shutdown).
    pub fn broadcast_system(&self, mut env: Envelope) {
        env.ts = Some(now_ts());
        let d = Delivery::new(env);
        for entry in self.shared.sessions.iter() {
            entry.outbox.offer(&d, None);
        }
    }
}

/// What the bus stamps on a frame published with [`Bus::publish_text`].
pub(crate) struct Stamp<'a> {
    /// RFC 3339 time of the publish.
    pub(crate) ts: &'a str,
    /// Room of the channel.
    pub(crate) room: &'a str,
    /// Channel name.
    pub(crate) channel: &'a str,
    /// The frame's offset in the channel.
    pub(crate) offset: u64,
    /// The channel's history epoch.
    pub(crate) epoch: &'a str,
}

fn kept_closing() -> WireError {
    WireError::new(ErrorCode::Internal, "channel kept closing under publish")
}
