//! The configuration examples in `docs/SECURITY.md` parse and compile, so the docs
//! cannot drift from the code; `op.safety.reload` without a policy re-reads the file.

use hivebus::safety::{Mode, Redactor, Safety, SafetyConfig};
use hivebus::Config;

fn toml_blocks(md: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in md.lines() {
        match (inside, line.trim_start()) {
            (false, "```toml") => inside = true,
            (true, "```") => inside = false,
            (true, _) => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_config_examples_in_security_md_parse_and_the_policy_compiles() {
    let text = toml_blocks(include_str!("../../docs/SECURITY.md"));
    assert!(
        text.contains("[safety]") && text.contains("[auth.jwt]") && text.contains("[server.tls]")
    );
    let c: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.safety.mode, Mode::Enforce);
    assert_eq!(c.limits.max_sessions_per_identity, 64);
    assert!(c.server.tls.is_some());
    let r = Redactor::compile(c.safety).unwrap();
    assert_eq!(&r.rule_names()[..2], &["ticket", "private_key"]);
    assert!(!r.rule_names().contains(&"basic_auth"));
}

#[test]
fn reload_without_a_policy_rereads_the_config_file() {
    let path = std::env::temp_dir().join(format!("hivebus-safety-{}.toml", std::process::id()));
    std::fs::write(&path, "[safety]\nmode = \"monitor\"\n").unwrap();
    let s = Safety::from_file(SafetyConfig::with_mode(Mode::Off), path.clone()).unwrap();
    assert_eq!(s.active().mode(), Mode::Off);
    s.reload_from_source().unwrap();
    assert_eq!(s.active().mode(), Mode::Monitor);
    std::fs::write(&path, "[safety]\nmode = \"nonsense\"\n").unwrap();
    assert!(s.reload_from_source().is_err());
    assert_eq!(
        s.active().mode(),
        Mode::Monitor,
        "a bad file leaves the policy in place"
    );
    let _ = std::fs::remove_file(&path);
}
