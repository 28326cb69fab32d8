//! The hostile-client test of `docs/SECURITY.md` ("Memory under hostile load"): a real
//! `hive broker` process, attacked by `examples/hostile` with every row of the
//! bad-input table at once (floods of large frames into many channels, readers that
//! never read, text expensive to redact, ids at and over the limit, more connections
//! than the anonymous cap). The broker's peak RSS must stay under the documented
//! bound for its configuration, and a well-behaved session must keep being answered.
//! Latency under attack is measured by `benches/hostile.sh`, not asserted here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configuration under attack: small budgets, so that the bound is tight enough
/// that dropping any one of them would break it.
const CONFIG: &str = r#"
[limits]
max_anonymous_sessions = 200

[bus]
history_bytes_total = 16777216        # 16 MiB
history_bytes_per_channel = 524288    # 512 KiB
outbound_queue_bytes = 262144         # 256 KiB
max_page_bytes = 65536

[safety]
mode = "enforce"
"#;

/// Peak RSS the broker may reach under the attack, for [`CONFIG`], by the formula of
/// `docs/SECURITY.md`: a fixed part (the binary, runtime, SQLite, the queue), history
/// at most its total, per busy session its buffers (the frame being read, the
/// outbound queue, the socket write buffer), and per idle session its small fixed cost.
/// The fixed part is the broker's own resident set once started (`at_rest`, measured:
/// the debug binary's mapped pages alone grow with every crate the tree gains) plus
/// 20 MiB of allocator slack; what the attack may add is the rest of the formula.
fn bound_bytes(at_rest: u64, busy: u64, idle: u64) -> u64 {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    let fixed = at_rest + 20 * MIB;
    let history = 16 * MIB;
    // Read: one 64 KiB frame (and tungstenite's copy of it); outbound: 256 KiB; write
    // buffer: 32 KiB + 2 x max_page_bytes + 4 x max_frame + 64 KiB.
    let busy_session = 2 * 64 * KIB + 256 * KIB + (32 + 128 + 256 + 64) * KIB;
    let idle_session = 16 * KIB;
    fixed + history + busy * busy_session + idle * idle_session
}

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hive() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hive"))
}

fn start(dir: &Path) -> Broker {
    let config = dir.join("hive.toml");
    std::fs::write(&config, CONFIG).unwrap();
    // A port the OS just gave out and took back: free unless something races for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(hive())
        .arg("--dir")
        .arg(dir)
        .args([
            "broker",
            "--no-logs",
            "--port",
            &port.to_string(),
            "--config",
        ])
        .arg(&config)
        .env_remove("HIVE_WS_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn the_broker_stays_under_its_memory_bound_and_answers_a_victim_under_every_attack_at_once() {
    let dir = std::env::temp_dir().join(format!("hivebus-hostile-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = start(&dir);
    let at_rest = peak_rss(broker.child.id());
    let hostile = hive().parent().unwrap().join("examples").join("hostile");
    assert!(
        hostile.exists(),
        "{} missing: run `cargo test` (it builds the examples)",
        hostile.display()
    );
    let (flooders, stalled, redactors, id_senders, conns) = (4, 20, 3, 4, 260);
    let out = Command::new(&hostile)
        .args(["--url", &format!("ws://127.0.0.1:{}/", broker.port)])
        .args(["--seconds", "4", "--channels", "200", "--frame-kb", "60"])
        .args(["--flooders", &flooders.to_string()])
        .args(["--stalled", &stalled.to_string()])
        .args(["--redactors", &redactors.to_string()])
        .args(["--id-senders", &id_senders.to_string()])
        .args(["--conns", &conns.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |p: &str| r.pointer(p).and_then(Value::as_u64).unwrap();
    // The attack happened: megabytes offered, frames refused for what they are.
    assert!(n("/flood/bytes") > 8 << 20, "{r}");
    assert!(n("/redaction/refused") > 0, "scan budget: {r}");
    assert!(n("/ids/refused") > 0, "ids over 128 bytes: {r}");
    assert!(n("/connections/refused") > 0, "anonymous cap: {r}");
    assert!(n("/connections/open") <= 200, "{r}");
    // The victim was answered every time.
    assert!(
        n("/victim/pings") > 0 && n("/victim/answered") == n("/victim/pings"),
        "{r}"
    );
    // The bound: the busy attackers, and at most the cap of idle ones plus the victim.
    let busy = flooders + stalled + redactors + id_senders;
    let peak = peak_rss(broker.child.id());
    let bound = bound_bytes(at_rest, busy, 200 + 1);
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB (at rest {} MiB): {r}",
        peak >> 20,
        bound >> 20,
        at_rest >> 20
    );
    eprintln!(
        "hostile: peak RSS {} MiB (bound {} MiB); {r}",
        peak >> 20,
        bound >> 20
    );
}
