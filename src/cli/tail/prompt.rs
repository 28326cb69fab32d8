//! The approval prompt of `hive tail`: when a person follows a task on a terminal
//! and the task waits for an approval, `hive tail` asks `[y]es once / [n]o /
//! [s]ession / [a]lways` in place and sends the answer as `op.queue.approve`.
//!
//! Only when stdin and stdout are both terminals, the output is not JSON, and the
//! session's role may decide (client or admin; the broker checks the `approve`
//! right on the task's channel, and a `forbidden` turns the prompt off for the rest
//! of the tail, with the refusal printed). Stdin is read on a thread of its own, so
//! that the tail goes on printing while the question waits, and a decision made
//! elsewhere (another device, the policy, an expiry) ends the question.

use hivebus::client::Client;
use serde_json::json;
use tokio::sync::mpsc;

/// An answer to the prompt: the decision and its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) decision: &'static str,
    pub(super) scope: Option<&'static str>,
}

/// The question, after the request was printed.
pub(super) const QUESTION: &str = "         approve? [y]es once / [n]o / [s]ession / [a]lways: ";

/// Reads one typed line: `y`/`yes`, `n`/`no`, `s`/`session`, `a`/`always` (any
/// case, blanks around ignored); anything else is no answer.
pub(super) fn parse(line: &str) -> Option<Answer> {
    let (decision, scope) = match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => ("approve", Some("once")),
        "n" | "no" => ("deny", None),
        "s" | "session" => ("approve", Some("session")),
        "a" | "always" => ("approve", Some("always")),
        _ => return None,
    };
    Some(Answer { decision, scope })
}

/// The terminal's answers, once asked for.
pub(super) struct Prompt {
    /// Lines typed on stdin (read by a thread started on the first question).
    lines: Option<mpsc::Receiver<String>>,
    /// Off after a refusal or the end of stdin.
    pub(super) on: bool,
}

impl Prompt {
    /// A prompt that asks only when `interactive` (both ends are a terminal, text
    /// output) and `role` may decide approvals.
    pub(super) fn new(interactive: bool, role: &str) -> Prompt {
        Prompt {
            lines: None,
            on: interactive && matches!(role, "client" | "admin"),
        }
    }

    /// Prints the question.
    pub(super) fn ask(&mut self) {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{QUESTION}");
        let _ = o.flush();
    }

    /// The next typed line; `None` at the end of stdin (the prompt turns off).
    pub(super) async fn line(&mut self) -> Option<String> {
        let rx = self.lines.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(4);
            std::thread::spawn(move || {
                let mut s = String::new();
                loop {
                    s.clear();
                    match std::io::stdin().read_line(&mut s) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if tx.blocking_send(s.clone()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            rx
        });
        let l = rx.recv().await;
        if l.is_none() {
            self.on = false;
        }
        l
    }

    /// Sends `a` for `task`; prints what the broker said. A refusal `forbidden`
    /// turns the prompt off.
    pub(super) async fn decide(&mut self, c: &Client, task: &str, a: Answer) {
        let mut args = json!({"task": task, "decision": a.decision});
        if let Some(s) = a.scope {
            args["scope"] = json!(s);
        }
        if a.decision == "deny" {
            args["reason"] = json!("denied from hive tail");
        }
        match c.command("op.queue.approve", args).await {
            Ok(_) => {}
            Err(e) => {
                if e.code() == Some("forbidden") {
                    self.on = false;
                }
                println!(
                    "         not sent: {}",
                    super::super::output::safe(&super::super::connect::server_error(e))
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_answers_map_to_decisions_and_scopes() {
        let a = |d, s| {
            Some(Answer {
                decision: d,
                scope: s,
            })
        };
        assert_eq!(parse("y\n"), a("approve", Some("once")));
        assert_eq!(parse(" YES "), a("approve", Some("once")));
        assert_eq!(parse("n"), a("deny", None));
        assert_eq!(parse("s"), a("approve", Some("session")));
        assert_eq!(parse("Always\n"), a("approve", Some("always")));
        for no in ["", "maybe", "yy", "ye s"] {
            assert_eq!(parse(no), None, "{no:?}");
        }
        assert!(!Prompt::new(true, "observer").on);
        assert!(!Prompt::new(false, "admin").on);
        assert!(Prompt::new(true, "client").on);
    }
}
