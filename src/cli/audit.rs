//! `hive audit verify` and `hive audit tail`: the broker's hash-chained audit log read
//! from its file, without a broker (the log is on the broker's disk; reading it needs
//! that machine's file permissions, not a credential).
//!
//! `verify` exits 0 when the chain is whole and ends where the head file says, 1 when
//! it found a break (each printed with its line and reason), 2 when the file cannot be
//! read at all.

use super::output::{cell, Out};
use clap::{Args, Subcommand};
use hivebus::audit::{chain, head_path};
use serde_json::{json, Value};
use std::io::{BufRead, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The `after_help` of `hive audit`.
pub(crate) const HELP: &str = "Examples:
  hive audit verify                      # .hive/audit.log of the current directory
  hive audit verify --file /srv/hive/.hive/audit.log --json
  hive audit tail -n 50
  hive audit tail --follow --kind refused,auth_failed

Exit codes:
  0  verify: the chain is whole; tail: done
  1  verify: the chain is broken (each break is listed with its line)
  2  the log cannot be read (the message says why)";

/// `hive audit ...`.
#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Check every record's hash, the chain's links and the head file: shows an
    /// edited, removed or reordered record and records cut from the end.
    #[command(after_help = HELP)]
    Verify(FileArgs),
    /// Print the last records, and optionally follow new ones.
    #[command(after_help = HELP)]
    Tail(TailArgs),
}

/// Where the log is.
#[derive(Args)]
pub(crate) struct FileArgs {
    /// The log file (default: `<dir>/.hive/audit.log`).
    #[arg(long)]
    file: Option<PathBuf>,
}

/// Flags of `hive audit tail`.
#[derive(Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    file: FileArgs,
    /// How many of the last records to print.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Keep printing records as the broker appends them (Ctrl-C to stop).
    #[arg(short, long)]
    follow: bool,
    /// Only these kinds (comma-separated: refused,auth_failed,admin_command,...).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
}

/// Runs `hive audit`.
pub(crate) async fn run(cmd: AuditCmd, dir: &Path, out: &Out) -> Result<ExitCode, String> {
    let path = |f: &FileArgs| {
        f.file
            .clone()
            .unwrap_or_else(|| dir.join(".hive").join("audit.log"))
    };
    match cmd {
        AuditCmd::Verify(f) => verify(&path(&f), out),
        AuditCmd::Tail(t) => tail(&path(&t.file), &t, out).await,
    }
}

fn verify(path: &Path, out: &Out) -> Result<ExitCode, String> {
    let report = chain::verify(path, Some(&head_path(path))).map_err(|e| {
        format!(
            "cannot read {}: {e} (is the broker's state directory elsewhere? pass --file or --dir)",
            path.display()
        )
    })?;
    if out.json {
        out.json(&json!({"file": path, "ok": report.ok(), "report": report}));
    } else if report.ok() {
        let head = match report.head_matches {
            Some(true) => "the head file agrees",
            _ => "no head file to compare the end with",
        };
        println!(
            "ok: {} records, chain whole up to seq {}; {head}",
            report.records, report.last_seq
        );
    } else {
        println!(
            "BROKEN: {} problem(s) in {} ({} records read)",
            report.problems.len(),
            path.display(),
            report.records
        );
        let rows: Vec<Vec<String>> = report
            .problems
            .iter()
            .map(|p| {
                let at = if p.line == 0 {
                    "head".to_owned()
                } else {
                    p.line.to_string()
                };
                vec![at, p.reason.clone()]
            })
            .collect();
        out.table(&["LINE", "PROBLEM"], &rows, &[]);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn tail(path: &Path, t: &TailArgs, out: &Out) -> Result<ExitCode, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let wanted = |r: &Value| t.kind.is_empty() || t.kind.iter().any(|k| r["kind"] == **k);
    // The whole file is read once to find the last records; a follow then reads
    // only what is appended.
    let mut last: std::collections::VecDeque<Value> = std::collections::VecDeque::new();
    let mut reader = std::io::BufReader::new(&mut file);
    let mut line = String::new();
    while reader.read_line(&mut line).map_err(cannot)? > 0 {
        if let Some(r) = parse(&line).filter(|r| wanted(r)) {
            if last.len() == t.lines {
                last.pop_front();
            }
            if t.lines > 0 {
                last.push_back(r);
            }
        }
        line.clear();
    }
    for r in &last {
        print_record(r, out);
    }
    if !t.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut pos = reader.stream_position().map_err(cannot)?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut f = std::fs::File::open(path).map_err(cannot)?;
        f.seek(SeekFrom::Start(pos)).map_err(cannot)?;
        let mut r = std::io::BufReader::new(f);
        let mut line = String::new();
        // Only whole lines: a record being written is read on the next round.
        while r.read_line(&mut line).map_err(cannot)? > 0 && line.ends_with('\n') {
            pos += line.len() as u64;
            if let Some(rec) = parse(&line).filter(|r| wanted(r)) {
                print_record(&rec, out);
            }
            line.clear();
        }
    }
}

fn parse(line: &str) -> Option<Value> {
    serde_json::from_str(line.trim_end()).ok()
}

fn print_record(r: &Value, out: &Out) {
    if out.json {
        println!("{r}");
        return;
    }
    let actor = match &r["actor"] {
        Value::Null => "-".to_owned(),
        a => format!("{} ({})", cell(&a["subject"]), cell(&a["role"])),
    };
    let details = match &r["details"] {
        Value::Null => String::new(),
        d => d.to_string(),
    };
    println!(
        "{:>6}  {}  {:<18} {:<24} {:<28} {:<10} {}",
        cell(&r["seq"]),
        out.dim(&cell(&r["ts"])),
        cell(&r["kind"]),
        actor,
        cell(&r["target"]),
        cell(&r["outcome"]),
        out.dim(&details)
    );
}
