//! Wrappers: programs that run the rest of their command line (`sudo`, `env`,
//! `nohup`, `time`, `command`, `exec`, `xargs`, `nice`, `timeout`, `stdbuf`, `doas`),
//! and shells given a string to run (`sh -c`, `bash -c`, `eval`).
//!
//! Peeling them makes `words[0]` the program that really runs, so that a rule about
//! `rm` sees `sudo -u root rm -rf x`. Invariant: a wrapper is peeled only when each
//! of its options is known (with whether it takes an argument) and a command
//! follows; otherwise it stays the program, and no ordinary rule allows it. A `-c`
//! string or `eval` argument holding an expansion is not split (its text is not the
//! command that runs); the shell stays the program.

use super::word::PeelWord;
use super::{basename, ParseError, SimpleCommand};

/// How to skip one wrapper's options.
struct Wrapper {
    name: &'static str,
    /// Short options without an argument.
    flags: &'static [u8],
    /// Short options with an argument, attached (`-uroot`) or in the next word.
    args: &'static [u8],
    /// Short options whose argument can only be attached (`xargs -i{}`).
    optional: &'static [u8],
    /// Long options without an argument (or with an optional `=value`).
    long_flags: &'static [&'static str],
    /// Long options with an argument (`--user root` or `--user=root`).
    long_args: &'static [&'static str],
    /// Operands before the command (`timeout 10s cmd`).
    operands: usize,
    /// `-5` is an option (`nice -5 make`).
    numeric: bool,
}

const fn wrapper(name: &'static str) -> Wrapper {
    Wrapper {
        name,
        flags: b"",
        args: b"",
        optional: b"",
        long_flags: &[],
        long_args: &[],
        operands: 0,
        numeric: false,
    }
}

/// Every wrapper peeled. Options not listed stop the peeling (fail closed): `sudo -l`
/// lists rights and `command -v` looks a name up; neither runs its operand.
const WRAPPERS: &[Wrapper] = &[
    Wrapper {
        flags: b"i0v",
        args: b"uC",
        long_flags: &["--ignore-environment", "--null", "--debug"],
        long_args: &["--unset", "--chdir"],
        ..wrapper("env")
    },
    Wrapper {
        flags: b"AbEHnPSis",
        args: b"ugCDprtUTR",
        long_flags: &[
            "--preserve-env",
            "--non-interactive",
            "--login",
            "--shell",
            "--set-home",
            "--background",
            "--askpass",
            "--stdin",
        ],
        long_args: &[
            "--user",
            "--group",
            "--chdir",
            "--prompt",
            "--role",
            "--type",
            "--other-user",
            "--close-from",
            "--command-timeout",
        ],
        ..wrapper("sudo")
    },
    Wrapper {
        flags: b"ns",
        args: b"u",
        ..wrapper("doas")
    },
    wrapper("nohup"),
    Wrapper {
        flags: b"pvaq",
        args: b"fo",
        long_flags: &["--portability", "--verbose", "--append", "--quiet"],
        long_args: &["--format", "--output"],
        ..wrapper("time")
    },
    Wrapper {
        flags: b"p",
        ..wrapper("command")
    },
    Wrapper {
        flags: b"cl",
        args: b"a",
        ..wrapper("exec")
    },
    Wrapper {
        flags: b"0rtpx",
        args: b"adEILnPs",
        optional: b"eil",
        long_flags: &[
            "--null",
            "--no-run-if-empty",
            "--verbose",
            "--interactive",
            "--exit",
            "--replace",
            "--eof",
            "--max-lines",
        ],
        long_args: &[
            "--arg-file",
            "--delimiter",
            "--max-args",
            "--max-procs",
            "--max-chars",
        ],
        ..wrapper("xargs")
    },
    Wrapper {
        args: b"n",
        long_args: &["--adjustment"],
        numeric: true,
        ..wrapper("nice")
    },
    Wrapper {
        flags: b"v",
        args: b"sk",
        long_flags: &["--foreground", "--preserve-status", "--verbose"],
        long_args: &["--signal", "--kill-after"],
        operands: 1,
        ..wrapper("timeout")
    },
    Wrapper {
        args: b"ioe",
        long_args: &["--input", "--output", "--error"],
        ..wrapper("stdbuf")
    },
];

/// Shells whose `-c` string is split again.
pub(crate) const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish"];

impl Wrapper {
    /// How many words of `rest` are this wrapper's options and operands, or `None`
    /// when one is not known.
    fn skip(&self, rest: &[PeelWord]) -> Option<usize> {
        let mut i = 0;
        while let Some(w) = rest.get(i) {
            let t = w.text.as_str();
            if w.expands && t.starts_with('-') {
                return None;
            }
            if t == "--" {
                i += 1;
                break;
            }
            if let Some(long) = t.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (long, false),
                };
                let known = |list: &[&str]| list.iter().any(|l| l.strip_prefix("--") == Some(name));
                if known(self.long_flags) || (inline && known(self.long_args)) {
                    i += 1;
                } else if known(self.long_args) {
                    i += 2;
                } else {
                    return None;
                }
                continue;
            }
            let Some(body) = t.strip_prefix('-').map(str::as_bytes) else {
                break;
            };
            if body.is_empty() {
                return None;
            }
            if self.numeric && body.iter().all(u8::is_ascii_digit) {
                i += 1;
                continue;
            }
            let mut used = 1;
            for (k, c) in body.iter().enumerate() {
                if self.flags.contains(c) {
                    continue;
                }
                if self.optional.contains(c) {
                    break;
                }
                if self.args.contains(c) {
                    if k + 1 == body.len() {
                        used = 2;
                    }
                    break;
                }
                return None;
            }
            i += used;
        }
        i += self.operands;
        (i <= rest.len()).then_some(i)
    }
}

/// The index in `rest` (the words after a shell's name) of its `-c` string, if any.
fn command_string(rest: &[PeelWord]) -> Option<usize> {
    let mut c = false;
    let mut i = 0;
    while let Some(w) = rest.get(i) {
        let t = w.text.as_str();
        if t == "--" || t == "-" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            i += if matches!(long, "rcfile" | "init-file") {
                2
            } else {
                1
            };
            continue;
        }
        if t.len() > 1 && (t.starts_with('-') || t.starts_with('+')) {
            let mut operand = false;
            for ch in t.bytes().skip(1) {
                match ch {
                    b'c' => c = true,
                    b'o' | b'O' => operand = true,
                    _ => {}
                }
            }
            i += if operand { 2 } else { 1 };
            continue;
        }
        break;
    }
    (c && i < rest.len()).then_some(i)
}

/// Peels assignments and wrappers off `words` and records the command in `out`
/// (or the commands of its `sh -c` / `eval` string).
pub(super) fn peel(
    out: &mut Vec<SimpleCommand>,
    depth: usize,
    words: Vec<PeelWord>,
    mut part: SimpleCommand,
) -> Result<(), ParseError> {
    let mut i = 0;
    loop {
        while let Some(w) = words.get(i).filter(|w| w.assignment) {
            part.assignments.push(w.text.clone());
            i += 1;
        }
        let Some(first) = words.get(i).filter(|w| !w.expands) else {
            break;
        };
        let name = basename(&first.text);
        let rest = &words[i + 1..];
        if let Some(spec) = WRAPPERS.iter().find(|w| w.name == name) {
            match spec.skip(rest) {
                Some(n) if n < rest.len() => {
                    part.wrappers.push(name.to_owned());
                    i += 1 + n;
                    continue;
                }
                _ => break,
            }
        }
        if SHELLS.contains(&name) {
            if let Some(inner) = command_string(rest).map(|k| &rest[k]) {
                if !inner.expands {
                    part.wrappers.push(format!("{name} -c"));
                    return super::split_inner(out, depth, &inner.bytes, &part);
                }
            }
            break;
        }
        if name == "eval" && !rest.is_empty() && rest.iter().all(|w| !w.expands) {
            let joined = rest
                .iter()
                .map(|w| w.bytes.as_slice())
                .collect::<Vec<_>>()
                .join(&b' ');
            part.wrappers.push("eval".into());
            return super::split_inner(out, depth, &joined, &part);
        }
        break;
    }
    part.words = words[i..].iter().map(|w| w.text.clone()).collect();
    part.runtime = words[i..].iter().map(|w| w.runtime).collect();
    if part.words.is_empty() && part.redirects.is_empty() {
        return Ok(());
    }
    super::record(out, part)
}
