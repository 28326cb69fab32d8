//! The patterns rules are written in: command patterns over words, path globs over
//! path segments, host patterns.
//!
//! - **Command patterns** are words separated by blanks. A word `*` alone matches
//!   any run of words (none included); a `*` inside a word matches any characters of
//!   that one word (`--force*`, `mkfs*`). A pattern matches a command whose words
//!   *start with* what it describes (`cargo test` matches `cargo test --all`), as
//!   prefix rules do. The first word is compared with the program's base name unless
//!   the pattern names a directory (`rm` matches `/bin/rm`).
//! - **Path globs**: `*` and `?` within one segment, `**` for any run of segments.
//!   A glob without `/` matches any segment, at any depth (`.env`, `*.pem`); one
//!   starting with `/` is absolute, with `~/` under the home directory, and any other
//!   is relative to the task's worktree. `..` is resolved before matching.
//! - **Host patterns**: case-insensitive, `*` matches any characters (`*.github.com`).
//!
//! Invariant: matching is linear in practice (greedy backtracking to the last `*`,
//! never exponential), so a hostile command or path cannot stall a decision.

/// A parsed command pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    text: String,
    words: Vec<String>,
}

impl CommandPattern {
    /// Parses `text` (words separated by blanks).
    ///
    /// # Errors
    /// When `text` has no word.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            return Err("an empty command pattern".into());
        }
        // A pattern matches a prefix: an explicit trailing `*` changes nothing.
        while words.len() > 1 && words.last().is_some_and(|w| w == "*") {
            words.pop();
        }
        Ok(CommandPattern {
            text: text.trim().to_owned(),
            words,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `words` starts with what this pattern describes.
    pub fn matches(&self, words: &[String]) -> bool {
        self.might_match(words, &[])
    }

    /// Whether `words` may start with what this pattern describes once the shell
    /// expanded them: a word flagged in `runtime` (past the program) matches any
    /// pattern word. Deny and ask rules match this way, so `git push origin $B`
    /// meets a rule about `git push * main`; allow rules match literally.
    pub fn might_match(&self, words: &[String], runtime: &[bool]) -> bool {
        // `parse` refuses a pattern without words.
        let base = !self.words[0].contains('/');
        let word_matches = |p: &String, w: &String, at: usize| {
            if at > 0 && runtime.get(at).copied().unwrap_or(false) {
                return true;
            }
            let w = if at == 0 && base {
                super::shell::basename(w)
            } else {
                w
            };
            glob_chars(p.as_bytes(), w.as_bytes(), None)
        };
        seq_match(&self.words, words, true, |p| p == "*", word_matches)
    }
}

/// Matches `items` against `pats`, where `is_star(p)` matches any run of items;
/// with `prefix`, `items` may go on after the pattern ends.
fn seq_match<P, I>(
    pats: &[P],
    items: &[I],
    prefix: bool,
    is_star: impl Fn(&P) -> bool,
    one: impl Fn(&P, &I, usize) -> bool,
) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pats.len() && (prefix || i == items.len()) {
            return true;
        }
        if p < pats.len() && is_star(&pats[p]) {
            star = Some((p, i));
            p += 1;
            continue;
        }
        if p < pats.len() && i < items.len() && one(&pats[p], &items[i], i) {
            p += 1;
            i += 1;
            continue;
        }
        match star {
            Some((sp, si)) if si < items.len() => {
                star = Some((sp, si + 1));
                p = sp + 1;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Glob over bytes: `*` any run, and with `stop` (paths) `?` any one byte; neither
/// crosses `stop`.
fn glob_chars(pat: &[u8], text: &[u8], stop: Option<u8>) -> bool {
    let one = |p: u8, t: u8| p == t || (stop.is_some() && p == b'?' && Some(t) != stop);
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pat.len() && one(pat[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            if Some(text[st]) == stop {
                return false;
            }
            star = Some((sp, st + 1));
            p = sp + 1;
            t = st + 1;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// Whether `text` matches `pat`, where `*` matches any characters.
pub(crate) fn glob(pat: &str, text: &str) -> bool {
    glob_chars(pat.as_bytes(), text.as_bytes(), None)
}

/// Where a path glob is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// Any segment (a glob without `/`).
    Anywhere,
    /// The worktree.
    Worktree,
    /// `/`.
    Root,
    /// `~`.
    Home,
}

/// A parsed path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    anchor: Anchor,
    segs: Vec<String>,
}

impl PathGlob {
    /// Parses `text`.
    ///
    /// # Errors
    /// When `text` is empty or climbs out of its anchor with `..`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("an empty path glob".into());
        }
        let (anchor, body) = if let Some(rest) = t.strip_prefix("~/") {
            (Anchor::Home, rest)
        } else if t == "~" {
            (Anchor::Home, "")
        } else if let Some(rest) = t.strip_prefix('/') {
            (Anchor::Root, rest)
        } else if !t.trim_end_matches('/').contains('/') {
            (Anchor::Anywhere, t.trim_end_matches('/'))
        } else {
            (Anchor::Worktree, t.strip_prefix("./").unwrap_or(t))
        };
        let segs = normalize(body.split('/'))
            .ok_or_else(|| format!("path glob `{t}` climbs out of its base with `..`"))?;
        if anchor == Anchor::Anywhere && segs.is_empty() {
            return Err(format!(
                "path glob `{t}` names no file (`**` is every path)"
            ));
        }
        Ok(PathGlob {
            text: t.to_owned(),
            anchor,
            segs,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &Located) -> bool {
        let segs = |s: &[String]| {
            seq_match(
                &self.segs,
                s,
                false,
                |p| p == "**",
                |p, x, _| glob_chars(p.as_bytes(), x.as_bytes(), Some(b'/')),
            )
        };
        match self.anchor {
            Anchor::Anywhere => path
                .all_segments()
                .iter()
                .any(|s| glob_chars(self.segs[0].as_bytes(), s.as_bytes(), Some(b'/'))),
            Anchor::Worktree => path.rel.as_deref().is_some_and(segs),
            Anchor::Root => path.abs.as_deref().is_some_and(segs),
            Anchor::Home => path.home.as_deref().is_some_and(segs),
        }
    }
}

/// Lexically normalized segments: `.` and empty ones dropped, `..` pops; `None` when
/// `..` climbs above the start.
fn normalize<'a>(parts: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match p {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s.to_owned()),
        }
    }
    Some(out)
}

/// A path of an action, resolved against the task's worktree and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The path as the action gave it.
    pub given: String,
    /// Segments relative to the worktree, when the path is inside it.
    pub rel: Option<Vec<String>>,
    /// Absolute segments, when known.
    pub abs: Option<Vec<String>>,
    /// Segments under `~`, for a path written from the home directory.
    pub home: Option<Vec<String>>,
    /// Lexical segments of the path as given, for globs without `/`.
    raw: Vec<String>,
}

impl Located {
    /// Resolves `path`: relative paths against `cwd`, which is itself relative to
    /// `worktree` unless absolute. Without an absolute base, a relative path is inside
    /// the worktree unless `..` leaves it.
    pub fn resolve(path: &str, cwd: Option<&str>, worktree: Option<&str>) -> Located {
        Located::within(path, cwd, worktree.or(cwd))
    }

    /// Like [`Located::resolve`], with the worktree never defaulting to `cwd` (for a
    /// part of a command line that runs after a `cd`).
    pub fn within(path: &str, cwd: Option<&str>, worktree: Option<&str>) -> Located {
        let abs_of = |p: &str| {
            p.strip_prefix('/').map(|r| {
                // `/..` is `/`: climbing above the root stays there.
                let mut out: Vec<String> = Vec::new();
                for s in r.split('/') {
                    match s {
                        "" | "." => {}
                        ".." => {
                            out.pop();
                        }
                        s => out.push(s.to_owned()),
                    }
                }
                out
            })
        };
        let raw: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .map(str::to_owned)
            .collect();
        let mut loc = Located {
            given: path.to_owned(),
            rel: None,
            abs: None,
            home: None,
            raw,
        };
        if path == "~" || path.starts_with("~/") {
            loc.home = normalize(path[1..].split('/'));
            return loc;
        }
        let root = worktree.and_then(abs_of);
        // The working directory, absolute when it can be, else relative to the root.
        let cwd_abs = match (cwd, &root) {
            (Some(c), _) if c.starts_with('/') => abs_of(c),
            (Some(c), Some(r)) => abs_of(&format!("/{}/{c}", r.join("/"))),
            (None, Some(r)) => Some(r.clone()),
            _ => None,
        };
        if path.starts_with('/') {
            loc.abs = abs_of(path);
        } else if let Some(base) = &cwd_abs {
            loc.abs = abs_of(&format!("/{}/{path}", base.join("/")));
        } else {
            let base = cwd.unwrap_or("");
            loc.rel = normalize(base.split('/').chain(path.split('/')));
            return loc;
        }
        if let (Some(a), Some(r)) = (&loc.abs, &root) {
            if a.starts_with(r) {
                loc.rel = Some(a[r.len()..].to_vec());
            }
        }
        loc
    }

    /// Whether the path is outside the task's worktree.
    pub fn outside(&self) -> bool {
        self.rel.is_none()
    }

    fn all_segments(&self) -> &[String] {
        self.abs
            .as_deref()
            .or(self.home.as_deref())
            .or(self.rel.as_deref())
            .unwrap_or(&self.raw)
    }
}

/// A parsed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parses `text`.
    ///
    /// # Errors
    /// When `text` is empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        if t.is_empty() {
            return Err("an empty host pattern".into());
        }
        Ok(HostPattern(t))
    }

    /// The pattern as written (lowercased).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `host` (a host name, `host:port` or a URL) matches.
    pub fn matches(&self, host: &str) -> bool {
        glob_chars(self.0.as_bytes(), host_of(host).as_bytes(), None)
    }
}

/// The host name of a URL or `host:port`, lowercased.
pub fn host_of(s: &str) -> String {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    let host = if let Some(v6) = s.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        s.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_patterns_match_word_prefixes_with_wildcards() {
        let p = |s: &str| CommandPattern::parse(s).unwrap();
        assert!(p("cargo test").matches(&words("cargo test --all")));
        assert!(p("cargo test").matches(&words("/usr/bin/cargo test")));
        assert!(!p("cargo test").matches(&words("cargo testify")));
        assert!(!p("cargo test").matches(&words("cargo")));
        assert!(p("npm run test *").matches(&words("npm run test")));
        assert!(p("git push --force*").matches(&words("git push --force-with-lease x")));
        assert!(!p("git push --force*").matches(&words("git push origin --force")));
        assert!(p("git push * --force*").matches(&words("git push origin main --force")));
        assert!(p("mkfs*").matches(&words("mkfs.ext4 /dev/sda1")));
        assert!(p("*").matches(&words("anything at all")));
        assert!(CommandPattern::parse("  ").is_err());
    }

    #[test]
    fn path_globs_resolve_dotdot_and_anchor_where_written() {
        let g = |s: &str| PathGlob::parse(s).unwrap();
        let at = |p: &str| Located::resolve(p, Some("/w/sub"), Some("/w"));
        assert!(g("src/**").matches(&at("../src/a/b.rs")));
        assert!(
            !g("src/**").matches(&at("src/a.rs")),
            "relative to cwd /w/sub"
        );
        assert!(g("sub/*.rs").matches(&at("a.rs")));
        assert!(
            !g("sub/*.rs").matches(&at("x/a.rs")),
            "* stays in one segment"
        );
        assert!(g(".env").matches(&at("../.env")));
        assert!(g("*.pem").matches(&at("/etc/ssl/k.pem")));
        assert!(g("/etc/**").matches(&at("/etc/passwd")));
        assert!(g("~/.aws/credentials").matches(&at("~/.aws/credentials")));
        assert!(at("../../etc/passwd").outside());
        assert!(!at("../x").outside());
        let bare = Located::resolve("a/../../x", None, None);
        assert!(bare.outside(), "climbs out of the worktree: {bare:?}");
        assert!(!Located::resolve("a/../x", None, None).outside());
        assert!(PathGlob::parse("../x/y").is_err());
        for nothing in [".", "./", "", "a/../.."] {
            assert!(PathGlob::parse(nothing).is_err(), "{nothing}");
        }
        assert!(g("**").matches(&Located::resolve("a/b", None, None)));
    }

    /// Any pattern that parses matches any input without panicking.
    #[test]
    fn generated_patterns_and_inputs_never_panic() {
        const PIECES: &[&str] = &[
            "a", "*", "**", "?", "/", ".", "..", "~", "~/", " ", "-", "x.pem", ":", "@", "[",
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        let gen = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(0..8))
                .map(|_| PIECES[rng.usize(..PIECES.len())])
                .collect()
        };
        for _ in 0..20_000 {
            let (pat, input, cwd) = (gen(&mut rng), gen(&mut rng), gen(&mut rng));
            let loc = Located::resolve(&input, Some(&cwd), None);
            if let Ok(g) = PathGlob::parse(&pat) {
                let _ = g.matches(&loc);
            }
            if let Ok(c) = CommandPattern::parse(&pat) {
                let _ = c.matches(&words(&input));
            }
            if let Ok(h) = HostPattern::parse(&pat) {
                let _ = h.matches(&input);
            }
        }
    }

    #[test]
    fn hosts_match_case_insensitively_from_urls() {
        let h = HostPattern::parse("*.GitHub.com").unwrap();
        assert!(h.matches("https://user:pw@API.github.com:443/x?y"));
        assert!(!h.matches("github.com"));
        assert!(!h.matches("github.com.evil.net"));
        assert_eq!(host_of("[::1]:80"), "::1");
    }
}
