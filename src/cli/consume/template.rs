//! The agent command template: argv words with `{field}` placeholders filled from the
//! leased task.
//!
//! Invariant: a value fills part of **one argv word** and never becomes a shell
//! command line. The child is started with `execve` directly (no `sh -c`), so a
//! hostile `args.title` of `x"; rm -rf ~; "` is one argument holding those
//! characters. Two more refusals close what is left:
//!
//! - a value that would *begin* a word with `-` is refused (the agent would read it
//!   as an option: `--upload-pack=...`); write the template as `--title={args.title}`
//!   or put `--` before positional placeholders;
//! - a value with a NUL byte is refused (it cannot be an argument).
//!
//! Placeholders: `{bipId}`, `{kind}`, `{repo}`, `{branch}`, `{traceId}`, `{task}`,
//! `{attempt}`, `{lease}`, `{model}` (the consumer's current model: `--model`, or the
//! last `model` control), `{args.<name>}`; `{{` and `}}` are literal braces. An
//! unknown name is refused when the template is parsed (at start), a missing
//! `args.<name>` when the task is rendered (the attempt fails).

use serde_json::Value;

/// The task fields a template may name, besides `args.<name>`.
const FIELDS: &[&str] = &[
    "bipId", "kind", "repo", "branch", "traceId", "task", "attempt", "lease", "model",
];

/// One piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
    Arg(String),
}

/// A parsed template: each word a list of pieces.
#[derive(Debug, Clone)]
pub(super) struct Template {
    words: Vec<Vec<Piece>>,
}

/// What a template is rendered from: the lease's fields.
pub(super) struct Fields<'a> {
    /// The lease's TASK payload (`task`, `kind`, `bipId`, `repo`, `branch`, `args`...).
    pub(super) payload: &'a Value,
    /// The task's trace id (on the envelope, not in the payload).
    pub(super) trace_id: &'a str,
    /// The branch the attempt runs on (the task's, or `hive/<task>`).
    pub(super) branch: &'a str,
    /// The consumer's current model, if one was set.
    pub(super) model: Option<&'a str>,
}

impl Template {
    /// Parses `words`.
    ///
    /// # Errors
    /// A sentence naming an empty template, an unclosed `{`, a stray `}` or an
    /// unknown placeholder.
    pub(super) fn parse(words: &[String]) -> Result<Template, String> {
        if words.is_empty() {
            return Err("no agent command: give it after `--`".into());
        }
        let mut out = Vec::with_capacity(words.len());
        for w in words {
            out.push(parse_word(w)?);
        }
        if matches!(out[0].first(), Some(Piece::Field(_) | Piece::Arg(_))) {
            return Err("the program (first word) cannot be a placeholder".into());
        }
        Ok(Template { words: out })
    }

    /// Whether the template names `{model}` (then `hive consume` needs `--model`).
    pub(super) fn uses_model(&self) -> bool {
        self.words
            .iter()
            .flatten()
            .any(|p| *p == Piece::Field("model".into()))
    }

    /// Whether the template hands a placeholder to a shell's `-c` string, which would
    /// undo the one-word guarantee (warned about at start).
    pub(super) fn shell_string(&self) -> bool {
        let prog = match self.words.first().and_then(|w| w.first()) {
            Some(Piece::Text(t)) => t.rsplit('/').next().unwrap_or(t),
            _ => return false,
        };
        let shell = matches!(prog, "sh" | "bash" | "zsh" | "dash" | "ksh" | "fish");
        let c = self.words.iter().any(|w| w == &[Piece::Text("-c".into())]);
        let filled = self
            .words
            .iter()
            .skip(1)
            .any(|w| w.iter().any(|p| !matches!(p, Piece::Text(_))));
        shell && c && filled
    }

    /// The argv for one task.
    ///
    /// # Errors
    /// A sentence naming a missing `args.<name>`, or a value refused (a leading `-`,
    /// a NUL byte).
    pub(super) fn render(&self, f: &Fields<'_>) -> Result<Vec<String>, String> {
        let mut argv = Vec::with_capacity(self.words.len());
        for word in &self.words {
            let mut s = String::new();
            for (i, p) in word.iter().enumerate() {
                let (name, v) = match p {
                    Piece::Text(t) => {
                        s.push_str(t);
                        continue;
                    }
                    Piece::Field(n) => (n.clone(), field(f, n)),
                    Piece::Arg(n) => (
                        format!("args.{n}"),
                        f.payload["args"].get(n).and_then(text).ok_or_else(|| {
                            format!("the task has no `args.{n}` for the command template")
                        })?,
                    ),
                };
                if v.contains('\0') {
                    return Err(format!("`{name}` holds a NUL byte"));
                }
                if i == 0 && s.is_empty() && v.starts_with('-') {
                    return Err(format!(
                        "`{name}` would start an argument with `-` (read as an option); \
                         write the template as `--opt={{{name}}}` or put `--` before it"
                    ));
                }
                s.push_str(&v);
            }
            argv.push(s);
        }
        Ok(argv)
    }
}

/// A task field as text (`branch` is the attempt's branch).
fn field(f: &Fields<'_>, name: &str) -> String {
    match name {
        "traceId" => f.trace_id.to_owned(),
        "branch" => f.branch.to_owned(),
        "model" => f.model.unwrap_or_default().to_owned(),
        "repo" => f.payload["repo"].as_str().unwrap_or(".").to_owned(),
        other => f.payload.get(other).and_then(text).unwrap_or_default(),
    }
}

/// A JSON value as an argument: strings as they are, other scalars and objects as
/// JSON; null is missing.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_word(w: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(format!("`{w}`: a `}}` closes nothing (write `}}}}`)")),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("`{w}`: unclosed `{{` (write `{{{{`)")),
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(placeholder(&name)?);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn placeholder(name: &str) -> Result<Piece, String> {
    if let Some(arg) = name.strip_prefix("args.") {
        let ok = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        return if ok {
            Ok(Piece::Arg(arg.to_owned()))
        } else {
            Err(format!("`{{{name}}}`: an argument name is [A-Za-z0-9_-]+"))
        };
    }
    if FIELDS.contains(&name) {
        Ok(Piece::Field(name.to_owned()))
    } else {
        Err(format!(
            "unknown placeholder `{{{name}}}`; known: {}, args.<name>",
            FIELDS.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    fn render(t: &[&str], payload: &Value) -> Result<Vec<String>, String> {
        Template::parse(&words(t))?.render(&Fields {
            payload,
            trace_id: "tr-1",
            branch: "hive/t-1",
            model: Some("m-1"),
        })
    }

    #[test]
    fn placeholders_fill_parts_of_one_word_and_hostile_values_stay_one_argument() {
        let p = json!({"task": "t-1", "bipId": 43, "kind": "implement_bip",
            "args": {"title": "x\"; rm -rf ~; echo \"", "n": 3, "o": {"a": 1}}});
        let argv = render(
            &[
                "agent",
                "--bip={bipId}",
                "{kind}",
                "--title",
                "{args.title}",
                "{args.n}",
                "{args.o}",
                "{traceId}:{branch}",
                "{{x}}",
            ],
            &p,
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "agent",
                "--bip=43",
                "implement_bip",
                "--title",
                "x\"; rm -rf ~; echo \"",
                "3",
                "{\"a\":1}",
                "tr-1:hive/t-1",
                "{x}"
            ]
        );
    }

    #[test]
    fn option_like_values_missing_args_and_unknown_names_are_refused() {
        let p = json!({"args": {"t": "--upload-pack=evil"}});
        assert!(render(&["git", "{args.t}"], &p)
            .unwrap_err()
            .contains("option"));
        // Inside a word, after text, it is only a value.
        assert_eq!(
            render(&["git", "--x={args.t}"], &p).unwrap()[1],
            "--x=--upload-pack=evil"
        );
        assert!(render(&["a", "{args.nope}"], &p)
            .unwrap_err()
            .contains("args.nope"));
        assert!(Template::parse(&words(&["a", "{nope}"])).is_err());
        assert!(Template::parse(&words(&["a", "{kind"])).is_err());
        assert!(Template::parse(&words(&["a", "}"])).is_err());
        assert!(Template::parse(&words(&["{kind}"])).is_err());
        assert!(Template::parse(&[]).is_err());
        let nul = json!({"args": {"t": "a\u{0}b"}});
        assert!(render(&["a", "{args.t}"], &nul).is_err());
    }

    #[test]
    fn a_placeholder_in_a_shell_string_is_noticed() {
        let t = Template::parse(&words(&["bash", "-c", "echo {args.x}"])).unwrap();
        assert!(t.shell_string());
        let t = Template::parse(&words(&["bash", "agent.sh", "{args.x}"])).unwrap();
        assert!(!t.shell_string());
    }
}
