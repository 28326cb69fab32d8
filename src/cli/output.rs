//! How `hive` prints: aligned tables and relative times for people, JSON for scripts.
//!
//! The choice (`--output auto|table|json`, `--json` for short): `auto` prints tables
//! when stdout is a terminal and JSON otherwise, so scripts that pipe `hive` keep
//! reading JSON without a flag. Colour only on a terminal, never when `NO_COLOR` is set
//! (to anything non-empty) or `TERM=dumb`. Invariant: JSON output is the broker's
//! answer unchanged (camelCase fields); tables only choose and format fields.

use clap::ValueEnum;
use serde_json::Value;
use std::io::IsTerminal;

/// The `--output` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Tables on a terminal, JSON when stdout is a pipe or a file.
    #[default]
    Auto,
    /// Aligned tables and relative times.
    Table,
    /// The broker's answer as JSON.
    Json,
}

/// The resolved output style of one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    /// JSON rather than tables.
    pub(crate) json: bool,
    /// Whether the JSON mode was asked for explicitly (`tail` prints text unless so).
    pub(crate) json_asked: bool,
    colour: bool,
}

impl Out {
    /// Resolves `mode` against the terminal and the environment.
    pub(crate) fn new(mode: Mode) -> Out {
        let tty = std::io::stdout().is_terminal();
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Out {
            json: match mode {
                Mode::Auto => !tty,
                Mode::Table => false,
                Mode::Json => true,
            },
            json_asked: mode == Mode::Json,
            colour: tty && !no_colour,
        }
    }

    /// Prints `v` as pretty JSON.
    pub(crate) fn json(&self, v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// Prints an answer: as JSON for scripts, else as `human` draws it for people.
    pub(crate) fn answer(&self, v: &Value, human: impl FnOnce(&Out, &Value)) {
        if self.json {
            self.json(v);
        } else {
            human(self, v);
        }
    }

    /// `text` in the colour of a task state (green, red, yellow, cyan), when colour
    /// is on.
    pub(crate) fn state(&self, text: &str) -> String {
        let code = match text {
            "succeeded" => "32",
            "dead" | "failed" => "31",
            "cancelled" => "33",
            "leased" | "working" | "waiting_approval" => "36",
            _ => return text.to_owned(),
        };
        self.paint(code, text)
    }

    /// `text` dimmed, when colour is on.
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Prints rows under `headers`, each column as wide as its widest cell; `paint`
    /// colours a cell after padding (so escape codes never shift the columns).
    pub(crate) fn table(&self, headers: &[&str], rows: &[Vec<String>], paint: &[Option<Paint>]) {
        let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = width.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: Vec<String>| {
            let n = cells.len();
            let mut s = String::new();
            for (i, c) in cells.into_iter().enumerate() {
                s.push_str(&c);
                if i + 1 < n {
                    s.push_str("  ");
                }
            }
            println!("{}", s.trim_end());
        };
        // The last column is not padded: no trailing blanks (inside colour codes,
        // where trimming cannot reach them).
        let last = headers.len().saturating_sub(1);
        let pad = |i: usize| {
            if i < last {
                width.get(i).copied().unwrap_or(0)
            } else {
                0
            }
        };
        line(
            headers
                .iter()
                .enumerate()
                .map(|(i, h)| self.dim(&format!("{h:<w$}", w = pad(i))))
                .collect(),
        );
        for r in rows {
            line(
                r.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let padded = format!("{c:<w$}", w = pad(i));
                        match paint.get(i).copied().flatten() {
                            Some(Paint::State) => self.state_padded(c, &padded),
                            None => padded,
                        }
                    })
                    .collect(),
            );
        }
    }

    /// `padded` (which holds `state` padded) with the state coloured.
    pub(crate) fn state_padded(&self, state: &str, padded: &str) -> String {
        let painted = self.state(state);
        padded.replacen(state, &painted, 1)
    }
}

/// How a table column is coloured.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Paint {
    /// As a task state.
    State,
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// "3s ago", "5m ago", "2h ago", "4d ago" ("in 3s" for a time ahead), or "-".
pub(crate) fn ago(ms: Option<u64>, now: u64) -> String {
    let Some(ms) = ms.filter(|m| *m > 0) else {
        return "-".into();
    };
    let (d, ahead) = if now >= ms {
        (now - ms, false)
    } else {
        (ms - now, true)
    };
    let s = d / 1000;
    let text = match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A field of a JSON answer as text for a cell: strings bare (made safe for a
/// terminal), null as "-".
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => safe(s),
        other => other.to_string(),
    }
}

/// `text` with control characters shown as `\u{..}` escapes. Task args, summaries,
/// progress messages and history notes are written by submitters and consumers; raw
/// escape sequences in them would reach the user's terminal (rewrite the screen, set
/// the title, write the clipboard with OSC 52) when printed as text.
pub(crate) fn safe(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_like_people_say_them() {
        let now = 10_000_000;
        assert_eq!(ago(Some(now - 3_000), now), "3s ago");
        assert_eq!(ago(Some(now - 300_000), now), "5m ago");
        assert_eq!(ago(Some(now - 7_200_000), now), "2h ago");
        assert_eq!(ago(Some(now + 4_000), now), "in 4s");
        assert_eq!(ago(None, now), "-");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(safe("ok"), "ok");
        let s = safe("a\x1b]52;c;ZXZpbA==\x07b\n");
        assert!(!s.chars().any(char::is_control), "{s}");
        assert!(s.starts_with("a\\u{1b}]52"), "{s}");
    }
}
