//! Unit tests of tallies, rules, ballots and the voting chain on the fixture repository
//! (tests/fixtures/gov/repo, written by its generate.py); `kind_tests` covers the
//! built-in kinds. Expected totals are computed here by hand from the weights the
//! generator wrote, never by the code under test; tests that change files work on a
//! copy in a temporary directory.

use super::ballot::parse_ballot;
use super::bip;
use super::chain::{sha256_hex, verify_chain};
use super::error::ProblemCode;
use super::kinds;
use super::layout::Repo;
use super::rules::{decide, Applied, Decision, Rules, RulesConfig};
use super::tally::tally_minute;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub(super) fn fixture() -> PathBuf {
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
pub(super) fn copy() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hive-gov-{}", fastrand::u64(..)));
    copy_dir(&fixture(), &d);
    d
}

pub(super) fn repo_at(root: &Path) -> Repo {
    Repo::open(root).unwrap()
}

pub(super) fn tally_of(root: &Path, minute: &str) -> super::Tally {
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
    chain[2]["timestamp"] = json!("2026-11-01T09:59:00Z");
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
fn a_ballot_whose_chain_block_names_another_voter_is_refused() {
    use super::chain::{next_block, Block};
    let root = copy();
    let minute = root.join("minutes/0001");
    // A chain valid in every hash, but whose block for ada.json says mallory cast it.
    let mut blocks: Vec<Block> = Vec::new();
    for (i, voter) in ["ada", "grace"].iter().enumerate() {
        let file = format!("votes/{voter}.json");
        let bytes = std::fs::read(minute.join(&file)).unwrap();
        let model = if *voter == "ada" { "mallory" } else { voter };
        let b = next_block(blocks.last(), &format!("t{i}"), model, &file, &bytes);
        blocks.push(b);
    }
    std::fs::write(
        minute.join("voting_chain.json"),
        serde_json::to_vec(&blocks).unwrap(),
    )
    .unwrap();
    let t = tally_of(&root, "0001");
    assert_eq!(
        codes(&t),
        vec![("votes/ada.json".to_owned(), ProblemCode::VoterMismatch)]
    );
    // The eight ballots the short chain lacks still count, reported as not in the chain.
    assert_eq!(t.ballots_counted, 9);
    assert_eq!(
        t.chain
            .problems
            .iter()
            .filter(|p| p.code == ProblemCode::NotInChain)
            .count(),
        8
    );
}
