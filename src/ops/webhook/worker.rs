//! A live registration ([`Hook`]): its embedded bus member, its outbox, its counters
//! and dead letters, and the two tasks that move envelopes from the bus to its URL.
//!
//! The **listener** holds a member of the bus (`Bus::connect`) joined to the
//! registration's pattern, exactly as a subscribing session: it receives what the bus
//! delivers after the safety layer, so content is already redacted, and it forwards
//! each channel envelope the pattern covers into the outbox (bounded, counted when
//! full). Should the bus flag it as a slow consumer, it reconnects and counts the loss.
//! The **deliverer** takes envelopes one at a time, in order, and posts each until it
//! is delivered or dead-lettered (`deliver`). Stopping a hook aborts both and drops the
//! member, which leaves the bus; pending envelopes are in memory only and are lost with
//! it (documented in `docs/OPERATORS.md`).

use super::config::WebhookConfig;
use super::deliver::{self, Attempt, Target};
use super::model::{now_ms, DeadLetter, Registration};
use super::outbox::{Outbox, Pending, Pushed};
use super::store::HookStore;
use crate::bus::{Bus, Member, PeerInfo};
use crate::error::WireError;
use crate::frame::FrameType;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Counters of one registration, shown by `list`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    dead: AtomicU64,
}

/// A registration that is running.
#[derive(Debug)]
pub(crate) struct Hook {
    /// What was registered.
    pub(crate) reg: Registration,
    outbox: Outbox,
    stats: Stats,
    last: Mutex<Option<(u64, String)>>,
    dead: Mutex<VecDeque<DeadLetter>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the bus sees of a hook's member.
fn peer(id: &str) -> PeerInfo {
    PeerInfo {
        role: "webhook".into(),
        name: Some(format!("webhook {id}")),
        ..PeerInfo::default()
    }
}

/// Joins a member to `reg`'s pattern.
fn attach(bus: &Bus, reg: &Registration) -> Result<(Member, crate::bus::Inbox), WireError> {
    let (member, inbox) = bus.connect(peer(&reg.id));
    member.join(&reg.pattern, &HashMap::new())?;
    Ok((member, inbox))
}

impl Hook {
    /// A hook for `reg` with the dead letters it had.
    pub(crate) fn new(reg: Registration, dead: Vec<DeadLetter>, cfg: &WebhookConfig) -> Hook {
        Hook {
            reg,
            outbox: Outbox::new(cfg.queue_max, cfg.queue_max_bytes, cfg.on_full),
            stats: Stats::default(),
            last: Mutex::new(None),
            dead: Mutex::new(dead.into()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Joins the bus and starts the listener and the deliverer.
    ///
    /// # Errors
    /// The join's refusal (`room_not_found`, ...): nothing was started.
    pub(crate) fn start(
        self: &Arc<Self>,
        bus: &Bus,
        client: reqwest::Client,
        cfg: Arc<WebhookConfig>,
        store: HookStore,
    ) -> Result<(), WireError> {
        let first = attach(bus, &self.reg)?;
        let listen = tokio::spawn(listen(Arc::downgrade(self), bus.downgrade(), first));
        let deliver = tokio::spawn(run(Arc::downgrade(self), client, cfg, store));
        lock(&self.tasks).extend([listen, deliver]);
        Ok(())
    }

    /// Stops both tasks; the member leaves the bus.
    pub(crate) fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// What `list` shows: the registration and its counters.
    pub(crate) fn view(&self) -> Value {
        let (queued, queued_bytes) = self.outbox.len();
        let mut v = self.reg.view();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        v["queued"] = json!(queued);
        v["queuedBytes"] = json!(queued_bytes);
        v["delivered"] = json!(n(&self.stats.delivered));
        v["failedAttempts"] = json!(n(&self.stats.failed_attempts));
        v["dropped"] = json!(n(&self.stats.dropped));
        v["deadLetters"] = json!(lock(&self.dead).len());
        v["deadLettered"] = json!(n(&self.stats.dead));
        if let Some((at, err)) = &*lock(&self.last) {
            v["lastError"] = json!(err);
            v["lastErrorMs"] = json!(at);
        }
        v
    }

    /// The newest `limit` dead letters, oldest first.
    pub(crate) fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        let d = lock(&self.dead);
        d.iter()
            .skip(d.len().saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// Records `what` as the last error (`list` shows it).
    pub(crate) fn note(&self, what: String) {
        *lock(&self.last) = Some((now_ms(), what));
    }

    fn offer(&self, body: String) {
        let p = Pending {
            delivery: format!("d-{}", uuid::Uuid::new_v4().simple()),
            body,
        };
        match self.outbox.push(p) {
            Pushed::Queued { dropped: 0 } => {}
            Pushed::Queued { dropped } => {
                self.stats
                    .dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            Pushed::Refused => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keeps `d` (its body cut to the byte bound), lets the oldest go beyond the
    /// bounds, and stores the same.
    fn bury(&self, mut d: DeadLetter, cfg: &WebhookConfig, store: &HookStore) {
        self.stats.dead.fetch_add(1, Ordering::Relaxed);
        if d.body.len() > cfg.deadletter_max_bytes {
            let mut cut = cfg.deadletter_max_bytes;
            while !d.body.is_char_boundary(cut) {
                cut -= 1;
            }
            d.body.truncate(cut);
            d.truncated = true;
        }
        let mut dead = lock(&self.dead);
        dead.push_back(d);
        let mut bytes: usize = dead.iter().map(|x| x.body.len()).sum();
        while dead.len() > cfg.deadletter_max || bytes > cfg.deadletter_max_bytes {
            match dead.pop_front() {
                Some(old) => bytes -= old.body.len(),
                None => break,
            }
        }
        // With `deadletter_max = 0` nothing is kept: everything up to this one goes.
        let newest = dead.back().map_or(0, |x| x.seq);
        let first_kept = dead.front().map_or(newest + 1, |x| x.seq);
        if let Some(kept) = dead.back() {
            store.dead_letter(&self.reg.id, kept, first_kept);
        }
        drop(dead);
    }

    fn next_seq(&self) -> u64 {
        lock(&self.dead).back().map_or(0, |d| d.seq) + 1
    }
}

/// The listener: bus deliveries the pattern covers into the outbox.
async fn listen(
    hook: std::sync::Weak<Hook>,
    bus: crate::bus::WeakBus,
    first: (Member, crate::bus::Inbox),
) {
    let mut attached = Some(first);
    loop {
        let (member, mut inbox) = match attached.take() {
            Some(a) => a,
            None => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (Some(h), Some(b)) = (hook.upgrade(), bus.upgrade()) else {
                    return;
                };
                match attach(&b, &h.reg) {
                    Ok(a) => a,
                    Err(e) => {
                        h.note(format!("rejoin: {}", e.message));
                        continue;
                    }
                }
            }
        };
        let kick = inbox.kick_signal();
        loop {
            let d = tokio::select! {
                d = inbox.recv() => d,
                () = kick.kicked() => None,
            };
            let Some(h) = hook.upgrade() else { return };
            if let Some(lag) = inbox.take_lag() {
                h.stats.dropped.fetch_add(lag.dropped, Ordering::Relaxed);
            }
            let Some(d) = d else { break };
            let env = d.envelope();
            let covered = match (&env.room, &env.channel) {
                (Some(r), Some(c)) => {
                    crate::address::Address::new(r, c).is_ok_and(|a| h.reg.pattern.matches(&a))
                }
                _ => false,
            };
            if covered && env.kind != FrameType::System {
                h.offer(d.text().to_owned());
            }
        }
        // Kicked as a slow consumer, or detached: what it missed is lost; say so.
        if let Some(h) = hook.upgrade() {
            h.note("fell behind the bus; rejoined".into());
        }
        drop(member);
    }
}

/// The deliverer: one envelope at a time, until delivered or dead-lettered.
async fn run(
    hook: std::sync::Weak<Hook>,
    client: reqwest::Client,
    cfg: Arc<WebhookConfig>,
    store: HookStore,
) {
    let target = match hook.upgrade() {
        Some(h) => Target {
            id: h.reg.id.clone(),
            url: h.reg.url.clone(),
            secret: h.reg.secret.clone(),
        },
        None => return,
    };
    loop {
        // Holding the hook while waiting is harmless: removing it aborts this task.
        let Some(h) = hook.upgrade() else { return };
        let p = h.outbox.pop().await;
        drop(h);
        let mut n = 1;
        loop {
            let outcome = deliver::attempt(&client, &cfg, &target, &p).await;
            let Some(h) = hook.upgrade() else { return };
            let (reason, error, status, after, last) = match outcome {
                Attempt::Delivered => {
                    h.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Attempt::Retry {
                    reason,
                    error,
                    status,
                    after,
                } => (reason, error, status, after, n >= cfg.max_attempts.max(1)),
                Attempt::Final {
                    reason,
                    error,
                    status,
                } => (reason, error, status, None, true),
            };
            h.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            h.note(error.clone());
            if last {
                let d = DeadLetter {
                    seq: h.next_seq(),
                    at_ms: now_ms(),
                    delivery: p.delivery.clone(),
                    attempts: n,
                    reason: reason.to_owned(),
                    error,
                    status,
                    body: p.body.clone(),
                    truncated: false,
                };
                h.bury(d, &cfg, &store);
                break;
            }
            drop(h);
            n += 1;
            tokio::time::sleep(deliver::backoff(&cfg, n, after)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(seq: u64, body: &str) -> DeadLetter {
        DeadLetter {
            seq,
            at_ms: 0,
            delivery: format!("d-{seq}"),
            attempts: 1,
            reason: "http_status".into(),
            error: "HTTP 500".into(),
            status: Some(500),
            body: body.into(),
            truncated: false,
        }
    }

    #[tokio::test]
    async fn dead_letters_are_bounded_in_count_and_bytes() {
        let cfg = WebhookConfig {
            deadletter_max: 3,
            deadletter_max_bytes: 10,
            ..WebhookConfig::default()
        };
        let db = std::env::temp_dir().join(format!("hive-wh-{}/w.db", fastrand::u64(..)));
        let (store, _) = HookStore::open(Some(&db)).unwrap();
        let reg = Registration {
            id: "wh-1".into(),
            owner: "o".into(),
            pattern: crate::address::Pattern::parse("a:b").unwrap(),
            url: reqwest::Url::parse("http://example.com/").unwrap(),
            secret: "s".repeat(16),
            created_ms: 0,
        };
        store.put(&reg).await.unwrap();
        let hook = Hook::new(reg, Vec::new(), &cfg);
        for (i, body) in ["aa", "bb", "cc", "dd"].iter().enumerate() {
            hook.bury(letter(hook.next_seq(), body), &cfg, &store);
            assert_eq!(hook.next_seq(), i as u64 + 2);
        }
        let seqs: Vec<u64> = hook.dead_letters(10).iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        // Both bounds hold: three letters, 2 + 4 + 4 = 10 bytes.
        hook.bury(letter(5, "eeee"), &cfg, &store);
        hook.bury(letter(6, "ffff"), &cfg, &store);
        let kept = hook.dead_letters(10);
        assert_eq!(kept.iter().map(|d| d.seq).collect::<Vec<_>>(), [4, 5, 6]);
        // A body over the bound alone is cut to it, not dropped.
        hook.bury(letter(7, &"x".repeat(25)), &cfg, &store);
        let last = hook.dead_letters(1).pop().unwrap();
        assert_eq!((last.body.len(), last.truncated), (10, true));
        assert_eq!(hook.dead_letters(10).len(), 1);
        store.close();
        // The store holds what the list holds.
        let (again, loaded) = HookStore::open(Some(&db)).unwrap();
        again.close();
        let stored: Vec<(u64, usize)> = loaded.registrations[0]
            .1
            .iter()
            .map(|d| (d.seq, d.body.len()))
            .collect();
        assert_eq!(stored, [(7, 10)]);
        let _ = std::fs::remove_dir_all(db.parent().unwrap());
    }
}
