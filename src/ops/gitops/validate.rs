//! Input hardening: everything a task sends that ends up in a git command line, a
//! commit or a pull request is checked here first, against a grammar and a byte
//! bound, before any process starts.
//!
//! The grammars are deliberately narrower than git's: a name that git would accept
//! but that starts with `-` (read as an option: `--upload-pack=...`), holds `..`
//! (a range, or a path out of `refs/`), `:` (a refspec or an `ext::` transport) or a
//! control character is refused. Ref names follow `git check-ref-format`'s rules
//! ([`ref_name`]); the tests compare this check with git's own on the attacks.

use super::GitopsError;

/// Longest BIP id, in bytes.
pub const MAX_BIP: usize = 32;
/// Longest task id, in bytes.
pub const MAX_TASK: usize = 128;
/// Longest branch or ref name, in bytes.
pub const MAX_REF: usize = 200;
/// Longest remote name, in bytes.
pub const MAX_REMOTE: usize = 64;
/// Longest commit message or pull-request body, in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest pull-request title, in bytes.
pub const MAX_TITLE: usize = 256;
/// Longest identity (reviewer id, author name), in bytes.
pub const MAX_IDENTITY: usize = 128;
/// Longest e-mail address, in bytes.
pub const MAX_EMAIL: usize = 254;

fn bounded(field: &'static str, s: &str, max: usize) -> Result<(), GitopsError> {
    if s.is_empty() {
        return Err(GitopsError::invalid(field, "empty"));
    }
    if s.len() > max {
        return Err(GitopsError::invalid(
            field,
            format!("{} bytes, the limit is {max}", s.len()),
        ));
    }
    Ok(())
}

/// A word of `[A-Za-z0-9]` then `[A-Za-z0-9._-]`, without `..`, nor a trailing `.`
/// or `.lock`: safe as one path segment and one ref component.
fn word(field: &'static str, s: &str, max: usize, dots: bool) -> Result<(), GitopsError> {
    bounded(field, s, max)?;
    let ok_first = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let ok_rest = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (dots && b == b'.'));
    if !ok_first || !ok_rest {
        let allowed = if dots {
            "letters, digits, `-`, `_`, `.`"
        } else {
            "letters, digits, `-`, `_`"
        };
        return Err(GitopsError::invalid(
            field,
            format!(
                "`{}` must start with a letter or digit and hold only {allowed}",
                shown(s)
            ),
        ));
    }
    if s.contains("..") || s.ends_with('.') || s.ends_with(".lock") {
        return Err(GitopsError::invalid(
            field,
            format!("`{}` holds `..` or ends with `.` or `.lock`", shown(s)),
        ));
    }
    Ok(())
}

/// A BIP id (`43`, `BIP-43`): letters, digits, `-`, `_`, at most [`MAX_BIP`] bytes.
///
/// # Errors
/// `invalid_input` naming `bip`.
pub fn bip(s: &str) -> Result<(), GitopsError> {
    word("bip", s, MAX_BIP, false)
}

/// A task id, as the queue makes them; also a worktree directory name.
///
/// # Errors
/// `invalid_input` naming `task`.
pub fn task(s: &str) -> Result<(), GitopsError> {
    word("task", s, MAX_TASK, true)
}

/// A remote name (`origin`): one word, never an URL, a path or an option.
///
/// # Errors
/// `invalid_input` naming `remote`.
pub fn remote(s: &str) -> Result<(), GitopsError> {
    word("remote", s, MAX_REMOTE, true)
}

/// A branch name, by `git check-ref-format --branch` rules (applied to
/// `refs/heads/<name>`), and never starting with `-`; at most [`MAX_REF`] bytes.
///
/// # Errors
/// `invalid_input` naming `branch` and the rule broken.
pub fn branch(s: &str) -> Result<(), GitopsError> {
    ref_name("branch", s)
}

/// A ref name by `git check-ref-format`'s rules, stricter in that only printable
/// ASCII is accepted and nothing may start with `-`:
/// no component starting with `.` or ending with `.lock`; no `..`; no control
/// character, space, `~`, `^`, `:`, `?`, `*`, `[`, `\`; no leading, trailing or
/// doubled `/`; no trailing `.`; no `@{`; not `@` alone.
///
/// # Errors
/// `invalid_input` naming `field` and the rule broken.
pub fn ref_name(field: &'static str, s: &str) -> Result<(), GitopsError> {
    bounded(field, s, MAX_REF)?;
    let bad = |why: &str| Err(GitopsError::invalid(field, format!("`{}` {why}", shown(s))));
    if s.starts_with('-') {
        return bad("starts with `-` (it would be read as an option)");
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return bad(&format!(
            "holds {:?}: no spaces, control characters, non-ASCII, ~ ^ : ? * [ \\",
            c
        ));
    }
    if s.contains("..") {
        return bad("holds `..`");
    }
    if s.contains("@{") || s == "@" {
        return bad("holds `@{` or is `@`");
    }
    if s.starts_with('/') || s.ends_with('/') || s.contains("//") {
        return bad("has an empty path component (leading, trailing or doubled `/`)");
    }
    if s.ends_with('.') {
        return bad("ends with `.`");
    }
    for comp in s.split('/') {
        if comp.starts_with('.') || comp.ends_with(".lock") {
            return bad("has a component starting with `.` or ending with `.lock`");
        }
    }
    Ok(())
}

/// A revision for `reset` or `rebase`: an object id (7 to 64 hex digits) or a ref
/// name ([`ref_name`]).
///
/// # Errors
/// `invalid_input` naming `revision`.
pub fn revision(s: &str) -> Result<(), GitopsError> {
    let hex = (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return Ok(());
    }
    ref_name("revision", s)
}

/// Free text (a commit message, a pull-request body): at most `max` bytes, not blank,
/// no NUL nor control characters other than newline, tab and carriage return.
///
/// # Errors
/// `invalid_input` naming `field`.
pub fn text(field: &'static str, s: &str, max: usize) -> Result<(), GitopsError> {
    bounded(field, s, max)?;
    if s.trim().is_empty() {
        return Err(GitopsError::invalid(field, "blank"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(GitopsError::invalid(
            field,
            format!("holds the control character {c:?}"),
        ));
    }
    Ok(())
}

/// A commit message: [`text`] with [`MAX_MESSAGE`].
///
/// # Errors
/// `invalid_input` naming `message`.
pub fn message(s: &str) -> Result<(), GitopsError> {
    text("message", s, MAX_MESSAGE)
}

/// A pull-request title: one line of [`text`], at most [`MAX_TITLE`] bytes.
///
/// # Errors
/// `invalid_input` naming `title`.
pub fn title(s: &str) -> Result<(), GitopsError> {
    text("title", s, MAX_TITLE)?;
    if s.contains(['\n', '\r']) {
        return Err(GitopsError::invalid("title", "more than one line"));
    }
    Ok(())
}

/// A person's or model's name as a git author: one line, no `<` or `>` (they
/// delimit the e-mail in a commit header), at most [`MAX_IDENTITY`] bytes.
///
/// # Errors
/// `invalid_input` naming `field`.
pub fn person(field: &'static str, s: &str) -> Result<(), GitopsError> {
    bounded(field, s, MAX_IDENTITY)?;
    if s.trim() != s {
        return Err(GitopsError::invalid(field, "leading or trailing blanks"));
    }
    if s.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(GitopsError::invalid(
            field,
            format!("`{}` holds a control character, `<` or `>`", shown(s)),
        ));
    }
    Ok(())
}

/// An e-mail address for a commit header: `local@domain`, letters, digits and
/// `. _ + -` only, at most [`MAX_EMAIL`] bytes.
///
/// # Errors
/// `invalid_input` naming `email`.
pub fn email(s: &str) -> Result<(), GitopsError> {
    bounded("email", s, MAX_EMAIL)?;
    let ok = |part: &str, extra: &[u8]| {
        !part.is_empty()
            && !part.starts_with(['-', '.'])
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    match s.split_once('@') {
        Some((local, domain)) if ok(local, b"._+-") && ok(domain, b".-") => Ok(()),
        _ => Err(GitopsError::invalid(
            "email",
            format!("`{}` is not a plain local@domain address", shown(s)),
        )),
    }
}

/// A reviewer's identity as the governance operator names it (a model or session
/// subject): [`person`], also usable to derive an e-mail local part.
///
/// # Errors
/// `invalid_input` naming `reviewer`.
pub fn reviewer(s: &str) -> Result<(), GitopsError> {
    person("reviewer", s)
}

/// `s` for an error message: at most 64 characters, control characters escaped, so
/// an attack's payload is neither echoed in full nor able to break a log line.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}
