//! `hive gov`: the governance repository from the command line, without a broker.
//!
//! `tally` and `verify-chain` read a plain minute directory; `kinds` prints every TASK
//! kind's contract; `run` runs a built-in kind over a repository, the same function the
//! governance consumer runs. Output follows `--output`/`--json` like every command; the
//! JSON of `tally` is the documented tally object (docs/GOVERNANCE.md), the same the
//! `tally_votes` task reports. Everything printed that a repository wrote (file names,
//! titles, reasons) goes through `output::safe`: ballots are written by models.

use super::output::{safe, Out};
use clap::{Args, Subcommand};
use hivebus::ops::governance::chain::verify_chain;
use hivebus::ops::governance::kinds::{example_args, kinds_json, Ty};
use hivebus::ops::governance::layout::root_above;
use hivebus::ops::governance::{contract, run_builtin, tally_minute, Repo, Tally, KINDS};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The `after_help` of `hive gov`.
pub(crate) const GOV_HELP: &str = "Examples:
  hive gov tally minutes/0003                 # ranking, decisions, refused ballots
  hive gov verify-chain minutes/0003
  hive gov kinds                              # every TASK kind's contract
  hive gov run tally_votes --repo . --arg minute=0003
  hive gov consume --repo /srv/governance     # the built-in kinds, as a consumer

Exit codes:
  0  success (tally: every ballot counted; verify-chain: the chain is valid)
  1  tally: some ballots were refused; verify-chain: invalid or missing chain
  2  usage error, unreadable repository or broker unreachable (the message says which)";

/// The `after_help` of `hive gov tally`.
pub(crate) const TALLY_HELP: &str = "Examples:
  hive gov tally minutes/0003                 # a table: ranking, decisions, refused files
  hive gov tally minutes/0003 --json | jq '.proposals[] | {proposal_id, decision}'
  hive gov tally minutes/0003 --repo .        # the repository whose governance.json applies

Rules: governance.json of the repository (found above the minute, or --repo) overlaid by
the minute's rules.json; score = sum of weights / (10 x voters); >= 60 % approved,
40-59 % revision, < 40 % rejected unless a category or proposal says otherwise; a
proposal at least half of the designated generals weighted <= 2 is rejected.

Exit codes:
  0  every ballot was counted (TEMPLATE.json and non-JSON files are ignored, not refused)
  1  some ballots were refused (the table or `refused` says which, with field and reason)
  2  the minute cannot be tallied (no proposals.json, unreadable directory, bad rules)";

/// The `after_help` of `hive gov verify-chain`.
pub(crate) const CHAIN_HELP: &str = "Examples:
  hive gov verify-chain minutes/0003
  hive gov verify-chain minutes/0003 --json

Each block's hash is recomputed as SHA-256 of
index|timestamp|previous_hash|type|model|vote_file|vote_file_hash (null = empty string),
its link checked against the block before, and each ballot's bytes against its recorded
SHA-256: a ballot changed after it was cast shows here.

Exit codes:
  0  the chain is valid
  1  it is invalid, or the minute has no voting_chain.json
  2  usage error (the minute directory does not exist)";

/// The `after_help` of `hive gov kinds` and `hive gov run`.
pub(crate) const KINDS_HELP: &str = "Examples:
  hive gov kinds                              # every kind: built in or agent, arguments
  hive gov kinds vote_bip                     # one kind's full contract
  hive gov kinds --json
  hive gov run tally_votes --repo . --arg minute=0003
  hive gov run update_proposals --arg minute=0003 --arg dry_run=true
  hive gov run start_bip --arg bip=44 --arg title=\"Streaming\"

Exit codes:
  0  success
  2  unknown kind, bad arguments, or the kind failed (the message says which)";

/// `hive gov ...`.
#[derive(Subcommand)]
pub(crate) enum GovCmd {
    /// Tally a minute directory: totals, percentages, ranking, veto, decisions, the
    /// chain's verification, and every refused ballot with its field and reason.
    #[command(after_help = TALLY_HELP)]
    Tally(TallyArgs),
    /// Verify a minute's voting chain: links, block hashes, ballot hashes.
    #[command(name = "verify-chain", after_help = CHAIN_HELP)]
    VerifyChain {
        /// The minute directory (`minutes/0003`).
        minute_dir: PathBuf,
    },
    /// The contract of every governance TASK kind (arguments, artifacts, result).
    #[command(after_help = KINDS_HELP)]
    Kinds {
        /// One kind's contract in full.
        kind: Option<String>,
    },
    /// Run a built-in kind over a repository, here, without a broker.
    #[command(after_help = KINDS_HELP)]
    Run(RunArgs),
    /// The built-in governance consumer: lease the built-in kinds' tasks from the
    /// broker and run each over a repository, one at a time.
    #[command(after_help = CONSUME_HELP)]
    Consume(ConsumeArgs),
}

/// The `after_help` of `hive gov consume`.
pub(crate) const CONSUME_HELP: &str = "Examples:
  hive gov consume --repo /srv/governance &
  hive task submit tally_votes --bip 43 --arg minute=0003 -q | xargs hive tail
  hive gov consume --repo . --url ws://127.0.0.1:7000/ --token \"$HIVE_TOKEN\"

Tasks run one at a time, so two kinds never write the repository together. A task's
`bip` argument defaults to its `--bip`. The RESULT's `artifacts` is the kind's result
object (docs/GOVERNANCE.md); a kind that fails (bad arguments, a refused move) ends the
attempt with ERROR <code>, and the queue retries or dead-letters it as configured.

Exit codes:
  0  stopped (Ctrl-C, or the broker closed the connection)
  2  the repository cannot be opened, or the broker cannot be reached";

/// Flags of `hive gov consume`.
#[derive(Args)]
pub(crate) struct ConsumeArgs {
    /// The repository root.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
}

/// Flags of `hive gov tally`.
#[derive(Args)]
pub(crate) struct TallyArgs {
    /// The minute directory (`minutes/0003`).
    minute_dir: PathBuf,
    /// The repository root whose `governance.json` applies (default: found above the
    /// minute).
    #[arg(long)]
    repo: Option<PathBuf>,
}

/// Flags of `hive gov run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The kind (`hive gov kinds` lists them).
    kind: String,
    /// The repository root.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// An argument `key=value` (repeatable), typed by the kind's contract.
    #[arg(long = "arg", value_name = "K=V")]
    args: Vec<String>,
    /// All arguments as one JSON object (merged under --arg).
    #[arg(long)]
    args_json: Option<String>,
}

/// Runs `hive gov ...`.
///
/// # Errors
/// A message for exit code 2.
pub(crate) async fn run(
    cmd: GovCmd,
    url: &Option<String>,
    dir: &Path,
    token: Option<&str>,
    out: &Out,
) -> Result<ExitCode, String> {
    match cmd {
        GovCmd::Consume(a) => consume(&a, url, dir, token).await,
        GovCmd::Tally(a) => tally(&a, out),
        GovCmd::VerifyChain { minute_dir } => chain(&minute_dir, out),
        GovCmd::Kinds { kind } => kinds(kind.as_deref(), out),
        GovCmd::Run(a) => run_kind(&a, out),
    }
}

fn open_repo(minute_dir: &Path, repo: Option<&Path>) -> Result<Repo, String> {
    if !minute_dir.is_dir() {
        return Err(format!(
            "{} is not a directory: give a minute directory such as minutes/0003",
            minute_dir.display()
        ));
    }
    let root = repo.map_or_else(|| root_above(minute_dir), Path::to_owned);
    Repo::open(&root).map_err(|e| format!("{e} (fix governance.json, or pass --repo)"))
}

fn tally(a: &TallyArgs, out: &Out) -> Result<ExitCode, String> {
    let repo = open_repo(&a.minute_dir, a.repo.as_deref())?;
    let t = tally_minute(&a.minute_dir, &repo.rules).map_err(|e| format!("cannot tally: {e}"))?;
    if out.json {
        out.json(&serde_json::to_value(&t).unwrap_or_default());
    } else {
        print_tally(out, &t);
    }
    Ok(if t.all_counted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn chain_line(t: &Tally) -> String {
    let c = &t.chain;
    if !c.present {
        "no voting chain".into()
    } else if c.valid {
        format!("chain valid ({} blocks)", c.blocks)
    } else {
        format!(
            "chain INVALID ({} blocks, {} problems)",
            c.blocks,
            c.problems.len()
        )
    }
}

fn print_tally(out: &Out, t: &Tally) {
    println!(
        "minute {}: {} ballots counted, {} refused, {} ignored; {}",
        safe(&t.minute),
        t.ballots_counted,
        t.refused.len(),
        t.ignored.len(),
        chain_line(t)
    );
    println!();
    let rows: Vec<Vec<String>> = t
        .proposals
        .iter()
        .map(|p| {
            vec![
                p.rank.to_string(),
                safe(&p.proposal_id),
                safe(&p.title),
                format!("{}/{}", p.total, p.max),
                format!("{:.2} %", p.percent),
                format!("{} %", p.threshold.approve),
                p.decision.as_str().to_owned(),
                match &p.veto {
                    Some(v) if p.vetoed => format!("VETOED by {}", safe(&v.by.join(", "))),
                    Some(v) => format!("{}/{} generals", v.by.len(), v.generals),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    out.table(
        &[
            "RANK",
            "PROPOSAL",
            "TITLE",
            "TOTAL",
            "PERCENT",
            "APPROVE AT",
            "DECISION",
            "VETO",
        ],
        &rows,
        &[],
    );
    if !t.refused.is_empty() {
        println!("\nrefused:");
        let rows: Vec<Vec<String>> = t
            .refused
            .iter()
            .map(|r| vec![safe(&r.file), safe(&r.field), safe(&r.reason)])
            .collect();
        out.table(&["FILE", "FIELD", "REASON"], &rows, &[]);
    }
    if !t.ignored.is_empty() {
        println!("\nignored (not ballots):");
        for i in &t.ignored {
            println!("  {}: {}", safe(&i.file), safe(&i.reason));
        }
    }
    if t.chain.present && !t.chain.valid {
        println!("\nchain problems (hive gov verify-chain for details):");
        for p in &t.chain.problems {
            println!(
                "  {} {}: {}",
                safe(&p.file),
                safe(&p.field),
                safe(&p.reason)
            );
        }
    }
}

fn chain(dir: &Path, out: &Out) -> Result<ExitCode, String> {
    if !dir.is_dir() {
        return Err(format!(
            "{} is not a directory: give a minute directory such as minutes/0003",
            dir.display()
        ));
    }
    let c = verify_chain(dir);
    if out.json {
        out.json(&serde_json::to_value(&c).unwrap_or_default());
    } else if !c.present {
        println!(
            "no voting_chain.json in {}",
            safe(&dir.display().to_string())
        );
    } else {
        println!(
            "{} blocks, {}",
            c.blocks,
            if c.valid {
                "valid: every link and hash verified"
            } else {
                "INVALID"
            }
        );
        if !c.ballots.is_empty() {
            println!();
            let rows: Vec<Vec<String>> = c
                .ballots
                .iter()
                .map(|b| {
                    vec![
                        b.index.to_string(),
                        safe(&b.model),
                        safe(&b.file),
                        if b.matches {
                            "ok".into()
                        } else {
                            "CHANGED".into()
                        },
                    ]
                })
                .collect();
            out.table(&["BLOCK", "VOTER", "FILE", "BALLOT"], &rows, &[]);
        }
        if !c.problems.is_empty() {
            println!();
            let rows: Vec<Vec<String>> = c
                .problems
                .iter()
                .map(|p| vec![safe(&p.file), safe(&p.field), safe(&p.reason)])
                .collect();
            out.table(&["FILE", "FIELD", "PROBLEM"], &rows, &[]);
        }
    }
    Ok(if c.present && c.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn kinds(kind: Option<&str>, out: &Out) -> Result<ExitCode, String> {
    if let Some(k) = kind {
        let c = contract(k)
            .ok_or_else(|| format!("unknown kind {:?}; `hive gov kinds` lists them", safe(k)))?;
        if out.json {
            out.json(&json!({"kind": c, "example_args": example_args(k)}));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} ({}): {}",
            c.kind,
            if c.builtin { "built in" } else { "agent" },
            c.summary
        );
        println!("\narguments:");
        for f in c.args {
            println!(
                "  {:<10} {:<8} {}  {}",
                f.name,
                if f.required { "required" } else { "optional" },
                type_label(f.ty, f.values),
                f.help
            );
        }
        println!("\nartifacts the result names:");
        for a in c.artifacts {
            println!("  {a}");
        }
        if c.artifacts.is_empty() {
            println!("  none");
        }
        println!("\nresult fields:");
        for f in c.result {
            println!(
                "  {:<16} {}  {}",
                f.name,
                type_label(f.ty, f.values),
                f.help
            );
        }
        println!(
            "\nexample: hive task submit {} --args-json '{}'",
            c.kind,
            example_args(k)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if out.json {
        out.json(&kinds_json());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = KINDS
        .iter()
        .map(|c| {
            let args: Vec<String> = c
                .args
                .iter()
                .map(|f| {
                    if f.required {
                        f.name.to_owned()
                    } else {
                        format!("[{}]", f.name)
                    }
                })
                .collect();
            vec![
                c.kind.to_owned(),
                (if c.builtin { "built in" } else { "agent" }).to_owned(),
                args.join(" "),
                c.summary.to_owned(),
            ]
        })
        .collect();
    out.table(&["KIND", "RUN BY", "ARGS", "WHAT"], &rows, &[]);
    Ok(ExitCode::SUCCESS)
}

fn type_label(ty: Ty, values: &[&str]) -> String {
    match ty {
        Ty::Enum => values.join("|"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

fn run_kind(a: &RunArgs, out: &Out) -> Result<ExitCode, String> {
    let c = contract(&a.kind).ok_or_else(|| {
        format!(
            "unknown kind {:?}; `hive gov kinds` lists them",
            safe(&a.kind)
        )
    })?;
    let mut args = match &a.args_json {
        Some(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("--args-json: invalid JSON: {e}"))?,
        None => json!({}),
    };
    let Some(obj) = args.as_object_mut() else {
        return Err("--args-json must be a JSON object".into());
    };
    for kv in &a.args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--arg {kv:?}: expected key=value"))?;
        // Typed by the contract: `minute=0003` stays the string "0003", `bip=44` is 44.
        let ty = c.args.iter().find(|f| f.name == k).map(|f| f.ty);
        let value = match ty {
            Some(Ty::Int | Ty::Bool | Ty::Bip) => {
                serde_json::from_str(v).unwrap_or_else(|_| json!(v))
            }
            _ => json!(v),
        };
        obj.insert(k.to_owned(), value);
    }
    let repo = Repo::open(&a.repo).map_err(|e| e.to_string())?;
    let result = run_builtin(&repo, &a.kind, &args)
        .map_err(|e| format!("{} failed ({}): {e}", a.kind, e.code()))?;
    out.answer(&result, |_, v| {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
    });
    Ok(ExitCode::SUCCESS)
}

/// The broker URL: `--url`, else the port file of `--dir`'s broker (as every command).
fn broker_url(url: &Option<String>, dir: &Path) -> Result<String, String> {
    match url {
        Some(u) => Ok(u.clone()),
        None => {
            let found = hivebus::server::state_dir::locate(dir).map_err(|e| e.to_string())?;
            for w in &found.warnings {
                eprintln!("hive: warning: {w}");
            }
            Ok(format!("ws://127.0.0.1:{}/", found.port))
        }
    }
}

/// One line for the RESULT's summary.
fn summary_of(kind: &str, v: &Value) -> String {
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    match kind {
        "tally_votes" => format!(
            "minute {}: {} ballots counted, {} refused",
            v["minute"].as_str().unwrap_or("?"),
            v["ballots_counted"],
            n("refused")
        ),
        "update_proposals" => format!("{} proposals moved, {} kept", n("moves"), n("kept")),
        "verify_bip" => format!(
            "{}/{} items done, {} files missing",
            v["done"],
            v["total"],
            n("missing_files")
        ),
        _ => format!("{} created, {} already there", n("created"), n("existing")),
    }
}

async fn consume(
    a: &ConsumeArgs,
    url: &Option<String>,
    dir: &Path,
    token: Option<&str>,
) -> Result<ExitCode, String> {
    let repo = Repo::open(&a.repo).map_err(|e| format!("cannot open the repository: {e}"))?;
    let url = broker_url(url, dir)?;
    let kinds: Vec<String> = KINDS
        .iter()
        .filter(|k| k.builtin)
        .map(|k| k.kind.to_owned())
        .collect();
    let mut hello = hivebus::client::Hello::role("consumer");
    hello.capabilities = kinds.clone();
    hello.slots = Some(1);
    hello.auth = token.map(str::to_owned);
    let mut c = hivebus::consumer::Consumer::connect_with(&url, hello)
        .await
        .map_err(|e| {
            format!("cannot register with {url}: {e} (is the broker running? `hive broker`)")
        })?;
    eprintln!(
        "hive: governance consumer on {url} for {} over {}",
        kinds.join(", "),
        a.repo.display()
    );
    loop {
        let lease = tokio::select! {
            l = c.next_lease() => match l { Some(l) => l, None => break },
            _ = tokio::signal::ctrl_c() => break,
        };
        let mut args = lease.args.clone();
        // `hive task submit <kind> --bip N` names the BIP in the task, not in its args.
        let takes_bip = contract(&lease.kind)
            .is_some_and(|c| c.args.iter().any(|f| f.name == "bip" && f.required));
        if let (true, Some(o)) = (takes_bip, args.as_object_mut()) {
            if !o.contains_key("bip") {
                if let Some(b) = lease.payload.get("bipId").filter(|b| !b.is_null()) {
                    o.insert("bip".into(), b.clone());
                }
            }
        }
        let _ = lease.event("run", &lease.kind, Some(0)).await;
        let (r2, kind) = (repo.clone(), lease.kind.clone());
        // The kinds read and write files: off the runtime's worker threads.
        let ran = tokio::task::spawn_blocking(move || run_builtin(&r2, &kind, &args)).await;
        let sent = match ran {
            Ok(Ok(v)) => {
                let summary = summary_of(&lease.kind, &v);
                lease.complete(&summary, Some(v)).await
            }
            Ok(Err(e)) => {
                let details = json!({"kind": lease.kind});
                lease.error(e.code(), &e.to_string(), details).await
            }
            Err(e) => {
                lease
                    .error("internal", &format!("the kind panicked: {e}"), json!({}))
                    .await
            }
        };
        if sent.is_err() {
            break;
        }
    }
    c.close().await;
    Ok(ExitCode::SUCCESS)
}
