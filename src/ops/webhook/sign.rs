//! The signature a receiver verifies: HMAC-SHA256 with the registration's secret.
//!
//! Header `X-Hive-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is the
//! lower-case hex HMAC-SHA256, keyed by the registration's secret (its UTF-8 bytes),
//! of `<t>.<body>`: the decimal timestamp, a full stop, then the request body's exact
//! bytes. The timestamp is signed with the body, so a receiver that refuses a `t` more
//! than a few minutes from its clock (we suggest 5) refuses a replayed request, and one
//! cannot move an old body to a new time without the secret. Each attempt is signed
//! afresh (a retry carries a new `t`); `X-Hive-Delivery` stays the same across a
//! delivery's attempts, for receivers that also drop duplicates.
//!
//! Invariant: the bytes signed are the bytes sent; the worker signs the body it then
//! hands to the client unchanged.

use ring::hmac;

/// The signature header's name.
pub const HEADER: &str = "X-Hive-Signature";

/// The header value for `body` sent at `t` (unix seconds) with `secret`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex(ctx.sign().as_ref()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A new secret: `whsec_` and 32 random bytes in hex, from the system's CSPRNG.
///
/// # Errors
/// When the system's random source fails (never on a working system).
pub fn new_secret() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    Ok(format!("whsec_{}", hex(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231, test case 2: the known answer, hex as we print it.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let one_shot = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), b"17.{\"a\":1}");
        assert_eq!(
            signature("k", 17, b"{\"a\":1}"),
            format!("t=17,v1={}", hex(one_shot.as_ref()))
        );
    }

    #[test]
    fn secrets_are_fresh() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 6 + 64);
    }
}
