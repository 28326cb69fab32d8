//! A shell command line as the approval policy sees it: a flat list of simple
//! commands ([`SimpleCommand`]), each a list of words with quotes removed.
//!
//! The split follows POSIX shell syntax closely enough to find every command a line
//! runs: `&&`, `||`, `;`, `|`, `|&`, `&` and newlines separate commands; subshells
//! `( ... )`, command substitutions `$( ... )` and backticks, and process
//! substitutions `<( ... )` contribute their inner commands as parts of their own.
//! Quotes (single, double, `$'...'`) and backslash escapes are honoured, so
//! `echo "a && b"` is one command. Wrappers that run another command (`env`, `sudo`,
//! `nohup`, `time`, `xargs`, ...) and leading `NAME=value` assignments are peeled off
//! so that the words start with the program that really runs; `sh -c '<inner>'`,
//! `bash -c` and `eval` have their string split again.
//!
//! Invariants:
//! - **It never panics and never guesses in the permissive direction.** Whatever it
//!   cannot follow (unbalanced quotes or parentheses, here-documents, `(` after a word,
//!   a wrapper option it does not know, nesting deeper than [`MAX_DEPTH`], more than
//!   [`MAX_INPUT`] bytes or [`MAX_PARTS`] commands) is a [`ParseError`], which the
//!   policy turns into `ask`. A wrapper it cannot see through stays the program (so
//!   `sudo -Z rm` is judged as `sudo`, which no ordinary rule allows).
//! - **Work is bounded**: every nested string is a piece of the input, and nesting is
//!   bounded, so a line costs at most [`MAX_DEPTH`] passes over [`MAX_INPUT`] bytes.
//! - Expansions are not performed: `$HOME`, `${x}`, `$(...)` and globs stay as
//!   written in the word, marked as expanding (see [`SimpleCommand::words`]).
//!
//! # Layout
//! - `lexer`: one pass over the bytes: words, operators, nested strings.
//! - `word`: a word as read (quoting, expansions) and as the peeler sees it.
//! - `wrappers`: `sudo`, `env`, `xargs`, `sh -c` and friends peeled off.

mod lexer;
mod word;
pub(super) mod wrappers;

#[cfg(test)]
mod tests;

use lexer::Lexer;
use thiserror::Error;

/// The longest command line split, in bytes.
pub const MAX_INPUT: usize = 64 * 1024;
/// The most simple commands one line may hold, nested ones included.
pub const MAX_PARTS: usize = 256;
/// The deepest nesting of subshells, substitutions and `sh -c` strings.
pub const MAX_DEPTH: usize = 8;

/// Why a command line could not be split. The policy treats every one as `ask`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is over [`MAX_INPUT`] bytes.
    #[error("the command is {len} bytes, over the bound of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// More than [`MAX_PARTS`] simple commands.
    #[error("the command holds more than {max} simple commands")]
    TooManyParts {
        /// The bound.
        max: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("subshells, substitutions or `sh -c` nested deeper than {max}")]
    TooDeep {
        /// The bound.
        max: usize,
    },
    /// A quote (or backtick) never closed.
    #[error("the {quote} opened at byte {at} is never closed")]
    UnbalancedQuote {
        /// The quote character.
        quote: char,
        /// Its byte offset (in the innermost string being split).
        at: usize,
    },
    /// A `(` never closed.
    #[error("the `(` at byte {at} is never closed")]
    UnclosedParen {
        /// Its byte offset.
        at: usize,
    },
    /// A `)` that closes nothing.
    #[error("the `)` at byte {at} closes nothing")]
    StrayParen {
        /// Its byte offset.
        at: usize,
    },
    /// Syntax this splitter does not follow.
    #[error("{what} (byte {at}) is not followed by the approval splitter")]
    Unsupported {
        /// What it is.
        what: &'static str,
        /// Its byte offset.
        at: usize,
    },
}

impl ParseError {
    /// A stable code for the error, for JSON output and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::TooLong { .. } => "too_long",
            ParseError::TooManyParts { .. } => "too_many_parts",
            ParseError::TooDeep { .. } => "too_deep",
            ParseError::UnbalancedQuote { .. } => "unbalanced_quote",
            ParseError::UnclosedParen { .. } => "unclosed_paren",
            ParseError::StrayParen { .. } => "stray_paren",
            ParseError::Unsupported { .. } => "unsupported",
        }
    }
}

/// One redirection of a simple command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The operator: `>`, `>>`, `>|`, `&>`, `&>>`, `<`, `<>`, `<<<`, `>&`, `<&`.
    pub op: &'static str,
    /// The target word, quotes removed.
    pub target: String,
    /// Whether the target is known only at run time (`> $LOG`, `> out-*.txt`).
    pub runtime: bool,
}

impl Redirect {
    /// Whether it opens its target for writing (a file, not a descriptor or
    /// `/dev/null`).
    pub fn writes(&self) -> bool {
        matches!(self.op, ">" | ">>" | ">|" | "&>" | "&>>" | "<>" | ">&")
            && !self.is_descriptor()
            && !matches!(
                self.target.as_str(),
                "/dev/null" | "/dev/stdout" | "/dev/stderr"
            )
    }

    /// Whether it opens its target for reading (a file, not a descriptor).
    pub fn reads(&self) -> bool {
        matches!(self.op, "<" | "<>" | "<&") && !self.is_descriptor()
    }

    fn is_descriptor(&self) -> bool {
        matches!(self.op, ">&" | "<&")
            && (self.target == "-" || self.target.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// One simple command of a line: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleCommand {
    /// The words, quotes removed, wrappers and assignments peeled off: `words[0]` is
    /// the program. Expansions stay as written (`$HOME`, `$(date)`), so a word naming
    /// one is never equal to what it would expand to. Empty for a bare redirection
    /// (`> file`).
    pub words: Vec<String>,
    /// For each word, whether its value is only known when the shell runs it: it
    /// holds a parameter or substitution (`$x`, `${x}`, `$(...)`), or an unquoted
    /// glob or brace character (`*`, `?`, `[`, `{`).
    pub runtime: Vec<bool>,
    /// Leading `NAME=value` assignments, in order (also those after `env`).
    pub assignments: Vec<String>,
    /// The wrappers peeled off, outermost first (`sudo`, `env`, `xargs`, `sh -c`, ...).
    pub wrappers: Vec<String>,
    /// Its redirections, in order.
    pub redirects: Vec<Redirect>,
    /// Whether its standard input is the previous command's output (`a | b`).
    pub after_pipe: bool,
    /// Indices (into the same list) of the commands run by substitutions in its words
    /// or redirections: `sh -c "$(curl x)"` has the `curl x` part here.
    pub substitutions: Vec<usize>,
}

impl SimpleCommand {
    /// The program's name without its directory (`/usr/bin/rm` -> `rm`), or "".
    pub fn program(&self) -> &str {
        self.words.first().map_or("", |w| basename(w))
    }

    /// The command as one line, words re-quoted where needed, for display.
    pub fn display(&self) -> String {
        let mut out: Vec<String> = self.wrappers.iter().map(|w| format!("{w}:")).collect();
        // A substitution is shown as written: quoted, it would read as a literal.
        out.extend(self.words.iter().map(|w| {
            if w.contains("$(") || w.contains('`') || w.starts_with("<(") {
                w.clone()
            } else {
                quote(w)
            }
        }));
        out.extend(
            self.redirects
                .iter()
                .map(|r| format!("{}{}", r.op, quote(&r.target))),
        );
        out.join(" ")
    }
}

/// The last `/`-separated segment of `word`.
pub(crate) fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// `w` single-quoted when it holds anything a shell would read specially.
pub(crate) fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^*?~[]".contains(&b) || b >= 0x80);
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Splits `line` into the simple commands it runs, nested ones included.
///
/// # Errors
/// A [`ParseError`] for anything not followed (see the module docs).
///
/// # Examples
/// ```
/// use hivebus::ops::approval::shell::split;
/// let parts = split("FOO=1 sudo npm test && echo \"a | b\" | tee $(date)").unwrap();
/// let words: Vec<_> = parts.iter().map(|p| p.words.join(" ")).collect();
/// assert_eq!(words, ["npm test", "echo a | b", "date", "tee $(date)"]);
/// ```
pub fn split(line: &str) -> Result<Vec<SimpleCommand>, ParseError> {
    if line.len() > MAX_INPUT {
        return Err(ParseError::TooLong {
            len: line.len(),
            max: MAX_INPUT,
        });
    }
    let mut out = Vec::new();
    Lexer::new(line.as_bytes()).list(&mut out, 0, None, false)?;
    Ok(out)
}

/// Splits `inner` (the string of `sh -c` or `eval`) one level deeper, as if it stood
/// where `template` (its wrappers, assignments, redirections) stands.
pub(super) fn split_inner(
    out: &mut Vec<SimpleCommand>,
    depth: usize,
    inner: &[u8],
    template: &SimpleCommand,
) -> Result<(), ParseError> {
    let start = out.len();
    Lexer::new(inner).list(out, depth + 1, None, template.after_pipe)?;
    for p in &mut out[start..] {
        let mut wrappers = template.wrappers.clone();
        wrappers.append(&mut p.wrappers);
        p.wrappers = wrappers;
        let mut assignments = template.assignments.clone();
        assignments.append(&mut p.assignments);
        p.assignments = assignments;
    }
    if let Some(last) = out.get_mut(start..).and_then(|s| s.last_mut()) {
        last.redirects.extend(template.redirects.iter().cloned());
        last.substitutions.extend(&template.substitutions);
    } else if !template.redirects.is_empty() {
        let mut p = template.clone();
        p.words.clear();
        p.runtime.clear();
        lexer::push_part(out, p)?;
    }
    Ok(())
}

/// Records a finished part, bounded by [`MAX_PARTS`].
pub(super) fn record(out: &mut Vec<SimpleCommand>, part: SimpleCommand) -> Result<(), ParseError> {
    lexer::push_part(out, part)
}
