//! Every TASK kind of BIP-43's governance, in one table ([`KINDS`]): its arguments with
//! their types, the artifacts its result must name, and its result's fields. The same
//! table validates a task's arguments before it is sent ([`validate_args`]), a result
//! when it arrives ([`validate_result`]; a `vote_bip` result must be a valid ballot of
//! its minute), prints `hive gov kinds`, and runs the built-in kinds ([`run_builtin`]).
//!
//! Built-in kinds are deterministic functions over a repository (this module's
//! siblings); agent kinds are only contracts: an agent consumer does the work and its
//! result is checked against the contract.

use super::ballot::validate_ballot;
use super::bip::{
    bootstrap_bip_from_proposal, create_impl_summary, parse_bip, start_bip, verify_bip,
};
use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{self, utc_today};
use super::layout::Repo;
use super::minute::load_minute;
use super::update::{tally_votes, update_proposals};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The type of an argument or result field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ty {
    /// A BIP number: an integer, or a string `43` / `BIP-43`.
    Bip,
    /// A numeric id as a string (`"003"`, `"0003"`).
    Id,
    /// Any string.
    Str,
    /// A `YYYY-MM-DD` date.
    Date,
    /// A non-negative integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// An array.
    Array,
    /// An object.
    Object,
    /// One of the field's listed values.
    Enum,
}

/// One argument or result field.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: Ty,
    /// Whether it must be present.
    pub required: bool,
    /// For [`Ty::Enum`], the values.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub values: &'static [&'static str],
    /// What it is.
    pub help: &'static str,
}

const fn req(name: &'static str, ty: Ty, help: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        values: &[],
        help,
    }
}

const fn opt(name: &'static str, ty: Ty, help: &'static str) -> Field {
    Field {
        name,
        ty,
        required: false,
        values: &[],
        help,
    }
}

/// A kind's contract.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KindContract {
    /// The kind (`tally_votes`).
    pub kind: &'static str,
    /// Run by the built-in governance consumer (else by an agent).
    pub builtin: bool,
    /// What it does.
    pub summary: &'static str,
    /// Its arguments.
    pub args: &'static [Field],
    /// The artifacts its result must name (in `artifacts`), relative to the repository;
    /// `NN` is the BIP, `NNNN` the minute, `<voter>` the voter.
    pub artifacts: &'static [&'static str],
    /// Its result's fields.
    pub result: &'static [Field],
}

const VERDICTS: &[&str] = &["approve", "request_changes", "reject"];
const BIP: Field = req("bip", Ty::Bip, "the BIP number");
const DATE: Field = opt(
    "date",
    Ty::Date,
    "date written into new documents (default: today, UTC)",
);
const MINUTE: Field = req("minute", Ty::Id, "the minute id (`0003`)");
const ARTIFACTS: Field = req(
    "artifacts",
    Ty::Array,
    "the files written, relative to the repository",
);
const BRANCH: Field = req("branch", Ty::Str, "the git branch holding the work");
const COMMITS: Field = req("commits", Ty::Array, "the commits made (hashes)");
const VERDICT: Field = Field {
    name: "verdict",
    ty: Ty::Enum,
    required: true,
    values: VERDICTS,
    help: "the reviewer's verdict",
};

/// Every governance kind: six built in, six for agents.
pub const KINDS: &[KindContract] = &[
    KindContract {
        kind: "start_bip",
        builtin: true,
        summary: "create a BIP's skeleton (BIP-NN.md, implementation plan) from the templates; existing files are left alone",
        args: &[BIP, opt("title", Ty::Str, "the BIP's title"), DATE],
        artifacts: &["bips/BIP-NN/BIP-NN.md", "bips/BIP-NN/BIP-NN-implementation-plan.md"],
        result: &[req("bip", Ty::Int, "the BIP"), req("dir", Ty::Str, "its directory"), req("created", Ty::Array, "files created by this run"), req("existing", Ty::Array, "files left alone"), ARTIFACTS],
    },
    KindContract {
        kind: "create_impl_summary",
        builtin: true,
        summary: "create IMPLEMENTATION_SUMMARY.md from its template, only if it is missing",
        args: &[BIP, DATE],
        artifacts: &["bips/BIP-NN/IMPLEMENTATION_SUMMARY.md"],
        result: &[req("bip", Ty::Int, "the BIP"), req("created", Ty::Array, "files created by this run"), req("existing", Ty::Array, "files left alone"), ARTIFACTS],
    },
    KindContract {
        kind: "verify_bip",
        builtin: true,
        summary: "read the BIP's checklist: items done and not done, and whether the files they reference exist",
        args: &[BIP],
        artifacts: &[],
        result: &[req("bip", Ty::Int, "the BIP"), req("stage", Ty::Str, "draft, planned, implemented, in_review, final_review"), req("items", Ty::Array, "each item: line, text, done, files"), req("done", Ty::Int, "items ticked"), req("total", Ty::Int, "items"), req("missing_files", Ty::Array, "referenced files that do not exist"), req("complete", Ty::Bool, "all ticked and all files there")],
    },
    KindContract {
        kind: "tally_votes",
        builtin: true,
        summary: "tally a minute (totals, percentages, ranking, veto, chain, decisions) and write tally.json and TALLY.md into it",
        args: &[MINUTE],
        artifacts: &["minutes/NNNN/tally.json", "minutes/NNNN/TALLY.md"],
        result: &[req("minute", Ty::Str, "the minute"), req("ballots_counted", Ty::Int, "ballots counted"), req("refused", Ty::Array, "[{file, field, code, reason}]"), req("proposals", Ty::Array, "[{proposal_id, total, percent, decision, vetoed, ...}] by rank"), req("chain", Ty::Object, "the chain's verification"), ARTIFACTS],
    },
    KindContract {
        kind: "update_proposals",
        builtin: true,
        summary: "move a minute's pending proposals to approved/ or rejected/ by its tally, with a change log; dry_run only shows the moves",
        args: &[MINUTE, opt("dry_run", Ty::Bool, "show the moves, change nothing (default false)")],
        artifacts: &["proposals/CHANGELOG.md"],
        result: &[req("minute", Ty::Str, "the minute"), req("dry_run", Ty::Bool, "whether nothing changed"), req("moves", Ty::Array, "[{proposal_id, decision, from, to}]"), req("kept", Ty::Array, "[{proposal_id, reason}]"), ARTIFACTS],
    },
    KindContract {
        kind: "bootstrap_bip_from_proposal",
        builtin: true,
        summary: "create the BIP documents of an approved proposal (the BIP that already names it, else the next number)",
        args: &[req("proposal", Ty::Id, "the proposal id (`001`)"), opt("bip", Ty::Bip, "the BIP number (default: the next free one)"), DATE],
        artifacts: &["bips/BIP-NN/BIP-NN.md", "bips/BIP-NN/BIP-NN-implementation-plan.md"],
        result: &[req("proposal_id", Ty::Str, "the proposal"), req("bip", Ty::Int, "its BIP"), req("reused", Ty::Bool, "whether the BIP existed"), req("created", Ty::Array, "files created by this run"), ARTIFACTS],
    },
    KindContract {
        kind: "implement_bip",
        builtin: false,
        summary: "an agent implements the BIP from its plan on a new branch and writes the implementation summary",
        args: &[BIP, opt("plan", Ty::Str, "the plan file (default: bips/BIP-NN/BIP-NN-implementation-plan.md)")],
        artifacts: &["bips/BIP-NN/IMPLEMENTATION_SUMMARY.md"],
        result: &[req("bip", Ty::Int, "the BIP"), BRANCH, COMMITS, ARTIFACTS],
    },
    KindContract {
        kind: "continue_impl",
        builtin: false,
        summary: "an agent continues an unfinished implementation on its branch",
        args: &[BIP, req("branch", Ty::Str, "the implementation branch"), opt("note", Ty::Str, "what is left")],
        artifacts: &["bips/BIP-NN/IMPLEMENTATION_SUMMARY.md"],
        result: &[req("bip", Ty::Int, "the BIP"), BRANCH, COMMITS, ARTIFACTS],
    },
    KindContract {
        kind: "review_bip",
        builtin: false,
        summary: "an agent reviews the implementation and writes a review report",
        args: &[BIP, req("reviewer", Ty::Str, "the reviewer's identity (a general not used before on this BIP)")],
        artifacts: &["bips/BIP-NN/REVIEW_REPORT*.md"],
        result: &[req("bip", Ty::Int, "the BIP"), req("reviewer", Ty::Str, "who reviewed"), VERDICT, req("change_requests", Ty::Int, "how many changes it asks"), ARTIFACTS],
    },
    KindContract {
        kind: "revise_impl",
        builtin: false,
        summary: "an agent addresses a review's change requests on the implementation branch",
        args: &[BIP, req("review", Ty::Str, "the review report to address"), req("branch", Ty::Str, "the implementation branch")],
        artifacts: &["bips/BIP-NN/IMPLEMENTATION_SUMMARY.md"],
        result: &[req("bip", Ty::Int, "the BIP"), BRANCH, COMMITS, req("addressed", Ty::Int, "change requests addressed"), ARTIFACTS],
    },
    KindContract {
        kind: "review_bip_round",
        builtin: false,
        summary: "one review round (round N writes REVIEW_REPORT_N.md; the final one FINAL_REVIEW_REPORT.md)",
        args: &[BIP, req("round", Ty::Int, "the round, from 1"), req("reviewer", Ty::Str, "the reviewer's identity"), opt("final", Ty::Bool, "whether this is the final review")],
        artifacts: &["bips/BIP-NN/REVIEW_REPORT_N.md or FINAL_REVIEW_REPORT.md"],
        result: &[req("bip", Ty::Int, "the BIP"), req("round", Ty::Int, "the round"), req("reviewer", Ty::Str, "who reviewed"), VERDICT, req("change_requests", Ty::Int, "how many changes it asks"), ARTIFACTS],
    },
    KindContract {
        kind: "vote_bip",
        builtin: false,
        summary: "an agent votes in a minute; its result is the ballot, validated against the minute before it is written",
        args: &[MINUTE, req("voter", Ty::Str, "the voter (the ballot's model)")],
        artifacts: &["minutes/NNNN/votes/<voter>.json"],
        result: &[req("minute_id", Ty::Str, "the minute"), req("model", Ty::Str, "the voter"), req("timestamp", Ty::Str, "when"), req("weights", Ty::Array, "[{proposal_id, weight 1..10, veto?}] for every proposal")],
    },
];

/// The contract of `kind`.
pub fn contract(kind: &str) -> Option<&'static KindContract> {
    KINDS.iter().find(|k| k.kind == kind)
}

fn check_type(field: &Field, v: &Value) -> Result<(), String> {
    let ok = match field.ty {
        Ty::Bip => match v {
            Value::Number(n) => n.as_u64().is_some_and(|n| n <= 9_999),
            Value::String(s) => parse_bip(s).is_ok(),
            _ => false,
        },
        Ty::Id => v
            .as_str()
            .is_some_and(|s| fsio::check_numeric_id(field.name, s, 6).is_ok()),
        Ty::Str => v.is_string(),
        Ty::Date => v.as_str().is_some_and(|s| fsio::check_date(s).is_ok()),
        Ty::Int => v.as_u64().is_some(),
        Ty::Bool => v.is_boolean(),
        Ty::Array => v.is_array(),
        Ty::Object => v.is_object(),
        Ty::Enum => v.as_str().is_some_and(|s| field.values.contains(&s)),
    };
    if ok {
        Ok(())
    } else if field.ty == Ty::Enum {
        Err(format!("must be one of {}", field.values.join(", ")))
    } else {
        Err(format!("must be {}", ty_name(field.ty)))
    }
}

/// How a type reads in messages.
pub fn ty_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Bip => "a BIP number (43 or \"BIP-43\")",
        Ty::Id => "an id of digits as a string (\"003\")",
        Ty::Str => "a string",
        Ty::Date => "a date YYYY-MM-DD",
        Ty::Int => "a non-negative integer",
        Ty::Bool => "true or false",
        Ty::Array => "an array",
        Ty::Object => "an object",
        Ty::Enum => "one of the listed values",
    }
}

fn check_fields(what: &str, fields: &[Field], v: &Value, strict: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(o) = v.as_object() else {
        return vec![Problem::new(
            what,
            "",
            ProblemCode::WrongType,
            "must be a JSON object",
        )];
    };
    for f in fields {
        match o.get(f.name) {
            None | Some(Value::Null) if f.required => problems.push(Problem::new(
                what,
                f.name,
                ProblemCode::MissingField,
                format!("`{}` is required: {}", f.name, f.help),
            )),
            None | Some(Value::Null) => {}
            Some(x) => {
                if let Err(e) = check_type(f, x) {
                    problems.push(Problem::new(
                        what,
                        f.name,
                        ProblemCode::WrongType,
                        format!("`{}` {e}", f.name),
                    ));
                }
            }
        }
    }
    if strict {
        for k in o.keys() {
            if !fields.iter().any(|f| f.name == k) {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                problems.push(Problem::new(
                    what,
                    k.as_str(),
                    ProblemCode::WrongType,
                    format!(
                        "unknown argument `{k}`; this kind takes {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    problems
}

/// Checks a task's arguments against its kind's contract (unknown arguments are
/// refused: a misspelt one would otherwise be silently ignored). Kinds outside this
/// table are not governance kinds and pass unchecked.
///
/// # Errors
/// Every problem, each naming its argument.
pub fn validate_args(kind: &str, args: &Value) -> Result<(), Vec<Problem>> {
    let Some(c) = contract(kind) else {
        return Ok(());
    };
    let problems = check_fields("args", c.args, args, true);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks a result against its kind's contract: the fields, and for `vote_bip` the
/// ballot itself against the minute named in `args` (of `repo`). Extra result fields
/// are allowed (agents report more than the contract asks).
///
/// # Errors
/// Every problem.
pub fn validate_result(
    repo: &Repo,
    kind: &str,
    args: &Value,
    result: &Value,
) -> Result<(), Vec<Problem>> {
    let Some(c) = contract(kind) else {
        return Ok(());
    };
    let mut problems = check_fields("result", c.result, result, false);
    if kind == "vote_bip" && problems.is_empty() {
        let minute = args
            .get("minute")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let dir = repo.minute_dir(minute).map_err(|e| {
            vec![Problem::new(
                "args",
                "minute",
                ProblemCode::WrongType,
                e.to_string(),
            )]
        })?;
        let m = load_minute(&dir, &repo.rules).map_err(|e| {
            vec![Problem::new(
                "args",
                "minute",
                ProblemCode::MissingField,
                e.to_string(),
            )]
        })?;
        if let Err(p) = validate_ballot("result", result, &m.id, &m.proposal_ids()) {
            problems.extend(p);
        }
        let voter = args.get("voter").and_then(Value::as_str);
        if voter.is_some() && result.get("model").and_then(Value::as_str) != voter {
            problems.push(Problem::new(
                "result",
                "model",
                ProblemCode::WrongType,
                "the ballot's model is not the task's voter",
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn bip_arg(args: &Value, name: &str) -> Result<Option<u32>, GovError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n <= 9_999)
            .map(|n| Some(n as u32))
            .ok_or_else(|| GovError::arg(name, "a BIP number 0..=9999")),
        Some(Value::String(s)) => parse_bip(s).map(Some),
        Some(_) => Err(GovError::arg(name, "a BIP number")),
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn with_artifacts(mut v: Value, artifacts: Vec<String>) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("artifacts".into(), artifacts.into());
    }
    v
}

/// Runs built-in kind `kind` with `args` over `repo`, returning its result (the
/// contract's fields). Arguments are validated first.
///
/// # Errors
/// `invalid_argument` for bad arguments (all problems in the message); `refused` for
/// an agent kind or an unknown kind; the kind's own errors.
pub fn run_builtin(repo: &Repo, kind: &str, args: &Value) -> Result<Value, GovError> {
    let c = contract(kind).ok_or_else(|| {
        GovError::Refused(format!(
            "{kind:?} is not a governance kind; `hive gov kinds` lists them"
        ))
    })?;
    if !c.builtin {
        return Err(GovError::Refused(format!(
            "{kind} is an agent kind: an agent consumer runs it, not the built-in one"
        )));
    }
    if let Err(problems) = validate_args(kind, args) {
        let first = &problems[0];
        let all: Vec<String> = problems.iter().map(|p| p.reason.clone()).collect();
        return Err(GovError::arg(first.field.clone(), all.join("; ")));
    }
    let date = str_arg(args, "date").map_or_else(utc_today, str::to_owned);
    let bip = bip_arg(args, "bip")?;
    let need_bip = || bip.ok_or_else(|| GovError::arg("bip", "required"));
    let ser = |v: &dyn erased::Ser| v.value();
    Ok(match kind {
        "start_bip" => {
            let r = start_bip(
                repo,
                need_bip()?,
                str_arg(args, "title").unwrap_or(""),
                &date,
            )?;
            let arts = r.created.iter().chain(&r.existing).cloned().collect();
            with_artifacts(ser(&r), arts)
        }
        "create_impl_summary" => {
            let r = create_impl_summary(repo, need_bip()?, &date)?;
            let arts = r.created.iter().chain(&r.existing).cloned().collect();
            with_artifacts(ser(&r), arts)
        }
        "verify_bip" => ser(&verify_bip(repo, need_bip()?)?),
        "tally_votes" => tally_votes(repo, str_arg(args, "minute").unwrap_or_default())?.1,
        "update_proposals" => {
            let dry = args
                .get("dry_run")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let r = update_proposals(repo, str_arg(args, "minute").unwrap_or_default(), dry)?;
            let arts = r.log.iter().cloned().collect();
            with_artifacts(ser(&r), arts)
        }
        "bootstrap_bip_from_proposal" => {
            let r = bootstrap_bip_from_proposal(
                repo,
                str_arg(args, "proposal").unwrap_or_default(),
                bip,
                &date,
            )?;
            let arts = r
                .docs
                .created
                .iter()
                .chain(&r.docs.existing)
                .cloned()
                .collect();
            with_artifacts(ser(&r), arts)
        }
        other => {
            return Err(GovError::Refused(format!(
                "{other} has no built-in handler"
            )))
        }
    })
}

/// Serializing the results of different types through one closure.
mod erased {
    use serde_json::Value;

    /// Anything serializable, as a JSON value.
    pub(super) trait Ser {
        fn value(&self) -> Value;
    }

    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> Value {
            serde_json::to_value(self).unwrap_or(Value::Null)
        }
    }
}

/// The table as JSON (`hive gov kinds --json`, and what `op.gov.kinds` would publish).
pub fn kinds_json() -> Value {
    json!({ "kinds": KINDS })
}

/// An example argument object of `kind` (for `--help` and the docs).
pub fn example_args(kind: &str) -> Value {
    let mut m = Map::new();
    if let Some(c) = contract(kind) {
        for f in c.args.iter().filter(|f| f.required) {
            let v = match (f.name, f.ty) {
                ("minute", _) => json!("0003"),
                ("proposal", _) => json!("001"),
                (_, Ty::Bip) => json!(43),
                (_, Ty::Int) => json!(1),
                (_, Ty::Bool) => json!(false),
                (_, Ty::Date) => json!("2026-12-01"),
                ("branch", _) => json!("bip/43/impl/20261201T120000Z"),
                ("review", _) => json!("bips/BIP-43/REVIEW_REPORT.md"),
                (n, _) => json!(format!("<{n}>")),
            };
            m.insert(f.name.into(), v);
        }
    }
    Value::Object(m)
}
