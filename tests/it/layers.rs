//! The layer order of `docs/ARCHITECTURE.md` ("Layers") holds in `src/`, and the check
//! that says so (`.ci/layers.py`) can fail: a copy of the sources with an operator
//! imported into the bus core, inline and by `use`, is refused with file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(root: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/layers.py");
    Command::new("python3")
        .arg(script)
        .arg(root)
        .output()
        .expect("python3 runs (.ci/run installs it; the conformance test needs it too)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn no_module_uses_a_later_layer() {
    let out = check(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_operator_imported_into_the_bus_core_fails_the_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp: PathBuf = std::env::temp_dir().join(format!("hivebus-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(&root.join("src"), &tmp.join("src"));
    copy_dir(&root.join("docs"), &tmp.join("docs"));
    let bus = tmp.join("src/bus/mod.rs");
    let mut code = std::fs::read_to_string(&bus).unwrap();
    code.push_str("\nuse crate::ops::Operators;\n");
    code.push_str("fn _inline(_: crate::ops::queue::QueueConfig) {}\n");
    std::fs::write(&bus, code).unwrap();
    let out = check(&tmp);
    let said = text(&out);
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("src/bus/mod.rs:"), "{said}");
    assert!(said.contains("crate::ops::Operators"), "{said}");
    assert!(said.contains("crate::ops::queue::QueueConfig"), "{said}");
}
