//! A word of a shell command line: as the lexer reads it (its bytes, and how it was
//! quoted, which decides whether it can be an assignment or a keyword, and whether
//! its value is known before it runs), and as the wrapper peeler sees it.

/// A word being read, or read.
#[derive(Debug, Default)]
pub(super) struct Word {
    pub(super) text: Vec<u8>,
    /// Any quoting or escape in it (keywords and assignments must be plain).
    pub(super) quoted: bool,
    /// Bytes at the start written without quoting (an assignment's name and `=`
    /// must be among them).
    pub(super) plain: usize,
    /// It holds an expansion: `$x`, `${x}`, `$(...)`, backticks, `<(...)`.
    pub(super) expands: bool,
    /// It holds an unquoted glob or brace character (`*`, `?`, `[`, `{`).
    pub(super) globs: bool,
}

impl Word {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    pub(super) fn is_assignment(&self) -> bool {
        let Some(eq) = self.text.iter().position(|b| *b == b'=') else {
            return false;
        };
        eq > 0
            && eq < self.plain
            && !self.text[0].is_ascii_digit()
            && self.text[..eq]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    }

    /// Compound-command keywords only frame other commands: `if a; then b; fi` runs
    /// `a` and `b`. `for`, `case` and functions are kept (or refused) instead.
    pub(super) fn is_leading_keyword(&self) -> bool {
        const LEADING: [&str; 9] = [
            "!", "{", "if", "then", "else", "elif", "do", "while", "until",
        ];
        LEADING.iter().any(|k| self.is(k))
    }

    pub(super) fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s.as_bytes()
    }
}

/// A word as the wrapper peeler sees it.
pub(super) struct PeelWord {
    /// The text, quotes removed.
    pub(super) text: String,
    /// Whether it holds an expansion.
    pub(super) expands: bool,
    /// Whether its value is only known when the shell runs it (an expansion, an
    /// unquoted glob or brace).
    pub(super) runtime: bool,
    /// Whether it is a `NAME=value` assignment.
    pub(super) assignment: bool,
    /// The raw bytes (for splitting a `sh -c` string again).
    pub(super) bytes: Vec<u8>,
}

impl From<Word> for PeelWord {
    fn from(w: Word) -> Self {
        PeelWord {
            text: w.text(),
            expands: w.expands,
            runtime: w.expands || w.globs,
            assignment: w.is_assignment(),
            bytes: w.text,
        }
    }
}
