//! Peer adapters (cargo feature `peers`): the same scenarios against nats-server (core
//! pub/sub, async-nats) and Redis pub/sub (the redis crate). Each subscriber is its own
//! connection, as with the WebSocket targets.
//!
//! Neither peer acknowledges a publish, so closed-loop flow control works per batch: a
//! batch of publishes counts as acknowledged when the server has answered a round trip
//! after it (NATS: `flush`, a PING/PONG; Redis: the pipeline's PUBLISH replies).

use super::common::{payload, Flow, PubStats, Recorder, Shared};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::watch;

type Res<T> = Result<T, String>;

/// Which peer is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Nats,
    Redis,
}

fn subject(room: &str, ch: &str) -> String {
    format!("{room}.{ch}")
}

/// One subscriber; see `ws::subscriber`.
pub(crate) async fn subscriber(
    kind: Kind,
    url: String,
    room: String,
    channels: Vec<String>,
    mut rec: Recorder,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Res<(Recorder, bool)> {
    let mut closed = false;
    match kind {
        Kind::Nats => {
            let client = async_nats::connect(url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let mut subs = futures_util::stream::SelectAll::new();
            for c in &channels {
                let s = client
                    .subscribe(subject(&room, c))
                    .await
                    .map_err(|e| e.to_string())?;
                subs.push(s);
            }
            client.flush().await.map_err(|e| e.to_string())?;
            let _ = ready.send(()).await;
            loop {
                tokio::select! {
                    biased;
                    m = subs.next() => match m {
                        Some(m) => rec.on_frame(&m.payload),
                        None => { closed = true; break }
                    },
                    _ = stop.changed() => break,
                }
            }
        }
        Kind::Redis => {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut ps = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            for c in &channels {
                ps.subscribe(subject(&room, c))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let _ = ready.send(()).await;
            let mut msgs = ps.into_on_message();
            loop {
                tokio::select! {
                    biased;
                    m = msgs.next() => match m {
                        Some(m) => rec.on_frame(m.get_payload_bytes()),
                        None => { closed = true; break }
                    },
                    _ = stop.changed() => break,
                }
            }
        }
    }
    rec.flush();
    Ok((rec, closed))
}

/// The publisher; see `ws::publisher`.
pub(crate) async fn publisher(
    kind: Kind,
    url: String,
    room: String,
    channels: Vec<String>,
    size: usize,
    mut flow: Flow,
    shared: Arc<Shared>,
) -> Res<PubStats> {
    let subjects: Vec<String> = channels.iter().map(|c| subject(&room, c)).collect();
    let pick = |_: ()| subjects[fastrand::usize(..subjects.len())].clone();
    match kind {
        Kind::Nats => {
            let client = async_nats::connect(url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            while let Some(n) = flow.next(256).await {
                for _ in 0..n {
                    let p = payload(size, flow.stamp());
                    client
                        .publish(pick(()), p.into())
                        .await
                        .map_err(|e| e.to_string())?;
                    flow.mark();
                }
                client.flush().await.map_err(|e| e.to_string())?;
                shared.add_acked(n);
            }
        }
        Kind::Redis => {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut con = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            while let Some(n) = flow.next(256).await {
                let mut pipe = redis::pipe();
                for _ in 0..n {
                    let p = payload(size, flow.stamp());
                    pipe.cmd("PUBLISH").arg(pick(())).arg(p).ignore();
                    flow.mark();
                }
                pipe.query_async::<()>(&mut con)
                    .await
                    .map_err(|e| e.to_string())?;
                shared.add_acked(n);
            }
        }
    }
    Ok(PubStats {
        sent: flow.sent,
        behind_max_us: flow.behind_max / 1000,
    })
}

/// An idle, connected client, to be held (connections scenario).
pub(crate) async fn idle(kind: Kind, url: &str) -> Res<Box<dyn std::any::Any + Send>> {
    match kind {
        Kind::Nats => {
            let c = async_nats::connect(url).await.map_err(|e| e.to_string())?;
            c.flush().await.map_err(|e| e.to_string())?;
            Ok(Box::new(c))
        }
        Kind::Redis => {
            let client = redis::Client::open(url).map_err(|e| e.to_string())?;
            let mut con = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(con))
        }
    }
}
