//! Unit tests on the fixture repository (tests/fixtures/gov/repo, written by its
//! generate.py). Expected totals are computed here by hand from the weights the
//! generator wrote, never by the code under test; tests that change files work on a
//! copy in a temporary directory.

use super::ballot::parse_ballot;
use super::bip::{self, Stage};
use super::chain::{sha256_hex, verify_chain};
use super::error::ProblemCode;
use super::kinds::{self, validate_args, validate_result, KINDS};
use super::layout::Repo;
use super::proposal::{list_proposals, ProposalState};
use super::rules::{decide, Applied, Decision, Rules, RulesConfig};
use super::tally::tally_minute;
use super::update::{tally_votes, update_proposals};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

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

/// A fresh copy of the fixture repository.
fn copy() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hive-gov-{}", fastrand::u64(..)));
    copy_dir(&fixture(), &d);
    d
}

fn repo_at(root: &Path) -> Repo {
    Repo::open(root).unwrap()
}

fn tally_of(root: &Path, minute: &str) -> super::Tally {
    let repo = repo_at(root);
    tally_minute(&repo.minute_dir(minute).unwrap(), &repo.rules).unwrap()
}

fn codes(t: &super::Tally) -> Vec<(String, ProblemCode)> {
    t.refused.iter().map(|r| (r.file.clone(), r.code)).collect()
}

#[test]
fn a_clean_minute_counts_all_ten_ballots_and_decides_by_the_default_thresholds() {
    let t = tally_of(&fixture(), "0001");
    assert_eq!(t.ballots_counted, 10);
    assert!(t.all_counted(), "{:?}", t.refused);
    // 001: ada 9, grace 8, linus 7, margaret 9, alan 8, barbara 6, dennis 7, edsger 8,
    // ken 9, niklaus 7.
    let p001 = 9 + 8 + 7 + 9 + 8 + 6 + 7 + 8 + 9 + 7;
    // 002: 3, 4, 3, 5, 2, 3, 4, 3, 3, 4.
    let p002 = 3 + 4 + 3 + 5 + 2 + 3 + 4 + 3 + 3 + 4;
    assert_eq!((p001, p002), (78, 34));
    let r1 = t.proposal("001").unwrap();
    assert_eq!((r1.total, r1.max, r1.percent), (78, 100, 78.0));
    assert_eq!(r1.decision, Decision::Approved);
    let r2 = t.proposal("002").unwrap();
    assert_eq!(
        (r2.total, r2.percent, r2.decision),
        (34, 34.0, Decision::Rejected)
    );
    assert_eq!((r1.rank, r2.rank), (1, 2));
    assert!(t.chain.present && t.chain.valid, "{:?}", t.chain.problems);
    assert_eq!(t.chain.blocks, 11, "a genesis block and one per ballot");
    assert_eq!(
        t.ignored.len(),
        1,
        "TEMPLATE.json is ignored, not counted or refused"
    );
    assert_eq!(t.ignored[0].code, ProblemCode::NotABallot);
}

#[test]
fn a_minute_with_every_kind_of_bad_file_counts_the_good_ones_and_names_each_bad_one() {
    let t = tally_of(&fixture(), "0003");
    assert_eq!(t.ballots_counted, 11);
    assert_eq!(
        codes(&t),
        vec![
            (
                "votes/ada-second-thoughts.json".into(),
                ProblemCode::DuplicateVoter
            ),
            ("votes/alan.json".into(), ProblemCode::HashMismatch),
            ("votes/donald.json".into(), ProblemCode::DuplicateProposal),
            ("votes/frances.json".into(), ProblemCode::WrongMinute),
            ("votes/john.json".into(), ProblemCode::InvalidJson),
            ("votes/leslie.json".into(), ProblemCode::WeightOutOfRange),
            ("votes/tony.json".into(), ProblemCode::MissingProposal),
        ]
    );
    let field = |f: &str| {
        t.refused
            .iter()
            .find(|r| r.file == f)
            .unwrap()
            .field
            .clone()
    };
    assert_eq!(field("votes/leslie.json"), "weights[0].weight");
    assert_eq!(field("votes/frances.json"), "minute_id");
    assert_eq!(field("votes/donald.json"), "weights[5].proposal_id");
    let ignored: Vec<&str> = t.ignored.iter().map(|i| i.file.as_str()).collect();
    assert_eq!(ignored, ["votes/README.md", "votes/TEMPLATE.json"]);

    // Counted: ada, grace, linus, margaret, barbara, dennis, edsger, ken, niklaus,
    // bjarne, radia (alan's ballot changed after it was cast; ada's second is refused).
    let max = 10 * 11;
    let p003 = 8 + 9 + 7 + 8 + 9 + 6 + 7 + 8 + 5 + 7 + 6;
    let p004 = 1 + 2 + 5 + 1 + 9 + 8 + 9 + 9 + 8 + 9 + 8;
    let p005 = 5 + 6 + 4 + 5 + 3 + 4 + 5 + 3 + 4 + 5 + 6;
    let p006 = 6 + 5 + 8 + 6 + 7 + 8 + 6 + 6 + 7 + 8 + 6;
    let p008 = 3 + 3 + 3 + 4 + 2 + 3 + 1 + 2 + 3 + 2 + 3;
    assert_eq!((p003, p004, p005, p006, p008), (80, 69, 50, 73, 29));
    let get = |id: &str| t.proposal(id).unwrap();
    for (id, total) in [
        ("003", p003),
        ("004", p004),
        ("005", p005),
        ("006", p006),
        ("008", p008),
    ] {
        assert_eq!((get(id).total, get(id).max), (total, max), "proposal {id}");
    }
    // 80/110 = 72.73 % >= 60: approved.
    assert_eq!(
        (get("003").percent, get("003").decision),
        (72.73, Decision::Approved)
    );
    // 69/110 = 62.73 % would pass, but ada (1), grace (2) and margaret (1), three of
    // the four generals, weighted it <= 2: vetoed.
    assert_eq!(get("004").percent, 62.73);
    assert!(get("004").vetoed);
    assert_eq!(get("004").decision, Decision::Rejected);
    assert_eq!(
        get("004").veto.as_ref().unwrap().by,
        ["ada", "grace", "margaret"]
    );
    assert_eq!(
        get("004").veto.as_ref().unwrap().reasons.len(),
        2,
        "ada and margaret gave reasons"
    );
    // 50/110 = 45.45 %: revision.
    assert_eq!(
        (get("005").percent, get("005").decision),
        (45.45, Decision::Revision)
    );
    // 73/110 = 66.36 %: a core proposal needs 70 %: revision.
    assert_eq!(
        (get("006").percent, get("006").threshold.approve),
        (66.36, 70)
    );
    assert_eq!(get("006").decision, Decision::Revision);
    // 29/110 = 26.36 %: rejected, not vetoed (no general went below 3).
    assert_eq!(
        (get("008").percent, get("008").decision, get("008").vetoed),
        (26.36, Decision::Rejected, false)
    );
    let ranks: Vec<&str> = t.proposals.iter().map(|p| p.proposal_id.as_str()).collect();
    assert_eq!(
        ranks,
        ["003", "006", "004", "005", "008"],
        "by total: 80, 73, 69, 50, 29"
    );

    let chain: Vec<(String, ProblemCode)> = t
        .chain
        .problems
        .iter()
        .map(|p| (p.field.clone(), p.code))
        .collect();
    assert_eq!(
        chain,
        vec![
            ("blocks[6].vote_file_hash".into(), ProblemCode::HashMismatch),
            ("blocks[8].previous_hash".into(), ProblemCode::BrokenLink),
        ]
    );
    assert!(!t.chain.valid);
}

#[test]
fn a_minute_s_rules_and_a_proposal_s_own_threshold_apply_at_their_exact_boundaries() {
    let t = tally_of(&fixture(), "0002");
    assert_eq!(t.ballots_counted, 10);
    assert!(!t.chain.present);
    // 007 carries its own 70 %: 7*7 + 6*3 = 67 -> 67 %, revision (55 % would approve).
    let p007 = 7 * 7 + 6 * 3;
    // 009 under the minute's 55 %: (6 + 5) * 5 = 55 -> exactly 55 %: approved.
    let p009 = (6 + 5) * 5;
    // 010 under the minute's 35 % floor: (4 + 3) * 5 = 35 -> exactly 35 %: revision.
    let p010 = (4 + 3) * 5;
    let get = |id: &str| t.proposal(id).unwrap();
    assert_eq!(
        (get("007").total, get("007").decision),
        (p007, Decision::Revision)
    );
    assert_eq!(get("007").threshold.source, "proposals.json");
    assert_eq!(
        (get("009").total, get("009").decision),
        (p009, Decision::Approved)
    );
    assert_eq!(
        (get("010").total, get("010").decision),
        (p010, Decision::Revision)
    );
    assert_eq!((t.rules.approve, t.rules.revise), (55, 35));
}

#[test]
fn decisions_compare_in_integers_at_the_thresholds() {
    let a = Applied {
        approve: 60,
        revise: 40,
        source: "default".into(),
    };
    assert_eq!(decide(60, 10, &a), Decision::Approved, "60/100 is 60 %");
    assert_eq!(
        decide(599, 100, &a),
        Decision::Revision,
        "599/1000 is 59.9 %"
    );
    assert_eq!(decide(40, 10, &a), Decision::Revision);
    assert_eq!(decide(39, 10, &a), Decision::Rejected);
    assert_eq!(
        decide(0, 0, &a),
        Decision::Rejected,
        "no ballot, no approval"
    );
    // Two voters: 12/20 = 60 %.
    assert_eq!(decide(12, 2, &a), Decision::Approved);
}

#[test]
fn thresholds_fall_back_from_proposal_to_rule_to_category_to_default() {
    let cfg: RulesConfig = serde_json::from_value(json!({
        "categories": {"core": {"approve": 70}},
        "proposals": {"009": {"approve": 80, "revise": 50}}
    }))
    .unwrap();
    let r = Rules::default().overlay(&cfg, "t").unwrap();
    assert_eq!(r.threshold_for("001", None, None).approve, 60);
    assert_eq!(r.threshold_for("001", Some("core"), None).approve, 70);
    let t = r.threshold_for("009", Some("core"), None);
    assert_eq!(
        (t.approve, t.revise, t.source.as_str()),
        (80, 50, "rules:009")
    );
    let own = serde_json::from_value(json!({"approve": 55})).unwrap();
    let t = r.threshold_for("009", Some("core"), Some(own));
    assert_eq!(
        (t.approve, t.revise),
        (55, 50),
        "each field falls back on its own"
    );
    let bad: RulesConfig = serde_json::from_value(json!({"approve": 50, "revise": 55})).unwrap();
    let e = Rules::default().overlay(&bad, "rules.json").unwrap_err();
    assert_eq!(e.code(), "invalid_file");
    assert!(
        serde_json::from_value::<RulesConfig>(json!({"aprove": 50})).is_err(),
        "a misspelt rule is an error"
    );
}

#[test]
fn a_veto_needs_half_of_the_designated_generals() {
    let root = copy();
    // Eight generals: ada, grace and margaret are 3 of 8, under half: no veto, and
    // 004's 69/110 = 62.73 % approves it.
    std::fs::write(
        root.join("minutes/0003/rules.json"),
        r#"{"generals": ["ada", "grace", "linus", "margaret", "alan", "barbara", "dennis", "ken"]}"#,
    )
    .unwrap();
    let t = tally_of(&root, "0003");
    let p = t.proposal("004").unwrap();
    assert!(!p.vetoed);
    assert_eq!(p.veto.as_ref().unwrap().needed, 4);
    assert_eq!(p.decision, Decision::Approved);
    // Six generals: 3 of 6 is half: vetoed again.
    std::fs::write(
        root.join("minutes/0003/rules.json"),
        r#"{"generals": ["ada", "grace", "linus", "margaret", "alan", "barbara"]}"#,
    )
    .unwrap();
    let p = tally_of(&root, "0003").proposal("004").unwrap().clone();
    assert!(p.vetoed);
    assert_eq!(p.decision, Decision::Rejected);
}

#[test]
fn block_hashes_are_sha256_of_the_pipe_joined_fields_with_null_as_empty() {
    // Computed here from the issue's formula, not through Block::compute_hash.
    let chain: Value = serde_json::from_slice(
        &std::fs::read(fixture().join("minutes/0001/voting_chain.json")).unwrap(),
    )
    .unwrap();
    let genesis = sha256_hex(b"0|2026-11-01T09:00:00Z||genesis|||");
    assert_eq!(chain[0]["block_hash"], genesis.as_str());
    let ballot = std::fs::read(fixture().join("minutes/0001/votes/ada.json")).unwrap();
    let vote_hash = sha256_hex(&ballot);
    assert_eq!(chain[1]["vote_file_hash"], vote_hash.as_str());
    let line = format!("1|2026-11-01T10:00:00Z|{genesis}|vote|ada|votes/ada.json|{vote_hash}");
    assert_eq!(chain[1]["block_hash"], sha256_hex(line.as_bytes()).as_str());
    // And the well-known digest of the empty string, so the hex encoding is checked too.
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn a_ballot_changed_after_it_was_cast_is_refused_and_its_weights_leave_the_totals() {
    let root = copy();
    let f = root.join("minutes/0001/votes/ken.json");
    let text = std::fs::read_to_string(&f).unwrap();
    // Still a valid ballot, one byte more: only the chain can tell.
    std::fs::write(&f, format!("{text} ")).unwrap();
    let t = tally_of(&root, "0001");
    assert_eq!(t.ballots_counted, 9);
    assert_eq!(
        codes(&t),
        vec![("votes/ken.json".to_owned(), ProblemCode::HashMismatch)]
    );
    // Without ken (9 on 001, 3 on 002): 78 - 9 = 69 of 90, 34 - 3 = 31 of 90.
    assert_eq!(
        (
            t.proposal("001").unwrap().total,
            t.proposal("001").unwrap().max
        ),
        (69, 90)
    );
    assert_eq!(t.proposal("002").unwrap().total, 31);
}

#[test]
fn an_altered_block_a_missing_vote_file_and_an_unchained_ballot_are_each_reported() {
    let root = copy();
    let path = root.join("minutes/0001/voting_chain.json");
    let mut chain: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    chain[2]["model"] = json!("mallory");
    std::fs::write(&path, serde_json::to_vec(&chain).unwrap()).unwrap();
    std::fs::remove_file(root.join("minutes/0001/votes/linus.json")).unwrap();
    let extra = r#"{"minute_id": "0001", "model": "radia", "timestamp": "t", "weights": [{"proposal_id": "001", "weight": 10}, {"proposal_id": "002", "weight": 1}]}"#;
    std::fs::write(root.join("minutes/0001/votes/radia.json"), extra).unwrap();
    let c = verify_chain(&root.join("minutes/0001"));
    let got: Vec<(String, ProblemCode)> = c
        .problems
        .iter()
        .map(|p| (p.field.clone(), p.code))
        .collect();
    assert!(
        got.contains(&("blocks[2].block_hash".into(), ProblemCode::BlockAltered)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(f, c)| f == "blocks[3].vote_file" && *c == ProblemCode::MissingVoteFile),
        "{got:?}"
    );
    let t = tally_of(&root, "0001");
    assert!(t
        .chain
        .problems
        .iter()
        .any(|p| p.file == "votes/radia.json" && p.code == ProblemCode::NotInChain));
    // radia counts (the chain attests ballots, it does not gate new ones) and linus is gone.
    assert_eq!(t.ballots_counted, 10);
}

#[test]
fn every_ballot_defect_is_reported_with_its_field() {
    let ids = ["003".to_owned(), "004".to_owned()];
    let check = |text: &str, code: ProblemCode, field: &str| {
        let err = parse_ballot("votes/x.json", text.as_bytes(), "0003", &ids).unwrap_err();
        assert!(
            err.iter().any(|p| p.code == code && p.field == field),
            "{text}: {err:?}"
        );
    };
    let w = |a: &str, b: &str| {
        format!(
            r#"{{"minute_id": "0003", "model": "m", "timestamp": "t", "weights": [{{"proposal_id": "003", "weight": {a}}}, {{"proposal_id": "004", "weight": {b}}}]}}"#
        )
    };
    check(
        &w("0", "5"),
        ProblemCode::WeightOutOfRange,
        "weights[0].weight",
    );
    check(
        &w("5", "2.5"),
        ProblemCode::WeightOutOfRange,
        "weights[1].weight",
    );
    check(
        &w("-1", "5"),
        ProblemCode::WeightOutOfRange,
        "weights[0].weight",
    );
    check(
        &w("\"5\"", "5"),
        ProblemCode::WrongType,
        "weights[0].weight",
    );
    check("[]", ProblemCode::WrongType, "");
    check("not json", ProblemCode::InvalidJson, "");
    check(
        r#"{"minute_id": "0003", "model": "m", "weights": []}"#,
        ProblemCode::MissingField,
        "timestamp",
    );
    check(
        r#"{"minute_id": "0003", "model": "m", "timestamp": "t", "weights": [{"proposal_id": "003", "weight": 5}, {"proposal_id": "004", "weight": 5}, {"proposal_id": "099", "weight": 5}]}"#,
        ProblemCode::UnknownProposal,
        "weights[2].proposal_id",
    );
    check(
        r#"{"minute_id": "0003", "model": "m", "timestamp": "t", "weights": [{"proposal_id": 3, "weight": 5}]}"#,
        ProblemCode::WrongType,
        "weights[0].proposal_id",
    );
    check(
        r#"{"minute_id": 3, "model": "m", "timestamp": "t", "weights": []}"#,
        ProblemCode::WrongType,
        "minute_id",
    );
    let ok = parse_ballot("v", w("10", "1").as_bytes(), "0003", &ids).unwrap();
    assert_eq!(
        ok.weights.iter().map(|w| w.weight).collect::<Vec<_>>(),
        [10, 1]
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_or_oversized_ballot_is_refused_not_read() {
    let root = copy();
    let votes = root.join("minutes/0001/votes");
    std::os::unix::fs::symlink("/etc/hostname", votes.join("eve.json")).unwrap();
    std::fs::write(
        votes.join("big.json"),
        vec![b' '; (super::limits::MAX_BALLOT_BYTES + 1) as usize],
    )
    .unwrap();
    let t = tally_of(&root, "0001");
    assert_eq!(
        codes(&t),
        vec![
            ("votes/big.json".to_owned(), ProblemCode::TooLarge),
            ("votes/eve.json".to_owned(), ProblemCode::NotAFile)
        ]
    );
    assert_eq!(t.ballots_counted, 10);
}

#[test]
fn configured_paths_cannot_leave_the_repository_and_ids_cannot_be_paths() {
    let root = copy();
    std::fs::write(
        root.join("governance.json"),
        r#"{"paths": {"minutes": "../elsewhere"}}"#,
    )
    .unwrap();
    let e = Repo::open(&root).unwrap_err();
    assert_eq!(e.code(), "invalid_file");
    assert!(e.to_string().contains("paths.minutes"), "{e}");
    let repo = repo_at(&fixture());
    assert_eq!(
        repo.minute_dir("../0001").unwrap_err().code(),
        "invalid_argument"
    );
    assert!(bip::parse_bip("1/../../x").is_err());
    assert!(bip::parse_bip("BIP-43").is_ok_and(|n| n == 43));
    let e = kinds::run_builtin(&repo, "tally_votes", &json!({"minute": "../../etc"})).unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
}

#[test]
fn proposals_are_read_in_every_state_and_bad_files_are_reported() {
    let (all, problems) = list_proposals(&repo_at(&fixture())).unwrap();
    let count = |s: ProposalState| all.iter().filter(|p| p.state == s).count();
    // pending: 002 (the copy), 003, 004, 005, 006, 008; one in each other state.
    assert_eq!(count(ProposalState::Pending), 6);
    for s in [
        ProposalState::Approved,
        ProposalState::Rejected,
        ProposalState::InImplementation,
        ProposalState::Implemented,
    ] {
        assert_eq!(count(s), 1, "{s:?}");
    }
    let p = all.iter().find(|p| p.id == "001").unwrap();
    assert_eq!(
        (p.title().as_str(), p.get("author")),
        ("A durable task queue", Some("grace"))
    );
    let got: Vec<(String, ProblemCode)> =
        problems.iter().map(|p| (p.file.clone(), p.code)).collect();
    assert!(
        got.contains(&("proposals/pending/notes.md".into(), ProblemCode::BadHeader)),
        "{got:?}"
    );
    assert!(
        got.contains(&(
            "proposals/rejected/002-global-lock.md".into(),
            ProblemCode::DuplicateProposal
        )),
        "{got:?}"
    );
}

#[test]
fn start_bip_creates_the_skeleton_once_from_the_repository_template() {
    let root = copy();
    let repo = repo_at(&root);
    let r = bip::start_bip(&repo, 44, "Streaming", "2026-12-01").unwrap();
    assert_eq!(
        r.created,
        [
            "bips/BIP-44/BIP-44.md",
            "bips/BIP-44/BIP-44-implementation-plan.md"
        ]
    );
    let doc = std::fs::read_to_string(root.join("bips/BIP-44/BIP-44.md")).unwrap();
    assert!(doc.starts_with("# BIP-44: Streaming\n"), "{doc}");
    assert!(doc.contains("- **Created**: 2026-12-01"));
    assert!(
        doc.contains("`bips/BIP-44/BIP-44-implementation-plan.md`"),
        "the repository's template: {doc}"
    );
    std::fs::write(root.join("bips/BIP-44/BIP-44.md"), "edited by a person\n").unwrap();
    let again = bip::start_bip(&repo, 44, "Other", "2026-12-02").unwrap();
    assert!(again.created.is_empty());
    assert_eq!(again.existing.len(), 2);
    assert_eq!(
        std::fs::read_to_string(root.join("bips/BIP-44/BIP-44.md")).unwrap(),
        "edited by a person\n"
    );
}

#[test]
fn create_impl_summary_only_writes_a_missing_summary() {
    let root = copy();
    let repo = repo_at(&root);
    let r = bip::create_impl_summary(&repo, 2, "2026-12-01").unwrap();
    assert_eq!(r.created, ["bips/BIP-02/IMPLEMENTATION_SUMMARY.md"]);
    let r = bip::create_impl_summary(&repo, 3, "2026-12-01").unwrap();
    assert_eq!((r.created.len(), r.existing.len()), (0, 1));
    assert_eq!(
        std::fs::read_to_string(root.join("bips/BIP-03/IMPLEMENTATION_SUMMARY.md")).unwrap(),
        "# IMPLEMENTATION_SUMMARY.md\n"
    );
    assert_eq!(
        bip::create_impl_summary(&repo, 99, "2026-12-01")
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn verify_bip_reads_the_checklist_the_files_and_the_stage() {
    let repo = repo_at(&fixture());
    let v = bip::verify_bip(&repo, 4).unwrap();
    assert_eq!((v.done, v.total, v.complete), (2, 4, false));
    assert_eq!(v.stage, Stage::InReview);
    assert_eq!(v.review_rounds, 2);
    assert_eq!(v.missing_files, ["impl/missing.rs", "../../etc/passwd"]);
    let passwd = &v.items[3].files[0];
    assert!(
        !passwd.exists && passwd.refused.is_some(),
        "never looked up outside the repository"
    );
    assert!(v.items[0].files[0].exists, "impl/queue.rs");
    let v3 = bip::verify_bip(&repo, 3).unwrap();
    assert_eq!(
        (v3.done, v3.total, v3.complete, v3.stage),
        (3, 3, true, Stage::Implemented)
    );
    let stages: Vec<Stage> = [1, 2, 5]
        .iter()
        .map(|n| bip::verify_bip(&repo, *n).unwrap().stage)
        .collect();
    assert_eq!(stages, [Stage::Draft, Stage::Planned, Stage::FinalReview]);
    assert_eq!(bip::verify_bip(&repo, 77).unwrap_err().code(), "not_found");
}

#[test]
fn tally_votes_writes_both_reports_and_a_second_run_writes_nothing() {
    let root = copy();
    let repo = repo_at(&root);
    let (t, v) = tally_votes(&repo, "0003").unwrap();
    assert_eq!(t.ballots_counted, 11);
    assert_eq!(
        v["artifacts"],
        json!(["minutes/0003/tally.json", "minutes/0003/TALLY.md"])
    );
    assert_eq!(v["written"], v["artifacts"]);
    let written: Value =
        serde_json::from_slice(&std::fs::read(root.join("minutes/0003/tally.json")).unwrap())
            .unwrap();
    assert_eq!(written["ballots_counted"], 11);
    assert_eq!(written["refused"].as_array().unwrap().len(), 7);
    let md = std::fs::read_to_string(root.join("minutes/0003/TALLY.md")).unwrap();
    assert!(
        md.contains(
            "| 1 | 003 | Streaming progress for tasks | 80/110 | 72.73 % | 60 % | approved |"
        ),
        "{md}"
    );
    let (_, again) = tally_votes(&repo, "0003").unwrap();
    assert_eq!(again["written"], json!([]));
    // The reports do not count as ballots the next time.
    assert_eq!(tally_of(&root, "0003").ballots_counted, 11);
}

#[test]
fn update_proposals_moves_by_the_tally_once_and_a_dry_run_moves_nothing() {
    let root = copy();
    let repo = repo_at(&root);
    let dry = update_proposals(&repo, "0003", true).unwrap();
    let moves: Vec<(&str, &str)> = dry
        .moves
        .iter()
        .map(|m| (m.proposal_id.as_str(), m.to.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            ("003", "proposals/approved/003-streaming-progress.md"),
            ("004", "proposals/rejected/004-auto-merge.md"),
            ("008", "proposals/rejected/008-tabs-not-spaces.md"),
        ]
    );
    assert!(
        root.join("proposals/pending/003-streaming-progress.md")
            .exists(),
        "a dry run touches nothing"
    );
    assert!(!root.join("proposals/CHANGELOG.md").exists());
    let kept: Vec<&str> = dry.kept.iter().map(|k| k.proposal_id.as_str()).collect();
    assert_eq!(kept, ["006", "005"], "held for revision, in rank order");

    let done = update_proposals(&repo, "0003", false).unwrap();
    assert_eq!(done.moves, dry.moves);
    assert!(!root
        .join("proposals/pending/003-streaming-progress.md")
        .exists());
    let moved =
        std::fs::read_to_string(root.join("proposals/approved/003-streaming-progress.md")).unwrap();
    assert!(moved.contains("- **Status**: approved"), "{moved}");
    let log = std::fs::read_to_string(root.join("proposals/CHANGELOG.md")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("- minute 0003"))
            .count(),
        3
    );
    assert!(
        log.contains("proposal 004 pending -> rejected (62.73 %, vetoed by the generals)"),
        "{log}"
    );

    let again = update_proposals(&repo, "0003", false).unwrap();
    assert!(again.moves.is_empty());
    assert_eq!(
        std::fs::read_to_string(root.join("proposals/CHANGELOG.md")).unwrap(),
        log
    );
    assert!(again
        .kept
        .iter()
        .any(|k| k.proposal_id == "003" && k.reason == "already approved"));
}

#[test]
fn bootstrap_starts_a_bip_from_an_approved_proposal_once() {
    let root = copy();
    let repo = repo_at(&root);
    let b = bip::bootstrap_bip_from_proposal(&repo, "001", None, "2026-12-01").unwrap();
    // BIP-01 .. BIP-05 exist: the next is 6.
    assert_eq!((b.docs.bip, b.reused), (6, false));
    let doc = std::fs::read_to_string(root.join("bips/BIP-06/BIP-06.md")).unwrap();
    assert!(doc.starts_with("# BIP-06: A durable task queue"), "{doc}");
    assert!(
        doc.contains("- **Proposal**: 001") && doc.contains("- **Author**: grace"),
        "{doc}"
    );
    let again = bip::bootstrap_bip_from_proposal(&repo, "001", None, "2026-12-01").unwrap();
    assert_eq!(
        (again.docs.bip, again.reused, again.docs.created.len()),
        (6, true, 0)
    );
    // 007 is in implementation and BIP-03 names it.
    let b7 = bip::bootstrap_bip_from_proposal(&repo, "007", None, "2026-12-01").unwrap();
    assert_eq!((b7.docs.bip, b7.reused), (3, true));
    assert_eq!(
        bip::bootstrap_bip_from_proposal(&repo, "003", None, "2026-12-01")
            .unwrap_err()
            .code(),
        "refused"
    );
    assert_eq!(
        bip::bootstrap_bip_from_proposal(&repo, "001", Some(2), "2026-12-01")
            .unwrap_err()
            .code(),
        "refused"
    );
}

#[test]
fn every_kind_of_the_issue_has_one_contract_and_arguments_are_checked_against_it() {
    let builtin = [
        "start_bip",
        "create_impl_summary",
        "verify_bip",
        "tally_votes",
        "update_proposals",
        "bootstrap_bip_from_proposal",
    ];
    let agent = [
        "implement_bip",
        "continue_impl",
        "review_bip",
        "revise_impl",
        "review_bip_round",
        "vote_bip",
    ];
    assert_eq!(KINDS.len(), 12);
    for k in builtin {
        assert!(kinds::contract(k).unwrap().builtin, "{k}");
    }
    for k in agent {
        assert!(!kinds::contract(k).unwrap().builtin, "{k}");
    }
    assert!(validate_args("tally_votes", &json!({"minute": "0003"})).is_ok());
    let e = validate_args("tally_votes", &json!({"minut": "0003"})).unwrap_err();
    assert_eq!(
        e.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(),
        ["minute", "minut"]
    );
    let e = validate_args("start_bip", &json!({"bip": "../x", "date": "tomorrow"})).unwrap_err();
    assert_eq!(e.len(), 2);
    assert!(
        validate_args("some_other_kind", &json!({"anything": 1})).is_ok(),
        "not ours to check"
    );
    let repo = repo_at(&fixture());
    assert_eq!(
        kinds::run_builtin(&repo, "implement_bip", &json!({"bip": 4}))
            .unwrap_err()
            .code(),
        "refused"
    );
}

#[test]
fn a_vote_bip_result_must_be_a_valid_ballot_of_its_minute_by_its_voter() {
    let repo = repo_at(&fixture());
    let args = json!({"minute": "0001", "voter": "alan"});
    let ballot = json!({"minute_id": "0001", "model": "alan", "timestamp": "t",
        "weights": [{"proposal_id": "001", "weight": 7}, {"proposal_id": "002", "weight": 2}]});
    assert!(validate_result(&repo, "vote_bip", &args, &ballot).is_ok());
    let mut missing = ballot.clone();
    missing["weights"].as_array_mut().unwrap().pop();
    let e = validate_result(&repo, "vote_bip", &args, &missing).unwrap_err();
    assert_eq!(e[0].code, ProblemCode::MissingProposal);
    let mut other = ballot.clone();
    other["model"] = json!("mallory");
    assert!(
        validate_result(&repo, "vote_bip", &args, &other).is_err(),
        "a ballot for someone else"
    );
    let review = json!({"bip": 4, "reviewer": "grace", "verdict": "maybe", "change_requests": 1, "artifacts": []});
    let e = validate_result(
        &repo,
        "review_bip",
        &json!({"bip": 4, "reviewer": "grace"}),
        &review,
    )
    .unwrap_err();
    assert_eq!(e[0].field, "verdict");
}

#[test]
fn run_builtin_answers_with_the_contract_s_result_fields() {
    let root = copy();
    let repo = repo_at(&root);
    for (kind, args) in [
        ("start_bip", json!({"bip": 50, "date": "2026-12-01"})),
        (
            "create_impl_summary",
            json!({"bip": 50, "date": "2026-12-01"}),
        ),
        ("verify_bip", json!({"bip": "BIP-04"})),
        ("tally_votes", json!({"minute": "0001"})),
        (
            "update_proposals",
            json!({"minute": "0001", "dry_run": true}),
        ),
        (
            "bootstrap_bip_from_proposal",
            json!({"proposal": "001", "date": "2026-12-01"}),
        ),
    ] {
        let v = kinds::run_builtin(&repo, kind, &args).unwrap();
        let c = kinds::contract(kind).unwrap();
        for f in c.result.iter().filter(|f| f.required) {
            assert!(v.get(f.name).is_some(), "{kind} lacks {}: {v}", f.name);
        }
        assert!(
            validate_result(&repo, kind, &args, &v).is_ok(),
            "{kind}: {v}"
        );
    }
}
