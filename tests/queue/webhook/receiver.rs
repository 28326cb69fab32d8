//! The test's HTTP receiver: a small HTTP/1.1 server on a tokio socket, on
//! 127.0.0.1:0, answering from a script, handing every request to the test; and the
//! test's own check of the signature header, with its own HMAC computation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Debug)]
pub(super) struct Hit {
    pub(super) path: String,
    pub(super) headers: HashMap<String, String>,
    pub(super) body: String,
}

/// A local HTTP receiver answering each request with the next scripted response
/// (status, extra header lines, milliseconds to wait before answering), then `then`
/// at once for ever.
pub(super) struct Receiver {
    pub(super) url: String,
    hits: mpsc::UnboundedReceiver<Hit>,
}

type Script = Arc<Mutex<VecDeque<(u16, String, u64)>>>;

pub(super) async fn receiver(script: &[(u16, &str)], then: u16) -> Receiver {
    let timed: Vec<(u16, &str, u64)> = script.iter().map(|(s, h)| (*s, *h, 0)).collect();
    slow_receiver(&timed, then).await
}

pub(super) async fn slow_receiver(script: &[(u16, &str, u64)], then: u16) -> Receiver {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, hits) = mpsc::unbounded_channel();
    let script: Script = Arc::new(Mutex::new(
        script
            .iter()
            .map(|(s, h, d)| (*s, (*h).to_owned(), *d))
            .collect(),
    ));
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(serve(sock, tx.clone(), script.clone(), then));
        }
    });
    Receiver { url, hits }
}

/// Serves HTTP/1.1 requests on one connection until it closes.
async fn serve(mut sock: TcpStream, tx: mpsc::UnboundedSender<Hit>, script: Script, then: u16) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        buf.drain(..head_end + len);
        let _ = tx.send(Hit {
            path,
            headers,
            body,
        });
        let next = script.lock().unwrap().pop_front();
        let (status, extra, wait) = next.unwrap_or((then, String::new(), 0));
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{extra}\r\n");
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

impl Receiver {
    pub(super) async fn next(&mut self) -> Hit {
        tokio::time::timeout(T, self.hits.recv())
            .await
            .expect("a webhook request within 10 s")
            .unwrap()
    }

    pub(super) async fn nothing_within(&mut self, t: Duration) {
        if let Ok(Some(h)) = tokio::time::timeout(t, self.hits.recv()).await {
            panic!("unexpected request {h:?}");
        }
    }
}

/// The test's own check of `X-Hive-Signature: t=<secs>,v1=<hex>` over `<t>.<body>`.
pub(super) fn verify(secret: &str, hit: &Hit) -> bool {
    let Some(sig) = hit.headers.get("x-hive-signature") else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let Some(tag) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let msg = format!("{t}.{}", hit.body);
    ring::hmac::verify(&key, msg.as_bytes(), &tag).is_ok()
}
