//! `hive gov` end to end: the real binary on the fixture governance repository
//! (tests/fixtures/gov/repo), no broker. Exit codes, the documented `--json` tally
//! object, readable tables, `--help` with examples, and hostile ballots that try to
//! reach the terminal. Totals are computed by hand here from the fixture's weights.

use crate::cli::hive;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gov/repo")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn copy() -> PathBuf {
    let d = crate::harness::temp_dir("gov");
    copy_dir(&fixture(), &d);
    d
}

fn gov(args: &[&str]) -> Output {
    Command::new(hive())
        .arg("gov")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn minute(id: &str) -> String {
    fixture().join("minutes").join(id).display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn tally_json_is_the_documented_object_and_exits_1_when_ballots_were_refused() {
    let o = gov(&["tally", &minute("0003"), "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["minute"], "0003");
    assert_eq!(v["ballots_counted"], 11);
    let refused: Vec<(&str, &str)> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["file"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(refused.len(), 7);
    assert!(refused
        .iter()
        .any(|(f, r)| *f == "votes/leslie.json" && r.contains("11")));
    assert!(v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["field"].is_string()));
    // 003: 8+9+7+8+9+6+7+8+5+7+6 = 80 of 10 x 11 = 110 -> 72.73 %.
    let p003 = v["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["proposal_id"] == "003")
        .unwrap();
    assert_eq!(p003["total"], 8 + 9 + 7 + 8 + 9 + 6 + 7 + 8 + 5 + 7 + 6);
    assert_eq!(p003["percent"], 72.73);
    assert_eq!(p003["decision"], "approved");
    assert_eq!(p003["vetoed"], false);
    // 004: 1+2+5+1+9+8+9+9+8+9+8 = 69 -> 62.73 %, vetoed by three of four generals.
    let p004 = v["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["proposal_id"] == "004")
        .unwrap();
    assert_eq!(p004["total"], 1 + 2 + 5 + 1 + 9 + 8 + 9 + 9 + 8 + 9 + 8);
    assert_eq!(
        (p004["decision"].as_str(), p004["vetoed"].as_bool()),
        (Some("rejected"), Some(true))
    );
    assert_eq!(v["chain"]["valid"], false);
}

#[test]
fn tally_prints_a_table_and_exits_0_when_every_ballot_was_counted() {
    let o = gov(&["tally", &minute("0001"), "--output", "table"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "minute 0001: 10 ballots counted, 0 refused, 1 ignored; chain valid (11 blocks)"
        ),
        "{text}"
    );
    // 001: 9+8+7+9+8+6+7+8+9+7 = 78 of 100.
    let row = text
        .lines()
        .find(|l| l.contains("A durable task queue"))
        .unwrap();
    assert!(
        row.contains("78/100") && row.contains("78.00 %") && row.contains("approved"),
        "{row}"
    );
    let row = text
        .lines()
        .find(|l| l.contains("One global lock"))
        .unwrap();
    assert!(row.contains("34/100") && row.contains("rejected"), "{row}");
}

#[test]
fn verify_chain_exits_0_on_a_valid_chain_and_1_on_a_broken_or_missing_one() {
    let ok = gov(&["verify-chain", &minute("0001"), "--output", "table"]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(
        stdout(&ok).starts_with("11 blocks, valid"),
        "{}",
        stdout(&ok)
    );
    let bad = gov(&["verify-chain", &minute("0003"), "--output", "table"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    assert!(
        text.contains("broken link") && text.contains("CHANGED"),
        "{text}"
    );
    let v = json(&gov(&["verify-chain", &minute("0003"), "--json"]));
    let fields: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["blocks[6].vote_file_hash", "blocks[8].previous_hash"]
    );
    let none = gov(&["verify-chain", &minute("0002")]);
    assert_eq!(
        none.status.code(),
        Some(1),
        "a minute without a chain is not verified"
    );
}

#[test]
fn a_minute_that_cannot_be_tallied_is_a_usage_error_that_says_what_to_do() {
    let o = gov(&["tally", "/nonexistent/minutes/0009"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give a minute directory"));
    let root = copy();
    std::fs::remove_file(root.join("minutes/0001/proposals.json")).unwrap();
    let o = gov(&["tally", &root.join("minutes/0001").display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("proposals.json"));
}

#[test]
fn every_gov_command_has_help_with_examples_and_exit_codes() {
    for sub in [
        &["tally"][..],
        &["verify-chain"],
        &["kinds"],
        &["run"],
        &["consume"],
        &[],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let o = gov(&args);
        let text = stdout(&o);
        assert!(o.status.success(), "{args:?}");
        assert!(
            text.contains("Examples:") && text.contains("Exit codes:"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn kinds_lists_all_twelve_contracts() {
    let v = json(&gov(&["kinds", "--json"]));
    let kinds = v["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 12);
    assert_eq!(kinds.iter().filter(|k| k["builtin"] == true).count(), 6);
    let text = stdout(&gov(&["kinds", "vote_bip", "--output", "table"]));
    assert!(text.contains("minutes/NNNN/votes/<voter>.json"), "{text}");
    assert_eq!(gov(&["kinds", "nope"]).status.code(), Some(2));
}

#[test]
fn run_executes_built_in_kinds_on_a_repository_idempotently() {
    let root = copy();
    let r = root.display().to_string();
    let o = gov(&[
        "run",
        "tally_votes",
        "--repo",
        &r,
        "--arg",
        "minute=0003",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["written"].as_array().unwrap().len(), 2);
    assert!(root.join("minutes/0003/TALLY.md").exists());
    let o = gov(&[
        "run",
        "update_proposals",
        "--repo",
        &r,
        "--arg",
        "minute=0003",
        "--arg",
        "dry_run=true",
        "--json",
    ]);
    assert_eq!(
        json(&o)["moves"].as_array().unwrap().len(),
        3,
        "003 approved; 004 and 008 rejected"
    );
    assert!(root.join("proposals/pending/004-auto-merge.md").exists());
    let o = gov(&[
        "run",
        "start_bip",
        "--repo",
        &r,
        "--arg",
        "bip=44",
        "--arg",
        "title=Streaming",
        "--json",
    ]);
    assert_eq!(json(&o)["created"].as_array().unwrap().len(), 2);
    let o = gov(&[
        "run",
        "start_bip",
        "--repo",
        &r,
        "--arg",
        "bip=44",
        "--json",
    ]);
    assert_eq!(
        json(&o)["created"].as_array().unwrap().len(),
        0,
        "a second run creates nothing"
    );
    let o = gov(&["run", "start_bip", "--repo", &r, "--arg", "bip=../../tmp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid_argument"));
    let o = gov(&[
        "run",
        "review_bip",
        "--repo",
        &r,
        "--arg",
        "bip=4",
        "--arg",
        "reviewer=grace",
    ]);
    assert_eq!(o.status.code(), Some(2), "agent kinds are not run here");
}

#[test]
fn a_ballot_written_to_attack_the_terminal_is_shown_escaped() {
    let root = copy();
    let votes = root.join("minutes/0001/votes");
    // A refused ballot whose file name and fields carry escape sequences (OSC 52 writes
    // the clipboard; CSI 2J clears the screen).
    let evil = "{\"minute_id\": \"\\u001b]52;c;ZXZpbA==\\u0007\", \"model\": \"\\u001b[2J\", \"timestamp\": \"t\", \"weights\": []}";
    std::fs::write(votes.join("evil\u{1b}[31m.json"), evil).unwrap();
    let o = gov(&[
        "tally",
        &root.join("minutes/0001").display().to_string(),
        "--output",
        "table",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "raw control characters reached the terminal"
    );
    assert!(text.contains("\\u{1b}"), "{text}");
}

#[tokio::test]
async fn the_gov_operator_publishes_the_contracts_to_every_role_and_checks_arguments() {
    use hivebus::client::{Client, ClientError, Hello};
    use hivebus::ops::governance::GovernanceOperator;
    use serde_json::json;
    let q = crate::harness::start_with(
        crate::harness::config(),
        crate::harness::temp_dir("gov-op"),
        vec![std::sync::Arc::new(GovernanceOperator::new())],
    )
    .await;
    // An observer, the most restricted role, reads the table: it is nobody's data.
    let c = Client::connect(&q.url, Hello::role("observer"))
        .await
        .unwrap();
    let v = c.command("op.gov.kinds", json!({})).await.unwrap();
    assert_eq!(v["kinds"].as_array().unwrap().len(), 12);
    let one = c
        .command("op.gov.kind", json!({"kind": "vote_bip"}))
        .await
        .unwrap();
    assert_eq!(one["kind"]["builtin"], false);
    let checked = c
        .command(
            "op.gov.validate",
            json!({"kind": "tally_votes", "args": {"minut": "0003"}}),
        )
        .await
        .unwrap();
    assert_eq!(checked["valid"], false);
    let fields: Vec<&str> = checked["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["minute", "minut"]);
    // Anything else in the namespace is unknown, not quietly admin-only; and the
    // arguments are strict.
    for (name, args) in [
        ("op.gov.run", json!({})),
        ("op.gov.kinds", json!({"all": true})),
    ] {
        match c.command(name, args).await {
            Err(ClientError::Server(w)) => assert!(
                matches!(
                    w.code,
                    hivebus::ErrorCode::UnknownCommand | hivebus::ErrorCode::InvalidField
                ),
                "{name}: {w:?}"
            ),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_built_in_consumer_runs_submitted_governance_tasks_over_the_bus() {
    use crate::cli::{broker, Reaped};
    use std::process::Stdio;
    let dir = crate::harness::temp_dir("gov-consume");
    let root = copy();
    let (_broker, port) = broker(&dir, &[]);
    let url = format!("ws://127.0.0.1:{port}/");
    let _consumer = Reaped(
        Command::new(hive())
            .args(["--url", &url, "gov", "consume", "--repo"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let hive_at = |args: &[&str]| {
        Command::new(hive())
            .args(["--url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let submit = |args: &[&str]| {
        let mut all = vec!["task", "submit"];
        all.extend_from_slice(args);
        all.push("--json");
        let o = hive_at(&all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&o)["traceId"].as_str().unwrap().to_owned()
    };
    // The RESULT frame of a task, through `hive tail --json` (one frame per line).
    let result_of = |trace: &str| {
        let o = hive_at(&["tail", trace, "--json"]);
        let text = stdout(&o);
        let frame = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|f| f["type"] == "RESULT")
            .unwrap_or_else(|| panic!("no RESULT: {text}"));
        (o.status.code(), frame)
    };

    let (code, frame) = result_of(&submit(&[
        "tally_votes",
        "--bip",
        "43",
        "--arg",
        "minute=0003",
    ]));
    assert_eq!(code, Some(0), "{frame}");
    assert_eq!(frame["payload"]["artifacts"]["ballots_counted"], 11);
    assert_eq!(
        frame["payload"]["summary"],
        "minute 0003: 11 ballots counted, 7 refused"
    );
    assert!(root.join("minutes/0003/tally.json").exists());

    // The BIP comes from --bip when the args do not name it.
    let (code, frame) = result_of(&submit(&["verify_bip", "--bip", "4"]));
    assert_eq!(code, Some(0), "{frame}");
    assert_eq!(
        (
            frame["payload"]["artifacts"]["done"].as_u64(),
            frame["payload"]["artifacts"]["total"].as_u64()
        ),
        (Some(2), Some(4))
    );

    // Bad arguments end the attempt with the kind's error code; nothing is written.
    let trace = submit(&[
        "start_bip",
        "--bip",
        "44",
        "--arg",
        "bip=../../x",
        "--max-attempts",
        "1",
        "--not-idempotent",
    ]);
    let o = hive_at(&["tail", &trace, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("argument bip: `bip` must be a BIP number"),
        "{}",
        stdout(&o)
    );
    assert!(!root.join("bips/BIP-44").exists());
}
