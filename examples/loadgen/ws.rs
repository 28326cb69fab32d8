//! WebSocket targets: hivebus (its JSON protocol: HELLO, `join`, MESSAGE with an `id`
//! acknowledged by a REPLY) and the bare fan-out server of `examples/bare_ws_server.rs`
//! (`sub:<channels>` / `pub`, `<channel>\n<payload>`, one `a` frame per publish).
//!
//! Both use raw tokio-tungstenite clients rather than `hivebus::client::Client`: the
//! SDK parses every frame into an `Envelope`, which would make the load generator, not
//! the server, the bottleneck. Subscribers only search the frame for the stamp.

use super::common::{payload, Flow, PubStats, Recorder, Shared};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;
type Res<T> = Result<T, String>;

/// Which WebSocket server is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Hivebus,
    Bare,
}

async fn connect(url: &str) -> Res<Ws> {
    let config = WebSocketConfig::default().read_buffer_size(64 * 1024);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, text: String) -> Res<()> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

/// Reads until a text frame containing `needle`; frames before it are skipped.
async fn expect(ws: &mut Ws, needle: &str) -> Res<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(needle) => return Ok(t.to_string()),
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"ERROR\"") => {
                return Err(format!("server refused: {t}"))
            }
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Connects and handshakes with hivebus; joins `addresses` (`room:channel` or `room:*`).
pub(crate) async fn hive_session(url: &str, addresses: &[String]) -> Res<Ws> {
    let mut ws = connect(url).await?;
    send(
        &mut ws,
        r#"{"id":"h","type":"HELLO","payload":{"role":"client","capabilities":[]}}"#.into(),
    )
    .await?;
    expect(&mut ws, "\"WELCOME\"").await?;
    for (i, a) in addresses.iter().enumerate() {
        let id = format!("j{i}");
        let join = format!(
            r#"{{"id":"{id}","type":"COMMAND","payload":{{"name":"join","args":{{"address":"{a}"}}}}}}"#
        );
        send(&mut ws, join).await?;
        expect(&mut ws, &format!("\"re\":\"{id}\"")).await?;
    }
    Ok(ws)
}

/// One subscriber: subscribes to `channels` (addresses as the target spells them), says it is ready, then records every
/// delivery until `stop`. Returns its recorder and whether the server closed it.
pub(crate) async fn subscriber(
    kind: Kind,
    url: String,
    channels: Vec<String>,
    mut rec: Recorder,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Res<(Recorder, bool)> {
    let mut ws = match kind {
        Kind::Hivebus => hive_session(&url, &channels).await?,
        Kind::Bare => {
            let mut ws = connect(&url).await?;
            send(&mut ws, format!("sub:{}", channels.join(","))).await?;
            expect(&mut ws, "ok").await?;
            ws
        }
    };
    let _ = ready.send(()).await;
    let mut closed = false;
    loop {
        tokio::select! {
            biased;
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => rec.on_frame(t.as_bytes()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { closed = true; break }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => break,
        }
    }
    rec.flush();
    if !closed {
        let _ = ws.close(None).await;
    }
    Ok((rec, closed))
}

/// The publisher: publishes stamped payloads of `size` bytes to `channels` (uniformly at
/// random when several) under `flow`, and counts acks on `shared`.
pub(crate) async fn publisher(
    kind: Kind,
    url: String,
    room: String,
    channels: Vec<String>,
    size: usize,
    mut flow: Flow,
    shared: Arc<Shared>,
) -> Res<PubStats> {
    let ws = match kind {
        Kind::Hivebus => {
            // Exact joins up to the default max_subscriptions (128), else a wildcard.
            let joins = if channels.len() <= 128 {
                channels.iter().map(|c| format!("{room}:{c}")).collect()
            } else {
                vec![format!("{room}:*")]
            };
            hive_session(&url, &joins).await?
        }
        Kind::Bare => {
            let mut ws = connect(&url).await?;
            send(&mut ws, "pub".into()).await?;
            ws
        }
    };
    let (mut sink, mut stream) = ws.split();
    let acks = shared.clone();
    let reader = tokio::spawn(async move {
        let mut errors = 0u64;
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(t) = m {
                let t = t.as_str();
                if kind == Kind::Bare || t.contains("\"REPLY\"") {
                    acks.add_acked(1);
                } else if t.contains("\"ERROR\"") {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("publisher got {t}");
                    }
                    acks.add_acked(1);
                }
            }
        }
    });
    let mut stats = PubStats::default();
    while let Some(n) = flow.next(256).await {
        for _ in 0..n {
            let ch = &channels[fastrand::usize(..channels.len())];
            let p = payload(size, flow.stamp());
            let text = match kind {
                Kind::Hivebus => format!(
                    r#"{{"id":"{}","type":"MESSAGE","room":"{room}","channel":"{ch}","payload":{p}}}"#,
                    flow.sent
                ),
                Kind::Bare => format!("{room}.{ch}\n{p}"),
            };
            sink.feed(Message::text(text))
                .await
                .map_err(|e| e.to_string())?;
            flow.mark();
        }
        sink.flush().await.map_err(|e| e.to_string())?;
    }
    stats.sent = flow.sent;
    stats.behind_max_us = flow.behind_max / 1000;
    // Let the last acks arrive before closing, so that the server sees a clean close.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = sink.close().await;
    reader.abort();
    Ok(stats)
}

/// An idle connection to the bare server (subscribed to a channel nobody publishes on).
pub(crate) async fn bare_idle(url: &str) -> Res<Ws> {
    let mut ws = connect(url).await?;
    send(&mut ws, "sub:idle".into()).await?;
    expect(&mut ws, "ok").await?;
    Ok(ws)
}
