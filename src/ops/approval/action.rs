//! An action to decide on: what a consumer asks to do (a shell or git command, paths
//! to read or write, a host, a publish) with where and for which task, and how a
//! consumer's APPROVAL request is read into one.
//!
//! Invariant: an argument vector becomes one command line whose first word is always
//! quoted, so `A=1` or `if` in first place is the program, never an assignment or a
//! keyword; the policy reads that line with the same lexer as any other.

use super::config::Tool;
use super::shell;
use serde_json::Value;

/// An action to decide on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Action {
    /// What kind of action.
    pub tool: Tool,
    /// The command line (shell, git).
    pub command: Option<String>,
    /// The paths (read, write); each must be allowed.
    pub paths: Vec<String>,
    /// The host or URL (net), or registry (publish).
    pub host: Option<String>,
    /// The working directory; relative paths resolve against it.
    pub cwd: Option<String>,
    /// The task's worktree (default: `cwd`); path globs are relative to it.
    pub worktree: Option<String>,
    /// The task's kind.
    pub kind: Option<String>,
    /// The task's BIP.
    pub bip: Option<u64>,
    /// The role the request states.
    pub role: Option<String>,
}

impl Action {
    /// A shell command.
    pub fn shell(command: impl Into<String>) -> Action {
        Action {
            command: Some(command.into()),
            ..Action::default()
        }
    }

    /// Reads the action of a consumer's APPROVAL request: `tool` (default `shell`
    /// when `command` is present), `command` (a line, or an array of words),
    /// `path`/`paths`, `host`/`url`/`registry`, `cwd`, `worktree`, `role`.
    ///
    /// # Errors
    /// An unknown tool, a field of the wrong type, or no tool and no command.
    pub fn from_request(v: &Value) -> Result<Action, String> {
        let text = |k: &str| -> Result<Option<String>, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{k}` must be a string")),
            }
        };
        let command = match v.get("command") {
            Some(Value::Array(words)) => Some(
                // The first word always quoted: in an argument vector, `A=1` or
                // `if` is the program, never an assignment or a keyword.
                words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        w.as_str().map(|w| match i {
                            0 => format!("'{}'", w.replace('\'', "'\\''")),
                            _ => shell::quote(w),
                        })
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`command` must be a string or an array of strings")?
                    .join(" "),
            ),
            _ => text("command")?,
        };
        let tool = match text("tool")? {
            Some(t) => serde_json::from_value(Value::String(t.clone()))
                .map_err(|_| format!("unknown tool `{t}`"))?,
            None if command.is_some() => Tool::Shell,
            None => return Err("no `tool` and no `command`".into()),
        };
        let mut paths: Vec<String> = text("path")?.into_iter().collect();
        match v.get("paths") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for p in list {
                    paths.push(p.as_str().ok_or("`paths` must hold strings")?.to_owned());
                }
            }
            Some(_) => return Err("`paths` must be an array".into()),
        }
        let host = match (text("host")?, text("url")?, text("registry")?) {
            (Some(h), _, _) | (None, Some(h), _) | (None, None, Some(h)) => Some(h),
            _ => None,
        };
        Ok(Action {
            tool,
            command,
            paths,
            host,
            cwd: text("cwd")?,
            worktree: text("worktree")?,
            role: text("role")?,
            ..Action::default()
        })
    }
}

impl Action {
    /// The worktree: as given, else the directory the action started in.
    pub(crate) fn root(&self) -> Option<&str> {
        self.worktree.as_deref().or(self.cwd.as_deref())
    }
}
