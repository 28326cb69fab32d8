//! Signed envelopes over the wire: a verified publish is delivered stamped with its
//! signer; a forged, a tampered, an expired and a replayed one are refused with their
//! codes; an address that requires signatures refuses unsigned publishes; a peer
//! cannot stamp `signer` itself. The signed bytes are written out by hand here, from
//! `docs/PROTOCOL.md`, not produced by the code under test.

use super::harness::{assert_error, reply_of, start, Raw};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use hivebus::Config;
use serde_json::{json, Value};

const BOT: &str = "sig-bot-token-0123456789";
const PLAIN: &str = "sig-plain-token-0123456789";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn config() -> Config {
    serde_json::from_value(json!({
        "auth": {"tokens": [
            {"token": BOT, "subject": "bot", "role": "client",
             "public_key": b64(key(7).verifying_key().as_bytes())},
            {"token": PLAIN, "subject": "plain", "role": "client"},
        ]},
        "signatures": {"require": ["signed:*"], "window_secs": 30},
    }))
    .unwrap()
}

/// The canonical form of a MESSAGE to `signed:news` without traceId, payload
/// `{"text": .., "n": ..}` (keys sorted: `n` before `text`).
fn signed_bytes(ts: u64, nonce: &str, text: &str, n: u64) -> Vec<u8> {
    format!(
        "hivebus-sig-v1\nMESSAGE\nsigned\nnews\n\n{ts}\n{nonce}\n{{\"n\":{n},\"text\":\"{text}\"}}"
    )
    .into_bytes()
}

fn frame(id: &str, sig: Value, text: &str, n: u64) -> Value {
    json!({"id": id, "type": "MESSAGE", "room": "signed:news",
           "payload": {"text": text, "n": n}, "sig": sig})
}

fn sig(signer: &SigningKey, ts: u64, nonce: &str, text: &str, n: u64) -> Value {
    let s = signer.sign(&signed_bytes(ts, nonce, text, n));
    json!({"alg": "ed25519", "ts": ts, "nonce": nonce, "value": b64(&s.to_bytes())})
}

async fn published(r: &mut Raw, id: &str) -> Value {
    let v = r.recv().await;
    reply_of(&v, id).clone()
}

#[tokio::test]
async fn a_verified_publish_is_stamped_and_bad_ones_are_refused_with_their_codes() {
    let srv = start(config()).await;
    let mut reader = srv.hello("client", Some(PLAIN)).await;
    reader.join("signed:*").await;
    let mut bot = srv.hello("client", Some(BOT)).await;
    bot.join("signed:news").await;
    let ts = now_ms();

    // Verified: delivered with the sig and the broker's `signer`.
    bot.send(frame(
        "ok",
        sig(&key(7), ts, "nonce-0001", "hi", 1),
        "hi",
        1,
    ))
    .await;
    published(&mut bot, "ok").await;
    let got = reader.recv().await;
    assert_eq!(got["signer"], "bot", "{got}");
    assert_eq!(got["sig"]["nonce"], "nonce-0001");

    // Forged: signed with a key that is not bot's.
    bot.send(frame(
        "forged",
        sig(&key(9), ts, "nonce-0002", "hi", 1),
        "hi",
        1,
    ))
    .await;
    let e = bot.recv().await;
    assert_error(&e, "bad_signature", Some("forged"));
    assert_eq!(e["payload"]["details"]["reason"], "mismatch");

    // Tampered: a valid signature over n = 1, sent with n = 2.
    bot.send(frame(
        "tampered",
        sig(&key(7), ts, "nonce-0003", "hi", 1),
        "hi",
        2,
    ))
    .await;
    assert_error(&bot.recv().await, "bad_signature", Some("tampered"));

    // Replayed outside the window: signed 10 minutes ago.
    let old = ts - 600_000;
    bot.send(frame(
        "old",
        sig(&key(7), old, "nonce-0004", "hi", 1),
        "hi",
        1,
    ))
    .await;
    assert_error(&bot.recv().await, "signature_expired", Some("old"));

    // Replayed inside the window: the first frame again, byte for byte.
    bot.send(frame(
        "again",
        sig(&key(7), ts, "nonce-0001", "hi", 1),
        "hi",
        1,
    ))
    .await;
    assert_error(&bot.recv().await, "signature_replayed", Some("again"));

    // Unsigned, where signatures are required.
    bot.send(json!({"id": "bare", "type": "MESSAGE", "room": "signed:news", "payload": {}}))
        .await;
    assert_error(&bot.recv().await, "signature_required", Some("bare"));

    // A session whose identity has no key cannot sign.
    let mut plain = srv.hello("client", Some(PLAIN)).await;
    plain.join("open:news").await;
    plain
        .send(frame(
            "nokey",
            sig(&key(7), ts, "nonce-0005", "hi", 1),
            "hi",
            1,
        ))
        .await;
    let e = plain.recv().await;
    assert_error(&e, "bad_signature", Some("nokey"));
    assert_eq!(e["payload"]["details"]["reason"], "no_key");

    // None of the refused frames reached the reader: the next it gets is the next
    // verified one.
    bot.send(frame(
        "ok2",
        sig(&key(7), ts, "nonce-0006", "bye", 3),
        "bye",
        3,
    ))
    .await;
    published(&mut bot, "ok2").await;
    let got = reader.recv().await;
    assert_eq!(got["payload"]["n"], 3, "{got}");
    assert_eq!(got["signer"], "bot");

    let mut other = srv.hello("client", Some(PLAIN)).await;
    other.join("open:*").await;
    // A peer's own `signer` is not read: an unsigned publish elsewhere is unmarked.
    plain
        .send(
            json!({"id": "claim", "type": "MESSAGE", "room": "open:news",
                     "signer": "bot", "payload": {"x": 1}}),
        )
        .await;
    published(&mut plain, "claim").await;
    let got = other.recv().await;
    assert!(got.get("signer").is_none(), "{got}");
    srv.stop().await;
}
