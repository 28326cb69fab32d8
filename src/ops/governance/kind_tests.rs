//! Unit tests of the repository's built-in kinds and the kind contracts, on copies of
//! the fixture repository (helpers in `tests`). Expected results are written by hand
//! from the fixture's files.

use super::bip::{self, Stage};
use super::error::ProblemCode;
use super::kinds::{self, validate_args, validate_result, KINDS};
use super::proposal::{list_proposals, ProposalState};
use super::tests::{copy, fixture, repo_at, tally_of};
use super::update::{tally_votes, update_proposals};
use serde_json::{json, Value};

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
