//! The tally as a Markdown report (`TALLY.md` in the minute), for people reading the
//! repository. Deterministic: the same tally gives the same bytes, so writing it again
//! changes nothing.

use super::tally::Tally;
use std::fmt::Write;

/// Escapes a table cell: a `|` or a newline from a title or a reason would break the
/// table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Renders `t` as Markdown.
pub fn to_markdown(t: &Tally) -> String {
    let mut s = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(s, "# Tally of minute {}\n", cell(&t.minute));
    let _ = writeln!(
        s,
        "Ballots counted: {}. Refused: {}. Ignored: {}.\n",
        t.ballots_counted,
        t.refused.len(),
        t.ignored.len()
    );
    s.push_str("| Rank | Proposal | Title | Total | Percent | Threshold | Decision | Veto |\n");
    s.push_str("|---:|---|---|---:|---:|---:|---|---|\n");
    for p in &t.proposals {
        let veto = match &p.veto {
            Some(v) if p.vetoed => format!("vetoed by {}", cell(&v.by.join(", "))),
            Some(v) => format!("{}/{} generals", v.by.len(), v.generals),
            None => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}/{} | {:.2} % | {} % | {} | {} |",
            p.rank,
            cell(&p.proposal_id),
            cell(&p.title),
            p.total,
            p.max,
            p.percent,
            p.threshold.approve,
            p.decision.as_str(),
            veto
        );
    }
    if !t.refused.is_empty() {
        s.push_str("\n## Refused ballots\n\n| File | Field | Reason |\n|---|---|---|\n");
        for r in &t.refused {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&r.file),
                cell(&r.field),
                cell(&r.reason)
            );
        }
    }
    if !t.ignored.is_empty() {
        s.push_str("\n## Ignored files\n\n");
        for i in &t.ignored {
            let _ = writeln!(s, "- {}: {}", cell(&i.file), cell(&i.reason));
        }
    }
    s.push_str("\n## Voting chain\n\n");
    if !t.chain.present {
        s.push_str("No voting chain.\n");
    } else if t.chain.valid {
        let _ = writeln!(s, "Valid: {} blocks, every hash verified.", t.chain.blocks);
    } else {
        let _ = writeln!(s, "INVALID ({} blocks):\n", t.chain.blocks);
        for p in &t.chain.problems {
            let _ = writeln!(
                s,
                "- {} {}: {}",
                cell(&p.file),
                cell(&p.field),
                cell(&p.reason)
            );
        }
    }
    s
}
