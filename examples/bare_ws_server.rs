//! The ceiling of our WebSocket stack: a bare tokio-tungstenite fan-out server with the
//! same write path as hivebus (bounded per-connection queue fed with `try_send`, one task
//! per socket, `feed` every queued frame then one `flush`, `TCP_NODELAY`) and nothing
//! else: no JSON, no envelope, no history, no offsets. `examples/loadgen.rs --target bare`
//! drives it; hivebus's fan-out rate is quoted as a fraction of this one's.
//!
//! Protocol (text frames): the first frame of a connection is `sub:<c1>,<c2>,...` (a
//! subscriber of those channels) or `pub` (a publisher). A publisher's frames are
//! `<channel>\n<payload>`; the payload bytes are fanned out (shared, not copied) to the
//! channel's subscribers (who first get an `ok` frame once registered), and the
//! publisher gets a one-byte `a` frame back per publish, like hivebus's REPLY. A full
//! subscriber queue drops the frame and counts it (printed on exit).
//!
//! ```text
//! cargo run --release --example bare_ws_server -- [PORT]     # default 0: prints the port
//! ```

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

/// Per-subscriber queue, as hivebus's default `outbound_queue`.
const QUEUE: usize = 1024;
/// Frames drained per flush, as hivebus's default `write_batch`.
const BATCH: usize = 256;

#[derive(Default)]
struct Hub {
    // One short critical section per publish, as in hivebus's channel mutex.
    channels: Mutex<HashMap<String, Vec<mpsc::Sender<Utf8Bytes>>>>,
    dropped: AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "bare_ws_server listening on ws://{}/",
        listener.local_addr()?
    );
    let hub = Arc::new(Hub::default());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            a = listener.accept() => {
                let Ok((stream, _)) = a else { continue };
                tokio::spawn(serve(stream, hub.clone()));
            }
        }
    }
    println!("dropped {}", hub.dropped.load(Ordering::Relaxed));
    Ok(())
}

async fn serve(stream: TcpStream, hub: Arc<Hub>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(32 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let first = match ws.next().await {
        Some(Ok(Message::Text(t))) => t,
        _ => return,
    };
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let publisher = first.as_str() == "pub";
    if let Some(list) = first.as_str().strip_prefix("sub:") {
        let mut map = hub.channels.lock().unwrap_or_else(|p| p.into_inner());
        for c in list.split(',') {
            map.entry(c.to_owned()).or_default().push(tx.clone());
        }
        // Tells the subscriber it is registered, so that the publisher may start.
        let _ = tx.try_send(Utf8Bytes::from_static("ok"));
    }
    let mut buf = Vec::with_capacity(64);
    let ack = Utf8Bytes::from_static("a");
    loop {
        tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => {
                if n == 0 { return; }
                for t in buf.drain(..) {
                    if ws.feed(Message::Text(t)).await.is_err() { return; }
                }
                if ws.flush().await.is_err() { return; }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if publisher => {
                    publish(&hub, t);
                    // The ack goes through our own queue, so it is batched like the rest.
                    let _ = tx.try_send(ack.clone());
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    let mut map = hub.channels.lock().unwrap_or_else(|p| p.into_inner());
    for subs in map.values_mut() {
        subs.retain(|s| !s.same_channel(&tx));
    }
}

fn publish(hub: &Hub, frame: Utf8Bytes) {
    let Some(nl) = frame.as_str().find('\n') else {
        return;
    };
    let channel = &frame.as_str()[..nl];
    let bytes: Bytes = frame.clone().into();
    // Splitting at an ASCII newline keeps valid UTF-8; the slice shares the frame's bytes.
    let Ok(payload) = Utf8Bytes::try_from(bytes.slice(nl + 1..)) else {
        return;
    };
    let map = hub.channels.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(subs) = map.get(channel) {
        for s in subs {
            if s.try_send(payload.clone()).is_err() {
                hub.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
