//! Plain HTTP on the WebSocket listener: `/healthz`, `/readyz` and `/metrics`
//! (Prometheus text format).
//!
//! The request line is peeked before the WebSocket handshake: a GET of one of these
//! paths is answered here and the connection closed; anything else goes on to the
//! WebSocket upgrade. Peeking keeps the bytes in the socket, so the upgrade reads the
//! request untouched.

use super::ServerCtx;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a connection turned out to be.
pub(super) enum Sniff {
    WebSocket,
    Http(&'static str),
    Gone,
}

const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Peeks at the request line (bounded by `limit` and 1 KiB).
pub(super) async fn sniff(stream: &TcpStream, deadline: tokio::time::Instant) -> Sniff {
    let mut buf = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Sniff::Gone,
            Ok(Ok(n)) => n,
        };
        let head = &buf[..n];
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&head[..end]);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next(), parts.next().unwrap_or(""));
            let path = path.split('?').next().unwrap_or("");
            return match (method, PATHS.iter().find(|p| **p == path)) {
                (Some("GET"), Some(p)) => Sniff::Http(p),
                _ => Sniff::WebSocket,
            };
        }
        if n == buf.len() {
            return Sniff::WebSocket;
        }
        // Partial request line: wait for more bytes (peek returns at once otherwise).
        tokio::time::sleep(Duration::from_millis(2)).await;
        if tokio::time::Instant::now() >= deadline {
            return Sniff::Gone;
        }
    }
}

/// Answers one GET and closes.
pub(super) async fn serve(mut stream: TcpStream, path: &str, ctx: &ServerCtx) {
    // Read the request head so that closing does not reset the connection.
    let mut buf = vec![0u8; 8192];
    let mut read = 0;
    while read < buf.len() {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf[read..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => read += n,
        }
        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let stopping = ctx.stopping.load(Ordering::Relaxed);
    let (status, ctype, body) = match path {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
        "/readyz" if stopping => (
            "503 Service Unavailable",
            "text/plain",
            "stopping\n".to_owned(),
        ),
        "/readyz" => ("200 OK", "text/plain", "ready\n".to_owned()),
        _ => ("200 OK", "text/plain; version=0.0.4", metrics(ctx)),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn metrics(ctx: &ServerCtx) -> String {
    let s = ctx.bus.stats();
    let c = &ctx.counters;
    let rows: [(&str, &str, &str, u64); 12] = [
        (
            "hivebus_connections",
            "gauge",
            "Sessions attached now.",
            s.connections as u64,
        ),
        (
            "hivebus_connections_total",
            "counter",
            "Sessions attached since start.",
            s.connections_total,
        ),
        ("hivebus_rooms", "gauge", "Rooms now.", s.rooms as u64),
        (
            "hivebus_channels",
            "gauge",
            "Channels now.",
            s.channels as u64,
        ),
        (
            "hivebus_messages_total",
            "counter",
            "Publishes accepted.",
            s.messages,
        ),
        (
            "hivebus_deliveries_total",
            "counter",
            "Frames queued to subscribers.",
            s.deliveries,
        ),
        (
            "hivebus_dropped_total",
            "counter",
            "Frames lost to slow-consumer policy.",
            s.dropped,
        ),
        (
            "hivebus_frames_in_total",
            "counter",
            "Frames received from sessions.",
            c.frames_in.load(Ordering::Relaxed),
        ),
        (
            "hivebus_errors_total",
            "counter",
            "ERROR frames sent.",
            c.errors_out.load(Ordering::Relaxed),
        ),
        (
            "hivebus_refused_total",
            "counter",
            "Connections refused at max_connections.",
            c.refused.load(Ordering::Relaxed),
        ),
        (
            "hivebus_slow_consumers_total",
            "counter",
            "Sessions closed as slow consumers.",
            c.slow_consumers.load(Ordering::Relaxed),
        ),
        (
            "hivebus_uptime_seconds",
            "gauge",
            "Seconds since start.",
            s.uptime_secs,
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}
