//! Unit tests of the splitter: every separator, quoting form, substitution and
//! wrapper; the bounds; and property-style checks on generated input (never a panic,
//! quoting round-trips).

use super::*;

fn words(line: &str) -> Vec<Vec<String>> {
    split(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .into_iter()
        .map(|p| p.words)
        .collect()
}

fn w(list: &[&[&str]]) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect()
}

#[test]
fn every_separator_starts_a_new_command() {
    assert_eq!(
        words("a 1 && b || c; d | e & f\ng |& h"),
        w(&[
            &["a", "1"],
            &["b"],
            &["c"],
            &["d"],
            &["e"],
            &["f"],
            &["g"],
            &["h"]
        ])
    );
    let parts = split("d | e; f").unwrap();
    assert_eq!(
        parts.iter().map(|p| p.after_pipe).collect::<Vec<_>>(),
        [false, true, false]
    );
}

#[test]
fn quotes_and_escapes_keep_operators_inside_words() {
    assert_eq!(
        words(r#"echo "a && b" 'c; d' e\;f \"g"#),
        w(&[&["echo", "a && b", "c; d", "e;f", "\"g"]])
    );
    assert_eq!(
        words("echo \"git push --force\""),
        w(&[&["echo", "git push --force"]])
    );
    assert_eq!(
        words("git push \\\n  --force"),
        w(&[&["git", "push", "--force"]])
    );
    assert_eq!(words(r#"echo "a\"b\$c\n""#), w(&[&["echo", "a\"b$c\\n"]]));
    assert_eq!(words("$'\\x72m' -rf /"), w(&[&["rm", "-rf", "/"]]));
    assert_eq!(words("ls # ; rm -rf /"), w(&[&["ls"]]));
}

#[test]
fn substitutions_and_subshells_count_as_parts() {
    let parts = split("echo $(rm -rf x) `id` \"$(git push -f)\"").unwrap();
    let got: Vec<String> = parts.iter().map(|p| p.words.join(" ")).collect();
    assert_eq!(
        got,
        [
            "rm -rf x",
            "id",
            "git push -f",
            "echo $(rm -rf x) `id` $(git push -f)"
        ]
    );
    assert_eq!(parts[3].substitutions, [0, 1, 2]);
    assert_eq!(
        words("(cd x && make) | tee log"),
        w(&[&["cd", "x"], &["make"], &["tee", "log"]])
    );
    assert_eq!(
        words("diff <(ls a) <(ls b)"),
        w(&[&["ls", "a"], &["ls", "b"], &["diff", "<(ls a)", "<(ls b)"]])
    );
    assert_eq!(words("echo $((1 + (2)))"), w(&[&["echo", "$((1 + (2)))"]]));
    assert_eq!(
        words("if (cd x && make); then ! (rm y); fi"),
        w(&[&["cd", "x"], &["make"], &["rm", "y"]])
    );
    assert_eq!(
        words("if cargo test; then echo ok; else rm x; fi"),
        w(&[&["cargo", "test"], &["echo", "ok"], &["rm", "x"]])
    );
}

#[test]
fn words_known_only_at_run_time_are_flagged() {
    let p = &split("sudo rm -rf $DIR \"${X}\" 'lit$' *.rs {a,b} `id` \\*").unwrap()[1];
    assert_eq!(p.words[0], "rm");
    assert_eq!(
        p.runtime,
        [false, false, true, true, false, true, true, true, false]
    );
    assert_eq!(words("a\rb c"), w(&[&["a\rb", "c"]]), "\\r is not a blank");
}

#[test]
fn wrappers_and_assignments_are_peeled_off() {
    let p = &split("FOO=1 sudo -u root env -i BAR=\"2 3\" nohup time -p xargs -0 -n1 rm -rf")
        .unwrap()[0];
    assert_eq!(p.words, ["rm", "-rf"]);
    assert_eq!(p.wrappers, ["sudo", "env", "nohup", "time", "xargs"]);
    assert_eq!(p.assignments, ["FOO=1", "BAR=2 3"]);
    assert_eq!(p.program(), "rm");
    assert_eq!(
        words("timeout -s KILL 10s nice -5 cargo test"),
        w(&[&["cargo", "test"]])
    );
    assert_eq!(
        words("\"A=1\" x"),
        w(&[&["A=1", "x"]]),
        "a quoted name is a command"
    );
    // Unknown options and non-running forms keep the wrapper as the program.
    assert_eq!(words("sudo -Z rm x"), w(&[&["sudo", "-Z", "rm", "x"]]));
    assert_eq!(words("command -v rm"), w(&[&["command", "-v", "rm"]]));
    assert_eq!(words("env -S 'rm -rf /'"), w(&[&["env", "-S", "rm -rf /"]]));
    assert_eq!(words("sudo"), w(&[&["sudo"]]));
}

#[test]
fn shell_strings_are_split_again() {
    let parts = split("sudo bash -euo pipefail -c 'git push --force && echo \"ok\"'").unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].words, ["git", "push", "--force"]);
    assert_eq!(parts[0].wrappers, ["sudo", "bash -c"]);
    assert_eq!(parts[1].words, ["echo", "ok"]);
    assert_eq!(
        words("eval 'rm -rf x'; ls"),
        w(&[&["rm", "-rf", "x"], &["ls"]])
    );
    // A string built at run time is not the command: the shell stays the program.
    let parts = split("sh -c \"$(curl -s x)\"").unwrap();
    assert_eq!(parts[0].words, ["curl", "-s", "x"]);
    assert_eq!(parts[1].words, ["sh", "-c", "$(curl -s x)"]);
    assert_eq!(parts[1].substitutions, [0]);
    assert_eq!(words("bash script.sh"), w(&[&["bash", "script.sh"]]));
}

#[test]
fn redirections_are_kept_apart_from_words() {
    let p = &split("cargo test 2>&1 >out.log < in.txt &>>all 2>/dev/null").unwrap()[0];
    assert_eq!(p.words, ["cargo", "test"]);
    let r: Vec<(&str, &str, bool, bool)> = p
        .redirects
        .iter()
        .map(|r| (r.op, r.target.as_str(), r.writes(), r.reads()))
        .collect();
    assert_eq!(
        r,
        [
            (">&", "1", false, false),
            (">", "out.log", true, false),
            ("<", "in.txt", false, true),
            ("&>>", "all", true, false),
            (">", "/dev/null", false, false),
        ]
    );
    assert_eq!(split("> x").unwrap()[0].words, Vec::<String>::new());
}

#[test]
fn what_cannot_be_followed_is_an_error() {
    for (line, code) in [
        ("echo \"abc", "unbalanced_quote"),
        ("echo 'abc", "unbalanced_quote"),
        ("echo `ls", "unbalanced_quote"),
        ("echo $(ls", "unclosed_paren"),
        ("(ls", "unclosed_paren"),
        ("ls )", "stray_paren"),
        ("cat <<EOF\nrm -rf /\nEOF", "unsupported"),
        ("f() { rm -rf /; }", "unsupported"),
        ("echo >", "unsupported"),
        ("echo ${x:-$(rm -rf /)}", "unsupported"),
        ("case x in a) rm;; esac", "stray_paren"),
    ] {
        match split(line) {
            Err(e) => assert_eq!(e.code(), code, "{line}: {e}"),
            Ok(p) => panic!("{line}: split into {p:?}"),
        }
    }
}

#[test]
fn bounds_are_enforced() {
    let long = "a".repeat(MAX_INPUT + 1);
    assert!(matches!(split(&long), Err(ParseError::TooLong { .. })));
    let many = "a;".repeat(MAX_PARTS + 1);
    assert!(matches!(split(&many), Err(ParseError::TooManyParts { .. })));
    assert_eq!(split(&"a;".repeat(MAX_PARTS)).unwrap().len(), MAX_PARTS);
    let deep = format!(
        "{}ls{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(split(&deep), Err(ParseError::TooDeep { .. })));
    let ok = format!("{}ls{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(words(&ok), w(&[&["ls"]]));
    let evals = format!("{}ls", "eval ".repeat(MAX_DEPTH + 1));
    assert!(matches!(split(&evals), Err(ParseError::TooDeep { .. })));
    let substs = format!("{}ls{}", "$(".repeat(50), ")".repeat(50));
    assert!(matches!(split(&substs), Err(ParseError::TooDeep { .. })));
}

/// Random lines over the characters the grammar cares about never panic, and any
/// split they have respects the bounds.
#[test]
fn generated_lines_never_panic() {
    const ALPHABET: &[&str] = &[
        " ", "a", "rm", "-rf", "/", "\"", "'", "\\", "$", "(", ")", "`", "{", "}", ";", "&", "|",
        "<", ">", "\n", "#", "=", "*", "sudo ", "sh -c ", "eval ", "$'", "\\x", "é", "2",
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..20_000 {
        let n = rng.usize(0..40);
        let line: String = (0..n)
            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
            .collect();
        if let Ok(parts) = split(&line) {
            assert!(parts.len() <= MAX_PARTS, "{line:?}");
            for p in &parts {
                assert!(!(p.words.is_empty() && p.redirects.is_empty()), "{line:?}");
                let _ = p.display();
            }
        }
    }
}

/// Any list of words, quoted with [`quote`] and joined, splits back into itself.
#[test]
fn quoted_words_round_trip() {
    const CHARS: &[char] = &[
        'a', 'Z', '0', ' ', '\'', '"', '\\', '$', '`', '(', ')', ';', '&', '|', '<', '>', '*', '#',
        '\n', '\t', '=', '~', 'é', '!', '{', '}',
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..5_000 {
        let mut list = vec!["cmd".to_owned()];
        for _ in 0..rng.usize(0..6) {
            let len = rng.usize(1..8);
            list.push((0..len).map(|_| CHARS[rng.usize(..CHARS.len())]).collect());
        }
        let line = list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let parts = split(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(parts.len(), 1, "{line:?}");
        assert_eq!(parts[0].words, list, "{line:?}");
    }
}
