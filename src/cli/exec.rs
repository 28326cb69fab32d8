//! `hive exec -- <command...>`: the approval wrapper for agents that cannot speak the
//! JSON-lines protocol of `hive consume` (docs/CONSUME.md, "`hive exec`").
//!
//! Run by an agent inside `hive consume`, it asks the broker's approval policy for
//! that exact command on behalf of the running task, through the parent consumer: it
//! connects to the attempt's private Unix socket (`HIVE_EXEC_SOCKET`, in a directory
//! only this user can enter), presents the attempt's secret (`HIVE_EXEC_SECRET`,
//! only in the agent's environment), sends the command and blocks until the
//! decision. Approved, it *becomes* the command (`execvp`: stdio, signals and the
//! exit status are the command's own); refused, it prints one line on stderr and
//! exits 126, the shell's "found but not run".
//!
//! Invariants: nothing runs without an explicit `approve` from the consumer; any
//! other answer, a closed socket or a malformed reply is a refusal (fail closed).

use clap::Args;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

/// The variable naming the attempt's socket.
pub(crate) const SOCKET_ENV: &str = "HIVE_EXEC_SOCKET";
/// The variable holding the attempt's secret.
pub(crate) const SECRET_ENV: &str = "HIVE_EXEC_SECRET";
/// Exit code of a refusal (and of `hive exec` outside `hive consume`).
pub(crate) const REFUSED: u8 = 126;
/// Longest request or reply line on the socket.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// `hive exec --help`, after the flags.
pub(crate) const HELP: &str = "Examples:
  # inside an agent run by `hive consume`:
  hive exec -- cargo test
  hive exec -- git push origin HEAD
  \"$HIVE_BIN\" exec -- rm -rf build      # HIVE_BIN: the hive that runs the consumer

The command is judged by the broker's approval policy as the running task's request
(the same as a JSON-lines {\"approval\": ...}); `ask` waits for a person.

Exit codes:
  126  refused (by the policy or a person, expired, or not under `hive consume`)
  127  approved, but the command could not be started
  *    approved: the command's own exit status";

/// Flags of `hive exec`.
#[derive(Args)]
pub(crate) struct ExecArgs {
    /// Why the agent wants to run it (shown to the approver).
    #[arg(long)]
    reason: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs `hive exec`: asks, then runs or refuses. Blocking on purpose: this process
/// does nothing else while it waits.
pub(crate) fn run(a: &ExecArgs) -> ExitCode {
    match ask(a) {
        Ok(()) => {
            use std::os::unix::process::CommandExt;
            // Only returns on failure.
            let e = std::process::Command::new(&a.command[0])
                .args(&a.command[1..])
                .exec();
            eprintln!(
                "hive exec: approved, but cannot run `{}`: {e}",
                a.command[0]
            );
            ExitCode::from(127)
        }
        Err(why) => {
            eprintln!("hive exec: refused: {}", one_line(&why));
            ExitCode::from(REFUSED)
        }
    }
}

/// Asks the consumer; `Ok` only on an explicit approve.
fn ask(a: &ExecArgs) -> Result<(), String> {
    let (Some(path), Some(secret)) = (std::env::var_os(SOCKET_ENV), std::env::var(SECRET_ENV).ok())
    else {
        return Err(format!(
            "`hive exec` must run under `hive consume` (as the agent of a task, or a \
             process it started): {SOCKET_ENV} / {SECRET_ENV} are not set, so there is \
             no task to ask for; run `{}` yourself if you meant to",
            shell_join(&a.command)
        ));
    };
    let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    let mut req = json!({
        "secret": secret,
        "command": shell_join(&a.command),
        "cwd": cwd.to_string_lossy(),
    });
    if let Some(r) = &a.reason {
        req["reason"] = json!(r);
    }
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "cannot reach `hive consume` at {}: {e} (did its task end?)",
            std::path::Path::new(&path).display()
        )
    })?;
    let mut line = req.to_string();
    line.push('\n');
    if line.len() > MAX_LINE {
        return Err(format!("the command is longer than {MAX_LINE} bytes"));
    }
    s.write_all(line.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut reply = String::new();
    BufReader::new(s.take_limited())
        .read_line(&mut reply)
        .map_err(|e| format!("no decision: {e}"))?;
    let v: Value = serde_json::from_str(reply.trim())
        .map_err(|_| "`hive consume` closed the request without a decision".to_owned())?;
    if v["decision"] == "approve" {
        return Ok(());
    }
    let by = v["by"].as_str().unwrap_or("hive consume");
    let reason = v["reason"].as_str().unwrap_or("no reason given");
    Err(match v["given"].as_str() {
        Some(g) => format!("{g} ({reason}; by {by})"),
        None => format!("{reason} (by {by})"),
    })
}

/// A stream read at most [`MAX_LINE`] bytes.
trait TakeLimited: Sized {
    fn take_limited(self) -> std::io::Take<Self>;
}

impl TakeLimited for std::os::unix::net::UnixStream {
    fn take_limited(self) -> std::io::Take<Self> {
        std::io::Read::take(self, MAX_LINE as u64)
    }
}

/// The command as one shell-quoted line, for the policy (which splits shell
/// commands) and for people: words of safe characters as they are, others in single
/// quotes.
pub(crate) fn shell_join(argv: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    argv.iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(safe) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reason on one line (a reason from a person may hold newlines or escapes).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_would_read_them_otherwise() {
        let v = |a: &[&str]| shell_join(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(v(&["rm", "-rf", "build"]), "rm -rf build");
        assert_eq!(v(&["echo", "a b", ""]), "echo 'a b' ''");
        assert_eq!(v(&["echo", "it's; rm"]), r"echo 'it'\''s; rm'");
        assert_eq!(one_line("a\nb\x1b[31m"), "a b [31m");
    }
}
