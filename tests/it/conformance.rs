//! The protocol doc is enough to write a client: a Python client written from
//! `docs/PROTOCOL.md` alone (`tests/python/conformance.py`) runs against the real server
//! and validates every frame it receives against `docs/schema/`.

use crate::harness;
use hivebus::Config;
use std::time::Duration;

/// How long the Python client may take, start to end.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_follows_protocol_doc() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import websockets, jsonschema"])
        .output()
        .await;
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the conformance client needs Python packages: run `pip install websockets jsonschema`\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "python3 not found ({e}); install Python 3.11+ and `pip install websockets jsonschema`"
        ),
    }
    let server = harness::start(Config::default()).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let run = tokio::process::Command::new("python3")
        .arg(format!("{root}/tests/python/conformance.py"))
        .arg(server.url())
        .arg("--strict-schema")
        .current_dir(root)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(LIMIT, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run python3: {e}"),
        Err(_) => panic!("conformance client did not finish within {LIMIT:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    server.stop().await;
    assert!(
        out.status.success(),
        "conformance client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("conformance: ") && l.ends_with(" passed, 0 failed")),
        "no summary line in the output:\n{stdout}"
    );
}
