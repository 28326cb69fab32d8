//! The targets a scenario can run against, and dispatch to their adapters. Without the
//! `peers` feature, `nats` and `redis` are refused at argument parsing.

use super::common::{Flow, PubStats, Recorder, Shared};
#[cfg(feature = "peers")]
use super::peers;
use super::ws;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

type Res<T> = Result<T, String>;

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Ws(ws::Kind),
    #[cfg(feature = "peers")]
    Peer(peers::Kind),
}

impl Target {
    pub(crate) fn parse(s: &str) -> Res<Target> {
        Ok(match s {
            "hivebus" => Target::Ws(ws::Kind::Hivebus),
            "bare" => Target::Ws(ws::Kind::Bare),
            #[cfg(feature = "peers")]
            "nats" => Target::Peer(peers::Kind::Nats),
            #[cfg(feature = "peers")]
            "redis" => Target::Peer(peers::Kind::Redis),
            #[cfg(not(feature = "peers"))]
            "nats" | "redis" => return Err(format!("{s}: build with `--features peers`")),
            _ => return Err(format!("unknown target {s}: hivebus, bare, nats, redis")),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Ws(ws::Kind::Hivebus) => "hivebus",
            Target::Ws(ws::Kind::Bare) => "bare",
            #[cfg(feature = "peers")]
            Target::Peer(peers::Kind::Nats) => "nats",
            #[cfg(feature = "peers")]
            Target::Peer(peers::Kind::Redis) => "redis",
        }
    }
}

/// Runs one subscriber of `channels` in `room`.
pub(crate) async fn subscriber(
    t: Target,
    url: String,
    room: String,
    channels: Vec<String>,
    rec: Recorder,
    ready: mpsc::Sender<()>,
    stop: watch::Receiver<bool>,
) -> Res<(Recorder, bool)> {
    match t {
        Target::Ws(k) => {
            let sep = if k == ws::Kind::Hivebus { ':' } else { '.' };
            let addrs = channels.iter().map(|c| format!("{room}{sep}{c}")).collect();
            ws::subscriber(k, url, addrs, rec, ready, stop).await
        }
        #[cfg(feature = "peers")]
        Target::Peer(k) => peers::subscriber(k, url, room, channels, rec, ready, stop).await,
    }
}

/// Runs one publisher over `channels` in `room`.
pub(crate) async fn publisher(
    t: Target,
    url: String,
    room: String,
    channels: Vec<String>,
    size: usize,
    flow: Flow,
    shared: Arc<Shared>,
) -> Res<PubStats> {
    match t {
        Target::Ws(k) => ws::publisher(k, url, room, channels, size, flow, shared).await,
        #[cfg(feature = "peers")]
        Target::Peer(k) => peers::publisher(k, url, room, channels, size, flow, shared).await,
    }
}

/// Opens one idle, handshaken connection and returns it, to be held.
pub(crate) async fn idle(t: Target, url: &str) -> Res<Box<dyn std::any::Any + Send>> {
    match t {
        Target::Ws(ws::Kind::Hivebus) => Ok(Box::new(ws::hive_session(url, &[]).await?)),
        Target::Ws(ws::Kind::Bare) => Ok(Box::new(ws::bare_idle(url).await?)),
        #[cfg(feature = "peers")]
        Target::Peer(k) => peers::idle(k, url).await,
    }
}
