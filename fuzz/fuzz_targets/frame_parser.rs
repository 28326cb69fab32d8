//! Fuzz target: the frame parser at the edge. Any text must parse into an envelope or
//! fail with an error code, never panic; a COMMAND's args must parse into a command or
//! fail the same way; a parsed envelope must survive a round trip through its text.
#![no_main]

use hivebus::cmd::Command;
use hivebus::frame::{Envelope, FrameType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(env) = Envelope::parse_peer(text) else {
        return;
    };
    let again = Envelope::parse_peer(&env.to_text()).expect("a parsed frame re-parses");
    assert_eq!(again, env);
    if env.kind == FrameType::Command {
        let name = env.payload["name"].as_str().unwrap_or_default();
        let _ = Command::parse(name, env.payload.get("args").cloned().unwrap_or_default());
    }
});
