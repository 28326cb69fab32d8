//! ndjson trace logs: one file per task (its trace, which belongs to it alone) under
//! `.hive/logs/<task id>.ndjson`, one line per frame of the task's stream, as published
//! (so after the safety layer's redaction). Every line carries the `traceId`.
//!
//! A dedicated thread does the file I/O so that the queue's hot path never waits on
//! it. Lines are batched: each batch opens a trace's file once. A file past
//! `max_bytes` is rotated: `<task>.ndjson` -> `<task>.1.ndjson` -> ... up to `keep`
//! files, the oldest dropped. File names are made from the queue's own task ids, and
//! still sanitised (`[A-Za-z0-9._-]`, at most 128 bytes) as a second guard.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

/// Handle on the trace-log thread; dropping every handle stops the thread.
#[derive(Clone, Debug)]
pub struct TraceLog {
    tx: Sender<(String, String)>,
}

impl TraceLog {
    /// Starts the writer thread for `dir` (created when absent).
    ///
    /// # Errors
    /// I/O errors creating the directory or the thread.
    pub fn start(dir: PathBuf, max_bytes: u64, keep: u32) -> std::io::Result<TraceLog> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("hive-tracelog".into())
            .spawn(move || run(&dir, rx, max_bytes.max(1024), keep.max(1)))?;
        Ok(TraceLog { tx })
    }

    /// Appends one line (a frame's JSON text) to the trace's log.
    pub fn append(&self, trace: &str, line: String) {
        let _ = self.tx.send((trace.to_owned(), line));
    }
}

/// The file name of a trace's current log.
pub fn file_name(trace: &str) -> String {
    let mut s: String = trace
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, 't');
    }
    format!("{s}.ndjson")
}

fn run(dir: &Path, rx: Receiver<(String, String)>, max_bytes: u64, keep: u32) {
    while let Ok(first) = rx.recv() {
        let mut by_trace: HashMap<String, Vec<String>> = HashMap::new();
        by_trace.entry(first.0).or_default().push(first.1);
        for _ in 0..8192 {
            match rx.try_recv() {
                Ok((t, l)) => by_trace.entry(t).or_default().push(l),
                Err(_) => break,
            }
        }
        for (trace, lines) in by_trace {
            if let Err(e) = write_lines(dir, &trace, &lines, max_bytes, keep) {
                tracing::warn!(trace = %trace, error = %e, "trace log write failed");
            }
        }
    }
}

fn write_lines(
    dir: &Path,
    trace: &str,
    lines: &[String],
    max: u64,
    keep: u32,
) -> std::io::Result<()> {
    let name = file_name(trace);
    let path = dir.join(&name);
    if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) >= max {
        rotate(dir, &name, keep)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())
}

fn rotated(dir: &Path, name: &str, i: u32) -> PathBuf {
    let stem = name.trim_end_matches(".ndjson");
    dir.join(format!("{stem}.{i}.ndjson"))
}

fn rotate(dir: &Path, name: &str, keep: u32) -> std::io::Result<()> {
    let _ = std::fs::remove_file(rotated(dir, name, keep));
    for i in (1..keep).rev() {
        let from = rotated(dir, name, i);
        if from.exists() {
            std::fs::rename(&from, rotated(dir, name, i + 1))?;
        }
    }
    std::fs::rename(dir.join(name), rotated(dir, name, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_and_files_rotate_by_size() {
        assert_eq!(file_name("../etc/passwd"), "t.._etc_passwd.ndjson");
        assert_eq!(file_name("t-1"), "t-1.ndjson");
        let dir = std::env::temp_dir().join(format!("hive-tl-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let line = "x".repeat(600);
        for _ in 0..6 {
            write_lines(&dir, "t-9", std::slice::from_ref(&line), 1024, 2).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.contains(&"t-9.ndjson".to_owned()), "{names:?}");
        assert!(names.contains(&"t-9.1.ndjson".to_owned()), "{names:?}");
        assert!(names.contains(&"t-9.2.ndjson".to_owned()), "{names:?}");
        assert_eq!(names.len(), 3, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
