//! Signed envelopes: an identity that registered an ed25519 public key signs what it
//! publishes, the broker verifies before accepting, and stamps `signer` on what it
//! delivers; an address may require signatures.
//!
//! The signed bytes ([`canonical`]) are, joined by `\n`: `hivebus-sig-v1`, the frame
//! type, the room, the channel (of the address as resolved: `room: "a:b"` and
//! `room: "a", channel: "b"` sign the same), the traceId (empty when none),
//! `sig.ts`, `sig.nonce`, and the payload as canonical JSON (object keys sorted by
//! their UTF-8 bytes at every depth, no whitespace, strings escaped as JSON requires,
//! numbers as serde_json writes them). Routing fields are signed, so a signed frame
//! cannot be replayed into another channel; `ts` and `nonce` bound replays in time
//! and within the window.
//!
//! Invariants: a frame with `sig` is accepted only if the key registered for the
//! sending session's own identity verifies it (a session never signs as another);
//! `ts` is within [`SignatureConfig::window_secs`] of the broker's clock; its nonce
//! was not seen from that identity within the window; the nonces remembered are at
//! most [`SignatureConfig::max_nonces_per_identity`] per identity (beyond that,
//! signed frames of that identity are refused `rate_limited` until old ones expire:
//! never forgotten early, which would reopen the replay window).

use super::AuthConfig;
use crate::address::{Address, Pattern};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, Sig};
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// `[signatures]`: which addresses require signed publishes, and the replay bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignatureConfig {
    /// Address patterns (`room:channel`, wildcards as in subscriptions) where an
    /// unsigned publish is refused `signature_required`.
    pub require: Vec<String>,
    /// How far `sig.ts` may be from the broker's clock, either way (default 60).
    pub window_secs: u64,
    /// Nonces remembered per identity within the window (default 4096).
    pub max_nonces_per_identity: usize,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            require: Vec::new(),
            window_secs: 60,
            max_nonces_per_identity: 4096,
        }
    }
}

/// Nonces of one identity, oldest first.
#[derive(Default)]
struct Seen {
    order: VecDeque<(u64, String)>,
    set: HashSet<String>,
}

/// The registered keys, the required addresses and the replay memory.
pub struct Signatures {
    keys: HashMap<String, VerifyingKey>,
    require: Vec<Pattern>,
    window_ms: u64,
    max_nonces: usize,
    seen: Mutex<HashMap<String, Seen>>,
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signatures")
            .field("keys", &self.keys.len())
            .field("require", &self.require.len())
            .finish()
    }
}

impl Signatures {
    /// Keys from the `public_key` of each `[[auth.tokens]]` entry, requirements from
    /// `config`. `None` when there is neither a key nor a requirement: then nothing
    /// is checked, and a frame's `sig` is refused as from a sender without a key.
    ///
    /// # Errors
    /// A sentence naming the token subject whose key is not 32 bytes of base64, or
    /// the pattern that does not parse.
    pub fn from_config(config: &SignatureConfig, auth: &AuthConfig) -> Result<Signatures, String> {
        let mut keys = HashMap::new();
        for t in &auth.tokens {
            let Some(k) = &t.public_key else { continue };
            let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    format!(
                        "token `{}`: public_key must be 32 bytes in standard base64",
                        t.subject
                    )
                })?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| format!("token `{}`: public_key is not an ed25519 key", t.subject))?;
            keys.insert(t.subject.clone(), key);
        }
        let require = config
            .require
            .iter()
            .map(|p| Pattern::parse(p).map_err(|e| format!("[signatures] require `{p}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Signatures {
            keys,
            require,
            window_ms: config.window_secs.saturating_mul(1000),
            max_nonces: config.max_nonces_per_identity.max(1),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Whether anything is configured (no keys and no requirement: nothing to check).
    pub fn is_active(&self) -> bool {
        !self.keys.is_empty() || !self.require.is_empty()
    }

    /// Checks a publish of `env` to `addr` by a session of `subject` at `now_ms`;
    /// stamps `env.signer` when its signature verified.
    ///
    /// # Errors
    /// `signature_required`, `bad_signature`, `signature_expired`,
    /// `signature_replayed`, `invalid_field` (a malformed `sig`), `rate_limited`.
    pub fn check(
        &self,
        subject: &str,
        addr: &Address,
        env: &mut Envelope,
        now_ms: u64,
    ) -> Result<(), WireError> {
        let Some(sig) = env.sig.as_deref() else {
            if self.require.iter().any(|p| p.matches(addr)) {
                return Err(WireError::new(
                    ErrorCode::SignatureRequired,
                    format!("`{addr}` takes signed publishes only: add `sig` (docs/PROTOCOL.md, \"Signed envelopes\")"),
                )
                .with_details(json!({"address": addr.to_string()})));
            }
            return Ok(());
        };
        let bad = |reason: &str, msg: String| {
            WireError::new(ErrorCode::BadSignature, msg).with_details(json!({"reason": reason}))
        };
        let malformed = |msg: &str| {
            WireError::new(ErrorCode::InvalidField, format!("`sig`: {msg}"))
                .with_details(json!({"field": "sig"}))
        };
        if sig.alg != "ed25519" {
            return Err(malformed("`alg` must be \"ed25519\""));
        }
        let nonce_ok = (8..=64).contains(&sig.nonce.len())
            && sig
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !nonce_ok {
            return Err(malformed("`nonce` must be 8 to 64 of A-Z a-z 0-9 _ -"));
        }
        let value: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(&sig.value)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("`value` must be 64 bytes in standard base64"))?;
        let key = self.keys.get(subject).ok_or_else(|| {
            bad(
                "no_key",
                format!("identity `{subject}` has no public key: register one (`public_key` on its token)"),
            )
        })?;
        if sig.ts.abs_diff(now_ms) > self.window_ms {
            return Err(WireError::new(
                ErrorCode::SignatureExpired,
                format!(
                    "`sig.ts` is {} s from the broker's clock; the window is {} s",
                    sig.ts.abs_diff(now_ms) / 1000,
                    self.window_ms / 1000
                ),
            ));
        }
        let bytes = canonical(env, addr, sig);
        key.verify_strict(&bytes, &Signature::from_bytes(&value))
            .map_err(|_| {
                bad(
                    "mismatch",
                    "the signature does not verify with the sender's key: forged, or changed after signing".into(),
                )
            })?;
        self.remember(subject, &sig.nonce, now_ms)?;
        env.signer = Some(subject.to_owned());
        Ok(())
    }

    /// Remembers a verified nonce, refusing one seen within the window.
    fn remember(&self, subject: &str, nonce: &str, now_ms: u64) -> Result<(), WireError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| WireError::new(ErrorCode::Internal, "replay memory poisoned"))?;
        let s = seen.entry(subject.to_owned()).or_default();
        // Anything older than twice the window can no longer pass the `ts` check.
        let horizon = now_ms.saturating_sub(2 * self.window_ms);
        while s.order.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, n)) = s.order.pop_front() {
                s.set.remove(&n);
            }
        }
        if s.set.contains(nonce) {
            return Err(WireError::new(
                ErrorCode::SignatureReplayed,
                "this `sig.nonce` was already used: sign each frame with a new nonce",
            ));
        }
        if s.order.len() >= self.max_nonces {
            return Err(WireError::new(
                ErrorCode::RateLimited,
                format!(
                    "over {} signed frames within the replay window for `{subject}`",
                    self.max_nonces
                ),
            ));
        }
        s.order.push_back((now_ms, nonce.to_owned()));
        s.set.insert(nonce.to_owned());
        Ok(())
    }
}

/// The bytes a signature covers (see the module docs).
pub fn canonical(env: &Envelope, addr: &Address, sig: &Sig) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for part in [
        "hivebus-sig-v1",
        env.kind.as_str(),
        addr.room(),
        addr.channel(),
        env.trace_id.as_deref().unwrap_or(""),
    ] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(sig.ts.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(sig.nonce.as_bytes());
    out.push(b'\n');
    canonical_json(&env.payload, &mut out);
    out
}

/// `v` as canonical JSON: keys sorted by bytes at every depth, no whitespace.
fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                canonical_json(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
}
