//! A `hive mcp` child process spoken to by hand: newline-delimited JSON-RPC on its
//! stdin, its stdout read line by line on a thread (every line must be JSON-RPC),
//! answers matched to requests by id.

use crate::cli::{hive, Reaped};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The revision the tests speak: the newest with an `initialize` handshake, which
/// the MCP clients in use today send.
pub const REVISION: &str = "2025-11-25";

/// A `hive mcp` child and its JSON-RPC lines.
pub struct Mcp {
    _child: Reaped,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// Answers read while waiting for another id.
    early: Vec<Value>,
    next_id: u64,
}

impl Mcp {
    pub fn start(dir: &Path, token: Option<&str>) -> Mcp {
        Mcp::start_with(dir, token, json!({}))
    }

    /// Starts `hive mcp` and handshakes, declaring the client capabilities `caps`.
    pub fn start_with(dir: &Path, token: Option<&str>, caps: Value) -> Mcp {
        let mut m = Mcp::spawn(dir, token);
        let init = m.request(
            "initialize",
            json!({"protocolVersion": REVISION, "capabilities": caps,
                   "clientInfo": {"name": "hivebus-test", "version": "1"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], REVISION, "{init}");
        assert_eq!(init["result"]["serverInfo"]["name"], "hive", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        assert!(
            init["result"]["capabilities"]["resources"].is_object(),
            "{init}"
        );
        m.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        m
    }

    /// Starts `hive mcp` without a handshake.
    pub fn spawn(dir: &Path, token: Option<&str>) -> Mcp {
        let mut cmd = Command::new(hive());
        cmd.arg("--dir")
            .arg(dir)
            .arg("mcp")
            .arg("--config")
            .arg(dir.join("hive.toml"))
            .args(["--permission-wait", "60s"])
            .env_remove("HIVE_WS_PORT")
            .env_remove("HIVE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = token {
            cmd.env("HIVE_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout is not JSON-RPC ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut m = Mcp {
            _child: Reaped(child),
            stdin,
            lines,
            early: Vec::new(),
            next_id: 1,
        };
        let init = m.request(
            "initialize",
            json!({"protocolVersion": REVISION, "capabilities": {},
                   "clientInfo": {"name": "hivebus-test", "version": "1"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], REVISION, "{init}");
        assert_eq!(init["result"]["serverInfo"]["name"], "hive", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        assert!(
            init["result"]["capabilities"]["resources"].is_object(),
            "{init}"
        );
        m.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        m
    }

    pub fn send(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request; returns its id.
    pub fn ask(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The response to `id` (notifications and other answers are kept aside).
    pub fn answer(&mut self, id: u64) -> Value {
        if let Some(i) = self.early.iter().position(|v| v["id"] == id) {
            return self.early.remove(i);
        }
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no answer to request {id}"));
            if v["id"] == id {
                return v;
            }
            if v.get("id").is_some() {
                self.early.push(v);
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.ask(method, params);
        self.answer(id)
    }

    /// A tool call's `result` (a JSON-RPC error fails the test).
    pub fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert!(r.get("error").is_none(), "{tool}: {r}");
        r["result"].clone()
    }

    /// A tool call that must succeed: its structured content.
    pub fn ok(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args);
        assert_eq!(r["isError"], false, "{tool}: {r}");
        r["structuredContent"].clone()
    }

    /// A tool call that must fail with `code`: its structured content.
    pub fn refused(&mut self, tool: &str, args: Value, code: &str) -> Value {
        let r = self.call(tool, args);
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert_eq!(r["structuredContent"]["code"], code, "{tool}: {r}");
        assert!(
            r["content"][0]["text"].as_str().unwrap().starts_with(code),
            "{r}"
        );
        r["structuredContent"].clone()
    }

    /// `approval_prompt`'s answer, parsed from its JSON text as Claude Code does.
    pub fn prompt_answer(r: &Value) -> Value {
        assert_eq!(r["result"]["isError"], false, "{r}");
        serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
    }
}
