//! The agent as a child process: started in its own process group, its stdout and
//! stderr read as bounded lines, its stdin kept for approval decisions, and the
//! whole group (grandchildren included) ended with SIGTERM, then SIGKILL.
//!
//! Signals go to the group through kill(1) (`kill -s TERM -- -<pgid>`): the crate
//! forbids `unsafe` and has no signal crate as a dependency, and a group signal is
//! rare (an end of task), so one short-lived process per signal is cheap enough.
//! The group id is the child's PID (`process_group(0)`). A waiter thread reaps the
//! leader as soon as it exits, so the group is signalled only while the leader is
//! unreaped or `kill -0` still sees a member: the kernel does not reuse a group's id
//! while any member lives, which leaves only the instant between the check and the
//! signal.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Longest line read whole (a protocol line can be this long); the rest of a longer
/// line is discarded up to its newline, and the line is never read as protocol.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of output (without its newline; lossily decoded).
#[derive(Debug)]
pub(super) struct Line {
    pub(super) stream: Stream,
    pub(super) text: String,
    /// Longer than [`MAX_LINE`]: cut.
    pub(super) cut: bool,
}

/// A running agent.
///
/// Threads, not tokio's process support (not among the crate's tokio features): one
/// reads stdout, one stderr, one waits for the exit; each ends with the agent.
pub(super) struct Agent {
    /// The process group id (the child's PID).
    pgid: u32,
    /// Behind a lock so that a blocking write can run on the blocking pool.
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    /// The leader's status once it was reaped.
    status: watch::Receiver<Option<ExitStatus>>,
}

impl Agent {
    /// Starts `argv` in `cwd` with exactly `env`, in a new process group; its lines
    /// arrive on the returned channel (closed when both outputs end).
    ///
    /// # Errors
    /// The spawn error, as a sentence.
    pub(super) fn spawn(
        argv: &[String],
        cwd: &Path,
        env: &[(OsString, OsString)],
    ) -> Result<(Agent, mpsc::Receiver<Line>), String> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        let pgid = child.id();
        let (tx, rx) = mpsc::channel(256);
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || read_lines(out, Stream::Stdout, &tx));
        }
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || read_lines(err, Stream::Stderr, &tx));
        }
        let stdin = Arc::new(Mutex::new(child.stdin.take()));
        let (done, status) = watch::channel(None);
        std::thread::spawn(move || {
            // Waiting on our own child fails only on an OS error: call it a kill.
            let st = child
                .wait()
                .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(9));
            let _ = done.send(Some(st));
        });
        Ok((
            Agent {
                pgid,
                stdin,
                status,
            },
            rx,
        ))
    }

    /// The process group id.
    pub(super) fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Writes one line to the agent's stdin; false when it is closed.
    pub(super) async fn tell(&mut self, line: &str) -> bool {
        let stdin = self.stdin.clone();
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        // A pipe write blocks while the pipe is full (an agent that does not read);
        // the blocking pool holds it, and killing the group ends it (EPIPE).
        let wrote = tokio::task::spawn_blocking(move || {
            let mut guard = stdin.lock().unwrap_or_else(|p| p.into_inner());
            let ok = guard
                .as_mut()
                .is_some_and(|w| w.write_all(&bytes).and_then(|()| w.flush()).is_ok());
            if !ok {
                *guard = None;
            }
            ok
        })
        .await;
        wrote.unwrap_or(false)
    }

    /// The leader's status, if it was reaped.
    fn exited(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// Waits for the leader to exit (cancel-safe).
    pub(super) async fn wait(&mut self) -> ExitStatus {
        let mut rx = self.status.clone();
        let seen = rx.wait_for(Option::is_some).await.map(|v| *v);
        // The waiter thread always sends before it ends; a closed channel without a
        // status cannot happen, but reads as a kill.
        match seen {
            Ok(Some(s)) => s,
            _ => std::os::unix::process::ExitStatusExt::from_raw(9),
        }
    }

    /// Ends the whole group: SIGTERM, then SIGKILL after `grace` to whatever is
    /// still alive (the leader or any process it started). Returns the leader's
    /// status.
    pub(super) async fn terminate(&mut self, grace: Duration) -> ExitStatus {
        if self.exited().is_none() || group_alive(self.pgid).await {
            signal_group(self.pgid, "TERM").await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        let _ = tokio::time::timeout_at(deadline, self.wait()).await;
        // The leader may be gone while grandchildren ignore SIGTERM: watch the group.
        while group_alive(self.pgid).await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.exited().is_none() || group_alive(self.pgid).await {
            signal_group(self.pgid, "KILL").await;
        }
        self.wait().await
    }
}

impl Drop for Agent {
    /// An attempt dropped mid-way (its task aborted) still leaves nothing running.
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = kill_cmd(&["-s", "KILL", "--", &format!("-{}", self.pgid)]).status();
        }
    }
}

fn kill_cmd(args: &[&str]) -> Command {
    let mut c = Command::new("kill");
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Runs kill(1) with `args` on the blocking pool; whether it succeeded.
async fn kill(args: Vec<String>) -> Result<bool, String> {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kill_cmd(&a).status().map(|s| s.success())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Sends `sig` to the process group `pgid`.
async fn signal_group(pgid: u32, sig: &str) {
    let args = vec!["-s".into(), sig.into(), "--".into(), format!("-{pgid}")];
    if let Err(e) = kill(args).await {
        tracing::warn!(
            pgid,
            sig,
            "cannot run kill(1) to signal the agent's group: {e}"
        );
    }
}

/// Whether any process of group `pgid` is still alive (`kill -0`).
pub(super) async fn group_alive(pgid: u32) -> bool {
    kill(vec!["-0".into(), "--".into(), format!("-{pgid}")])
        .await
        .unwrap_or(false)
}

/// Reads `r` as lines of at most [`MAX_LINE`] bytes into `tx` (on its own thread).
fn read_lines<R: Read>(r: R, stream: Stream, tx: &mpsc::Sender<Line>) {
    let mut r = BufReader::with_capacity(16 * 1024, r);
    let mut buf: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(c) => c,
        };
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(if end { take + 1 } else { take });
        if end {
            let text = String::from_utf8_lossy(&buf)
                .trim_end_matches('\r')
                .to_owned();
            buf.clear();
            if tx.blocking_send(Line { stream, text, cut }).is_err() {
                return;
            }
            cut = false;
        }
    }
    if !buf.is_empty() {
        let text = String::from_utf8_lossy(&buf).into_owned();
        let _ = tx.blocking_send(Line { stream, text, cut });
    }
}
