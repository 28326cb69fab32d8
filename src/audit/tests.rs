//! The audit log against its own verifier: whole chains pass; an edited, removed or
//! cut record, and a torn last line, are found.

use super::chain::{self, verify};
use super::{head_path, Audit, AuditConfig, Entry};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hive-audit-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.log")
}

async fn write(path: &Path, n: usize) {
    let audit = Audit::open(path, &AuditConfig::default()).unwrap();
    for i in 0..n {
        audit.record(
            Entry::new("admin_command")
                .target(format!("op.safety.reload#{i}"))
                .outcome("ok")
                .details(json!({"i": i})),
        );
    }
    audit.flush().await;
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn put(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_whole_chain_verifies_and_continues_across_reopens() {
    let path = tmp("whole");
    write(&path, 3).await;
    write(&path, 2).await;
    let report = verify(&path, Some(&head_path(&path))).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    // Two `audit_opened` records and five entries.
    assert_eq!(report.records, 7);
    assert_eq!(report.last_seq, 7);
    assert_eq!(report.head_matches, Some(true));
    let kinds: Vec<String> = lines(&path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds[0], "audit_opened");
    assert_eq!(kinds[4], "audit_opened");
}

#[tokio::test]
async fn an_edited_record_is_found_by_its_hash() {
    let path = tmp("edit");
    write(&path, 3).await;
    let mut l = lines(&path);
    l[2] = l[2].replace("op.safety.reload#1", "op.safety.reload#9");
    put(&path, &l);
    let report = verify(&path, Some(&head_path(&path))).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].line, 3);
    assert!(report.problems[0].reason.contains("record changed"));
}

#[tokio::test]
async fn a_removed_record_breaks_the_chain_where_it_was() {
    let path = tmp("remove");
    write(&path, 3).await;
    let mut l = lines(&path);
    l.remove(1);
    put(&path, &l);
    let report = verify(&path, Some(&head_path(&path))).unwrap();
    assert!(!report.ok());
    assert!(report.problems.iter().all(|p| p.line == 2 || p.line == 0));
    assert!(report
        .problems
        .iter()
        .any(|p| p.reason.contains("seq 3 follows 1")));
}

#[tokio::test]
async fn records_cut_from_the_end_are_found_by_the_head() {
    let path = tmp("cut");
    write(&path, 3).await;
    let mut l = lines(&path);
    l.pop();
    put(&path, &l);
    let report = verify(&path, Some(&head_path(&path))).unwrap();
    assert_eq!(report.head_matches, Some(false));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].reason.contains("cut from the end"));
    // Without the head, the shorter chain is whole: that is what the head is for.
    assert!(verify(&path, None).unwrap().ok());
}

#[tokio::test]
async fn a_torn_last_line_is_cut_and_said_on_reopen() {
    let path = tmp("torn");
    write(&path, 2).await;
    let mut bytes = std::fs::read(&path).unwrap();
    let torn = b"{\"seq\":4,\"ts\":\"half a rec";
    bytes.extend_from_slice(torn);
    std::fs::write(&path, bytes).unwrap();
    write(&path, 1).await;
    let report = verify(&path, Some(&head_path(&path))).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let reopened: Value = serde_json::from_str(&lines(&path)[3]).unwrap();
    assert_eq!(reopened["kind"], "audit_opened");
    assert_eq!(reopened["details"]["torn_bytes_cut"], torn.len());
}

#[tokio::test]
async fn refusals_over_the_rate_are_summed_not_lost() {
    let path = tmp("rate");
    let config = AuditConfig {
        refusals_per_sec: 2,
        ..AuditConfig::default()
    };
    let audit = Audit::open(&path, &config).unwrap();
    for _ in 0..10 {
        audit.refusal(Entry::new("refused").outcome("forbidden"));
    }
    audit.flush().await;
    let records: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kept = records.iter().filter(|r| r["kind"] == "refused").count() as u64;
    let summed: u64 = records
        .iter()
        .filter(|r| r["kind"] == "refusals_suppressed")
        .map(|r| r["details"]["count"].as_u64().unwrap())
        .sum();
    assert!((2..10).contains(&kept), "kept {kept}");
    assert_eq!(kept + summed, 10);
    assert!(verify(&path, Some(&head_path(&path))).unwrap().ok());
}

#[test]
fn oversized_details_are_replaced_by_their_size() {
    let (line, _) = chain::seal(r#"{"seq":1"#.to_owned());
    assert!(chain::open(&line).unwrap().intact);
    let path = tmp("big");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let audit = Audit::open(&path, &AuditConfig::default()).unwrap();
        audit.record(Entry::new("admin_command").details(json!({"blob": "x".repeat(10_000)})));
        audit.flush().await;
    });
    let last: Value = serde_json::from_str(lines(&path).last().unwrap()).unwrap();
    assert_eq!(last["details"]["truncated"], true);
    assert!(last["details"]["bytes"].as_u64().unwrap() > 10_000);
}
