//! The `hive exec` gate of one attempt: a private Unix socket on which the agent (or
//! anything it started) asks for approval of a command, answered by the attempt's
//! loop with the same request a JSON-lines `{"approval": ...}` makes.
//!
//! Who may ask: the socket lives in a fresh directory of mode 0700 (only this user
//! can reach it), and every request must carry the attempt's secret, 32 random
//! bytes given only in the agent's environment, compared in constant time. Another
//! local process of the same user that does not descend from the agent has neither
//! the path nor the secret (`/proc/<pid>/environ` is readable by this user, which is
//! why "not a sandbox" in docs/CONSUME.md stands). The directory goes with the
//! attempt.
//!
//! One request per connection, one line each way, at most [`MAX_LINE`] bytes; at
//! most [`MAX_WAITING`] requests wait at once (more are refused at once), at most
//! [`MAX_CONNECTIONS`] connections are open (more are closed unread).

use crate::exec::MAX_LINE;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Requests waiting for the attempt's loop (one is decided at a time).
pub(super) const MAX_WAITING: usize = 16;
/// Connections open at once (reading a request, or waiting for its decision).
pub(super) const MAX_CONNECTIONS: usize = 64;

/// A command `hive exec` asks to run: the approval request, and where its decision
/// line goes.
pub(super) struct Ask {
    pub(super) request: Value,
    pub(super) reply: oneshot::Sender<String>,
}

/// The gate of one attempt; closed and removed when dropped.
pub(super) struct Gate {
    dir: PathBuf,
    socket: PathBuf,
    secret: String,
    server: JoinHandle<()>,
}

impl Gate {
    /// Opens the socket; the asks arrive on the returned channel.
    ///
    /// # Errors
    /// The directory, the secret or the socket could not be made.
    pub(super) fn open() -> Result<(Gate, mpsc::Receiver<Ask>), String> {
        use std::os::unix::fs::DirBuilderExt;
        let secret = random_hex(32)?;
        let dir = std::env::temp_dir().join(format!("hive-exec-{}", random_hex(8)?));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let socket = dir.join("s");
        let listener = UnixListener::bind(&socket)
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        let (tx, rx) = mpsc::channel(MAX_WAITING);
        let server = tokio::spawn(serve(listener, Arc::new(secret.clone()), tx));
        Ok((
            Gate {
                dir,
                socket,
                secret,
                server,
            },
            rx,
        ))
    }

    /// The variables that point the agent's `hive exec` at this gate.
    pub(super) fn env(&self) -> [(&'static str, String); 2] {
        [
            (
                crate::exec::SOCKET_ENV,
                self.socket.to_string_lossy().into_owned(),
            ),
            (crate::exec::SECRET_ENV, self.secret.clone()),
        ]
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Accepts until the gate is dropped; every connection's task is in `conns`, so
/// aborting this future ends them too (a process that escaped the agent's group
/// cannot keep one alive past the attempt).
async fn serve(listener: UnixListener, secret: Arc<String>, asks: mpsc::Sender<Ask>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Reap finished connections as they end.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            return;
        };
        if conns.len() >= MAX_CONNECTIONS {
            // Refused unread: the agent has more open requests than it can mean.
            drop(stream);
            continue;
        }
        let (secret, asks) = (secret.clone(), asks.clone());
        conns.spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let read = BufReader::new(r.take(MAX_LINE as u64))
                .read_line(&mut line)
                .await;
            let answer = match read {
                Ok(_) => handle(&line, &secret, &asks).await,
                Err(e) => refusal(&format!("unreadable request: {e}")),
            };
            let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// One request line to its decision line.
async fn handle(line: &str, secret: &str, asks: &mpsc::Sender<Ask>) -> String {
    let Ok(Value::Object(mut req)) = serde_json::from_str::<Value>(line.trim()) else {
        return refusal("the request is not one JSON object on one line");
    };
    let given = req.remove("secret");
    if !given
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|g| same(g.as_bytes(), secret.as_bytes()))
    {
        return refusal("wrong or missing secret: only the task's agent may ask");
    }
    let Some(command) = req
        .get("command")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return refusal("the request names no `command`");
    };
    let mut request = json!({"tool": "shell", "command": command});
    if let Some(cwd) = req.get("cwd").and_then(Value::as_str) {
        request["cwd"] = json!(cwd);
    }
    if let Some(r) = req.get("reason").and_then(Value::as_str) {
        request["reason"] = json!(r);
    }
    let (reply, rx) = oneshot::channel();
    if asks.try_send(Ask { request, reply }).is_err() {
        return refusal("too many commands wait for approval at once");
    }
    // Dropped unanswered (the attempt ended): refused.
    rx.await
        .unwrap_or_else(|_| refusal("the task ended before a decision"))
}

fn refusal(reason: &str) -> String {
    json!({"decision": "deny", "by": "hive consume", "reason": reason}).to_string()
}

/// Equal bytes, compared in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the kernel, as hex.
fn random_hex(n: usize) -> Result<String, String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab") && !same(b"", b"a"));
        assert_eq!(random_hex(4).unwrap().len(), 8);
    }
}
