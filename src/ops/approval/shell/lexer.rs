//! The lexer behind [`split`](super::split): one pass over the bytes of a line (or
//! of a nested string), reading words and operators, recursing into subshells and
//! substitutions, and handing each finished command to the wrapper peeler.
//!
//! Invariant: every index is checked before use (`peek`), every recursion goes one
//! level deeper and is refused past [`MAX_DEPTH`], so no input panics or loops.

use super::word::{PeelWord, Word};
use super::{ParseError, Redirect, SimpleCommand, MAX_DEPTH, MAX_PARTS};

/// A simple command being read.
#[derive(Debug, Default)]
struct Pending {
    words: Vec<Word>,
    redirects: Vec<Redirect>,
    after_pipe: bool,
}

pub(super) struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    /// Parts run by substitutions in the command being read.
    substs: Vec<usize>,
}

fn is_meta(b: u8) -> bool {
    matches!(b, b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' | b'\n')
}

pub(super) fn push_part(
    out: &mut Vec<SimpleCommand>,
    part: SimpleCommand,
) -> Result<(), ParseError> {
    if out.len() >= MAX_PARTS {
        return Err(ParseError::TooManyParts { max: MAX_PARTS });
    }
    out.push(part);
    Ok(())
}

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a [u8]) -> Self {
        Lexer {
            s,
            i: 0,
            substs: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    /// Reads commands until the end, or until the `)` closing the `(` at `close`.
    pub(super) fn list(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        close: Option<usize>,
        after_pipe: bool,
    ) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::TooDeep { max: MAX_DEPTH });
        }
        let mut cmd = Pending {
            after_pipe,
            ..Pending::default()
        };
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
            let Some(b) = self.peek() else {
                if let Some(at) = close {
                    return Err(ParseError::UnclosedParen { at });
                }
                return self.finish(out, depth, &mut cmd);
            };
            let at = self.i;
            match b {
                b')' if close.is_some() => {
                    self.i += 1;
                    return self.finish(out, depth, &mut cmd);
                }
                b')' => return Err(ParseError::StrayParen { at }),
                b'\\' if self.peek_at(1) == Some(b'\n') => self.i += 2,
                b'#' => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.i += 1;
                    }
                }
                b'\n' | b';' => {
                    self.i += 1;
                    self.finish(out, depth, &mut cmd)?;
                }
                b'&' if self.peek_at(1) == Some(b'>') => {
                    let r = self.redirect(out, depth)?;
                    cmd.redirects.push(r);
                }
                b'&' => {
                    self.i += if self.peek_at(1) == Some(b'&') { 2 } else { 1 };
                    self.finish(out, depth, &mut cmd)?;
                }
                b'|' => {
                    let or = self.peek_at(1) == Some(b'|');
                    self.i += if matches!(self.peek_at(1), Some(b'|' | b'&')) {
                        2
                    } else {
                        1
                    };
                    self.finish(out, depth, &mut cmd)?;
                    cmd.after_pipe = !or;
                }
                b'(' if cmd.words.iter().all(Word::is_leading_keyword)
                    && cmd.redirects.is_empty() =>
                {
                    self.i += 1;
                    self.nested(out, depth + 1, at, cmd.after_pipe)?;
                }
                b'(' => {
                    return Err(ParseError::Unsupported {
                        what: "`(` after a word (a function definition or an array)",
                        at,
                    })
                }
                b'<' | b'>' if self.peek_at(1) != Some(b'(') => {
                    let r = self.redirect(out, depth)?;
                    cmd.redirects.push(r);
                }
                _ => {
                    let w = self.word(out, depth)?;
                    let fd = matches!(self.peek(), Some(b'<' | b'>'))
                        && !w.quoted
                        && !w.text.is_empty()
                        && w.text.iter().all(u8::is_ascii_digit);
                    // `2>file`: the digits name a descriptor, not an argument.
                    if !fd {
                        cmd.words.push(w);
                    }
                }
            }
        }
    }

    /// Reads a nested list after its `(` at `open`, with its own substitutions;
    /// returns the indices of the parts it added.
    fn nested(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        open: usize,
        after_pipe: bool,
    ) -> Result<std::ops::Range<usize>, ParseError> {
        let outer = std::mem::take(&mut self.substs);
        let start = out.len();
        let r = self.list(out, depth, Some(open), after_pipe);
        self.substs = outer;
        r.map(|()| start..out.len())
    }

    /// Reads a redirection operator and its target.
    fn redirect(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
    ) -> Result<Redirect, ParseError> {
        let at = self.i;
        let rest = &self.s[self.i..];
        let op: &'static str = if rest.starts_with(b"&>>") {
            "&>>"
        } else if rest.starts_with(b"&>") {
            "&>"
        } else if rest.starts_with(b"<<<") {
            "<<<"
        } else if rest.starts_with(b"<<") {
            return Err(ParseError::Unsupported {
                what: "a here-document",
                at,
            });
        } else {
            const OPS: [&str; 7] = [">>", ">|", ">&", "<>", "<&", ">", "<"];
            OPS.into_iter()
                .find(|op| rest.starts_with(op.as_bytes()))
                .unwrap_or(">")
        };
        self.i += op.len();
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        let starts_word = match self.peek() {
            None => false,
            Some(b'<' | b'>') => self.peek_at(1) == Some(b'('),
            Some(b) => !is_meta(b),
        };
        if !starts_word {
            return Err(ParseError::Unsupported {
                what: "a redirection without a target",
                at,
            });
        }
        let w = self.word(out, depth)?;
        Ok(Redirect {
            op,
            target: w.text(),
            runtime: w.expands || w.globs,
        })
    }

    /// Reads one word, removing quotes and splitting the commands of substitutions.
    fn word(&mut self, out: &mut Vec<SimpleCommand>, depth: usize) -> Result<Word, ParseError> {
        let mut w = Word::default();
        if let (Some(b'<' | b'>'), Some(b'(')) = (self.peek(), self.peek_at(1)) {
            let at = self.i;
            self.i += 2;
            let parts = self.nested(out, depth + 1, at + 1, false)?;
            self.substs.extend(parts);
            w.text.extend_from_slice(&self.s[at..self.i]);
            w.expands = true;
            w.quoted = true;
            return Ok(w);
        }
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\t') || is_meta(b) {
                break;
            }
            match b {
                b'\\' => {
                    w.quoted = true;
                    match self.peek_at(1) {
                        // A line continuation joins the lines.
                        Some(b'\n') => self.i += 2,
                        Some(c) => {
                            w.text.push(c);
                            self.i += 2;
                        }
                        None => {
                            w.text.push(b'\\');
                            self.i += 1;
                        }
                    }
                }
                b'\'' => {
                    w.quoted = true;
                    let at = self.i;
                    let len = self.s[at + 1..]
                        .iter()
                        .position(|c| *c == b'\'')
                        .ok_or(ParseError::UnbalancedQuote { quote: '\'', at })?;
                    w.text.extend_from_slice(&self.s[at + 1..at + 1 + len]);
                    self.i = at + len + 2;
                }
                b'"' => {
                    w.quoted = true;
                    self.double(out, depth, &mut w)?;
                }
                b'$' => self.dollar(out, depth, &mut w, false)?,
                b'`' => self.backtick(out, depth, &mut w)?,
                _ => {
                    w.text.push(b);
                    self.i += 1;
                    w.globs |= matches!(b, b'*' | b'?' | b'[' | b'{');
                    if !w.quoted && !w.expands {
                        w.plain = w.text.len();
                    }
                }
            }
        }
        Ok(w)
    }

    /// A double-quoted string, from its opening quote.
    fn double(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        w: &mut Word,
    ) -> Result<(), ParseError> {
        let at = self.i;
        self.i += 1;
        loop {
            match self.peek() {
                None => return Err(ParseError::UnbalancedQuote { quote: '"', at }),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.peek_at(1) {
                    Some(b'\n') => self.i += 2,
                    Some(c @ (b'$' | b'`' | b'"' | b'\\')) => {
                        w.text.push(c);
                        self.i += 2;
                    }
                    _ => {
                        w.text.push(b'\\');
                        self.i += 1;
                    }
                },
                Some(b'$') => self.dollar(out, depth, w, true)?,
                Some(b'`') => self.backtick(out, depth, w)?,
                Some(c) => {
                    w.text.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `$...`: a substitution, a parameter, `$'...'`, or a plain `$`.
    fn dollar(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        w: &mut Word,
        in_double: bool,
    ) -> Result<(), ParseError> {
        let at = self.i;
        match self.peek_at(1) {
            Some(b'(') if self.peek_at(2) == Some(b'(') => {
                let end = self.arithmetic_end(at)?;
                w.text.extend_from_slice(&self.s[at..end]);
                self.i = end;
                w.expands = true;
            }
            Some(b'(') => {
                self.i += 2;
                let parts = self.nested(out, depth + 1, at + 1, false)?;
                self.substs.extend(parts);
                w.text.extend_from_slice(&self.s[at..self.i]);
                w.expands = true;
            }
            Some(b'{') => {
                let len = self.s[at..]
                    .iter()
                    .position(|c| *c == b'}')
                    .ok_or(ParseError::UnbalancedQuote { quote: '{', at })?;
                let inner = &self.s[at..at + len + 1];
                if inner
                    .iter()
                    .any(|c| matches!(c, b'`' | b'(' | b'"' | b'\''))
                {
                    return Err(ParseError::Unsupported {
                        what: "a substitution or quote inside `${...}`",
                        at,
                    });
                }
                w.text.extend_from_slice(inner);
                self.i = at + len + 1;
                w.expands = true;
            }
            Some(b'\'') if !in_double => {
                w.quoted = true;
                self.i += 2;
                self.ansi_c(w, at)?;
            }
            Some(b'"') if !in_double => {
                // `$"..."` (a translated string) reads as a double-quoted one.
                self.i += 1;
                w.quoted = true;
                self.double(out, depth, w)?;
            }
            Some(c) if c.is_ascii_alphanumeric() || b"_@*#?$!-".contains(&c) => {
                let mut end = at + 2;
                if c.is_ascii_alphabetic() || c == b'_' {
                    while self
                        .s
                        .get(end)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        end += 1;
                    }
                }
                w.text.extend_from_slice(&self.s[at..end]);
                self.i = end;
                w.expands = true;
            }
            _ => {
                w.text.push(b'$');
                self.i += 1;
            }
        }
        Ok(())
    }

    /// The end of `$(( ... ))` starting at `at`; a substitution inside is refused.
    fn arithmetic_end(&self, at: usize) -> Result<usize, ParseError> {
        let mut level = 0usize;
        for (k, c) in self.s[at + 1..].iter().enumerate() {
            match c {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        let end = at + 1 + k + 1;
                        let inner = &self.s[at + 3..end.saturating_sub(2).max(at + 3)];
                        if inner.contains(&b'`') || inner.windows(2).any(|p| p == b"$(") {
                            return Err(ParseError::Unsupported {
                                what: "a substitution inside `$((...))`",
                                at,
                            });
                        }
                        return Ok(end);
                    }
                }
                _ => {}
            }
        }
        Err(ParseError::UnclosedParen { at: at + 1 })
    }

    /// The body of `$'...'` after its opening quote, escapes decoded.
    fn ansi_c(&mut self, w: &mut Word, at: usize) -> Result<(), ParseError> {
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError::UnbalancedQuote { quote: '\'', at });
            };
            self.i += 1;
            match c {
                b'\'' => return Ok(()),
                b'\\' => {
                    let Some(e) = self.peek() else { continue };
                    self.i += 1;
                    match e {
                        b'n' => w.text.push(b'\n'),
                        b't' => w.text.push(b'\t'),
                        b'r' => w.text.push(b'\r'),
                        b'x' => {
                            let hex: Vec<u8> = self.s[self.i..]
                                .iter()
                                .take(2)
                                .take_while(|c| c.is_ascii_hexdigit())
                                .copied()
                                .collect();
                            self.i += hex.len();
                            let v = std::str::from_utf8(&hex)
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok());
                            w.text.push(v.unwrap_or(b'x'));
                        }
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            while let Some(d @ b'0'..=b'7') = self.peek() {
                                if v >= 32 {
                                    break;
                                }
                                v = v * 8 + u32::from(d - b'0');
                                self.i += 1;
                            }
                            w.text.push(u8::try_from(v).unwrap_or(b'?'));
                        }
                        other => w.text.push(other),
                    }
                }
                other => w.text.push(other),
            }
        }
    }

    /// A backtick substitution: its body is split as a line of its own.
    fn backtick(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        w: &mut Word,
    ) -> Result<(), ParseError> {
        let at = self.i;
        self.i += 1;
        let mut inner = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ParseError::UnbalancedQuote { quote: '`', at }),
                Some(b'`') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') if matches!(self.peek_at(1), Some(b'`' | b'$' | b'\\')) => {
                    inner.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                Some(c) => {
                    inner.push(c);
                    self.i += 1;
                }
            }
        }
        let start = out.len();
        Lexer::new(&inner).list(out, depth + 1, None, false)?;
        self.substs.extend(start..out.len());
        w.text.extend_from_slice(&self.s[at..self.i]);
        w.expands = true;
        Ok(())
    }

    /// Ends the command being read: drops keywords, peels wrappers, records it.
    fn finish(
        &mut self,
        out: &mut Vec<SimpleCommand>,
        depth: usize,
        cmd: &mut Pending,
    ) -> Result<(), ParseError> {
        let after_pipe = cmd.after_pipe;
        let Pending {
            mut words,
            redirects,
            ..
        } = std::mem::take(cmd);
        let substitutions = std::mem::take(&mut self.substs);
        let lead = words.iter().take_while(|w| w.is_leading_keyword()).count();
        words.drain(..lead);
        if words
            .iter()
            .all(|w| w.is("}") || w.is("fi") || w.is("done"))
        {
            words.clear();
        }
        if words.is_empty() && redirects.is_empty() {
            return Ok(());
        }
        let part = SimpleCommand {
            after_pipe,
            redirects,
            substitutions,
            ..SimpleCommand::default()
        };
        let words = words.into_iter().map(PeelWord::from).collect();
        super::wrappers::peel(out, depth, words, part)
    }
}
