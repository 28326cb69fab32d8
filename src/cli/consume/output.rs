//! The agent's plain output, bounded on its way to the task's stream.
//!
//! - **Line length**: an EVENT carries at most [`EVENT_LINE`] bytes of a line (cut at
//!   a character boundary, with `"cut": true`); lines are read whole up to 64 KiB
//!   (`agent::MAX_LINE`) and the rest of a longer one is dropped.
//! - **Rate**: at most [`RATE`] lines per second per attempt, with bursts of
//!   [`BURST`] (a token bucket). Lines over it are not streamed; the next line that
//!   is says how many were left out (`{"stream": "hive", "dropped": n}`). They still
//!   count for the failure summary's tail.
//! - **Tail**: the last [`TAIL_LINES`] lines, each cut to [`TAIL_LINE`] bytes, end
//!   the summary of an attempt that failed without a result.
//!
//! Secrets in lines are the broker's to redact (its safety layer inspects every
//! EVENT on arrival, in `enforce` mode); nothing here rewrites them.

use super::agent::Line;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Instant;

/// Longest line text in one EVENT, bytes.
pub(super) const EVENT_LINE: usize = 4096;
/// Lines per second streamed per attempt.
pub(super) const RATE: f64 = 50.0;
/// Lines streamed at once after a quiet spell.
pub(super) const BURST: f64 = 200.0;
/// Lines kept for the failure summary.
pub(super) const TAIL_LINES: usize = 10;
/// Bytes kept of each of them.
pub(super) const TAIL_LINE: usize = 200;

/// `s` cut to at most `max` bytes at a character boundary; whether it was cut.
pub(super) fn clip(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// What becomes of one attempt's plain output: streamed within the rate, and kept
/// as the tail.
#[derive(Default)]
pub(super) struct Relay {
    pub(super) limiter: Limiter,
    pub(super) tail: Tail,
}

/// The token bucket of one attempt.
pub(super) struct Limiter {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            tokens: BURST,
            at: Instant::now(),
            dropped: 0,
        }
    }
}

impl Limiter {
    /// The EVENT payloads to send for `line`: none when over the rate, else the
    /// line (preceded by a note of the lines dropped before it, if any).
    pub(super) fn admit(&mut self, line: &Line) -> Vec<Value> {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * RATE;
        self.tokens = (self.tokens + earned).min(BURST);
        self.at = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return Vec::new();
        }
        self.tokens -= 1.0;
        let mut out = Vec::with_capacity(2);
        out.extend(self.flush());
        let (text, cut) = clip(&line.text, EVENT_LINE);
        let mut p = json!({"line": text, "stream": line.stream.as_str()});
        if cut || line.cut {
            p["cut"] = json!(true);
        }
        out.push(p);
        out
    }
}

impl Limiter {
    /// The note of the lines dropped since the last one streamed, if any (sent
    /// before the next line, and at the end of the attempt).
    pub(super) fn flush(&mut self) -> Option<Value> {
        if self.dropped == 0 {
            return None;
        }
        let n = std::mem::take(&mut self.dropped);
        Some(json!({
            "stream": "hive",
            "dropped": n,
            "line": format!("[hive consume: {n} lines over {RATE}/s not streamed]"),
        }))
    }
}

/// The last lines of plain output.
#[derive(Default)]
pub(super) struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    /// Keeps `text` (cut) as the newest line.
    pub(super) fn push(&mut self, text: &str) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(clip(text, TAIL_LINE).0.to_owned());
    }

    /// `"; last output:\n..."`, or nothing when there was none.
    pub(super) fn render(&self) -> String {
        if self.lines.is_empty() {
            return String::new();
        }
        let body: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        format!("; last output:\n{}", body.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::agent::Stream;
    use super::*;

    fn line(t: &str) -> Line {
        Line {
            stream: Stream::Stdout,
            text: t.to_owned(),
            cut: false,
        }
    }

    #[test]
    fn lines_are_cut_and_a_flood_is_counted_not_streamed() {
        assert_eq!(clip("héllo", 2), ("h", true));
        let mut l = Limiter::default();
        let long = "x".repeat(EVENT_LINE + 10);
        let p = l.admit(&line(&long));
        assert_eq!(p[0]["line"].as_str().unwrap().len(), EVENT_LINE);
        assert_eq!(p[0]["cut"], true);
        let mut sent = 1;
        for _ in 0..1000 {
            sent += l.admit(&line("y")).len();
        }
        // The burst, plus what the elapsed microseconds earned.
        assert!(sent < 260, "{sent}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let p = l.admit(&line("z"));
        assert_eq!(p[0]["stream"], "hive");
        assert!(p[0]["dropped"].as_u64().unwrap() > 700);
        assert_eq!(p[1]["line"], "z");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_bounded() {
        let mut t = Tail::default();
        assert_eq!(t.render(), "");
        for i in 0..30 {
            t.push(&format!("{i}{}", "a".repeat(500)));
        }
        let r = t.render();
        assert!(r.starts_with("; last output:\n20"));
        assert!(r.len() < TAIL_LINES * (TAIL_LINE + 1) + 20);
    }
}
