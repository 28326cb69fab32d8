//! Must-show 4: remote mode without auth refuses to start; JWTs that are expired or
//! wrongly signed are refused at handshake with `unauthorized` and close 4003; valid
//! credentials grant exactly their role; per-identity session limits.

use super::harness::{assert_error, reply_of, start, start_on};
use hivebus::Config;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const HS_SECRET: &str = "hs256-test-secret-0123456789abcdef";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/safety/keys");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: Value, key_file: &str) -> String {
    let pem = std::fs::read(format!("{KEYS}/{key_file}")).unwrap();
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn jwt_config(jwt: Value) -> Config {
    Config {
        auth: serde_json::from_value(json!({"jwt": jwt})).unwrap(),
        ..Default::default()
    }
}

fn hs_config() -> Config {
    jwt_config(json!({"algorithm": "HS256", "secret": HS_SECRET, "leeway_secs": 0}))
}

#[tokio::test]
async fn remote_mode_without_an_auth_method_refuses_to_start() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let bus = hivebus::Bus::new(Default::default()).unwrap();
    let started = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        hivebus::server::run(
            listener,
            bus,
            Default::default(),
            Default::default(),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("it must return at once, not serve");
    let err = started.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("auth"), "{err}");
}

#[tokio::test]
async fn remote_mode_refuses_a_hello_without_a_credential_with_4003() {
    let srv = start_on("0.0.0.0:0", hs_config()).await;
    let mut r = srv.raw().await;
    let e = r.send_hello("client", None).await;
    assert_error(&e, "unauthorized", Some("h"));
    assert_eq!(e["payload"]["details"]["reason"], "missing");
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn an_expired_jwt_is_refused_at_handshake_with_unauthorized_and_4003() {
    let srv = start_on("0.0.0.0:0", hs_config()).await;
    let token = hs256(
        json!({"sub": "bot", "role": "client", "exp": now() - 60}),
        HS_SECRET,
    );
    let mut r = srv.raw().await;
    let e = r.send_hello("client", Some(&token)).await;
    assert_error(&e, "unauthorized", Some("h"));
    assert_eq!(e["payload"]["details"]["reason"], "expired");
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn a_wrongly_signed_jwt_is_refused_at_handshake_with_unauthorized_and_4003() {
    let srv = start_on("0.0.0.0:0", hs_config()).await;
    let claims = json!({"sub": "bot", "role": "admin", "exp": now() + 600});
    let forged = hs256(claims.clone(), "not-the-server-secret-0123456789");
    let mut r = srv.raw().await;
    let e = r.send_hello("admin", Some(&forged)).await;
    assert_error(&e, "unauthorized", Some("h"));
    assert_eq!(e["payload"]["details"]["reason"], "invalid_signature");
    assert_eq!(r.closed_with().await, 4003);
    // An RS256 token is not accepted by an HS256 server (no algorithm confusion).
    let other = rs256(claims, "other_private.pem");
    let mut r = srv.raw().await;
    let e = r.send_hello("admin", Some(&other)).await;
    assert_error(&e, "unauthorized", Some("h"));
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn rs256_jwts_are_verified_with_the_public_key_and_grant_their_claims() {
    let config = jwt_config(json!({
        "algorithm": "RS256",
        "public_key_file": format!("{KEYS}/jwt_rs256_public.pem"),
        "issuer": "hive-ca",
    }));
    let srv = start_on("0.0.0.0:0", config).await;
    let claims = json!({"sub": "reviewer-7", "role": "consumer", "iss": "hive-ca",
                        "rooms": ["bip-43:*"], "exp": now() + 600});
    let good = rs256(claims.clone(), "jwt_rs256_private.pem");
    let mut s = srv.raw().await;
    let w = s.send_hello("consumer", Some(&good)).await;
    assert_eq!(w["type"], "WELCOME", "{w}");
    assert_eq!(w["payload"]["identity"]["subject"], "reviewer-7");
    assert_eq!(w["payload"]["identity"]["method"], "jwt");
    s.join("bip-43:review_bip").await;
    reply_of(
        &s.publish("e", "bip-43:review_bip", json!({"stage": "x"}))
            .await,
        "e",
    );
    let r = s
        .command("j", "join", json!({"address": "bip-44:review_bip"}))
        .await;
    assert_error(&r, "forbidden", Some("j"));
    // Signed by another key: refused.
    let mut r = srv.raw().await;
    let bad = rs256(claims.clone(), "other_private.pem");
    assert_error(
        &r.send_hello("consumer", Some(&bad)).await,
        "unauthorized",
        None,
    );
    assert_eq!(r.closed_with().await, 4003);
    // Wrong issuer: refused.
    let mut wrong_iss = claims;
    wrong_iss["iss"] = "someone-else".into();
    let mut r = srv.raw().await;
    let t = rs256(wrong_iss, "jwt_rs256_private.pem");
    let e = r.send_hello("consumer", Some(&t)).await;
    assert_eq!(e["payload"]["details"]["reason"], "invalid_token", "{e}");
    srv.stop().await;
}

#[tokio::test]
async fn a_hello_role_other_than_the_credentials_is_refused_with_4003() {
    let srv = start_on("0.0.0.0:0", hs_config()).await;
    let token = hs256(
        json!({"sub": "bot", "role": "client", "exp": now() + 600}),
        HS_SECRET,
    );
    let mut r = srv.raw().await;
    let e = r.send_hello("admin", Some(&token)).await;
    assert_error(&e, "forbidden", Some("h"));
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn static_tokens_from_the_environment_authenticate_and_unknown_ones_do_not() {
    std::env::set_var("HIVEBUS_TEST_ADMIN_TOKEN", "env-admin-token-0123456789");
    let c = Config {
        auth: serde_json::from_value(json!({"tokens": [
            {"token_env": "HIVEBUS_TEST_ADMIN_TOKEN", "subject": "ops", "role": "admin"}
        ]}))
        .unwrap(),
        ..Default::default()
    };
    let srv = start_on("0.0.0.0:0", c).await;
    let mut a = srv.hello("admin", Some("env-admin-token-0123456789")).await;
    reply_of(&a.command("g", "op.safety.get", json!({})).await, "g");
    let mut r = srv.raw().await;
    let e = r
        .send_hello("admin", Some("env-admin-token-012345678X"))
        .await;
    assert_eq!(e["payload"]["details"]["reason"], "unknown_token");
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn anonymous_sessions_share_one_cap_and_one_more_is_refused_with_4010() {
    let mut c = Config::default();
    c.limits.max_anonymous_sessions = 3;
    let srv = start(c).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(srv.hello("client", None).await);
    }
    let mut extra = srv.raw().await;
    let e = extra.send_hello("observer", None).await;
    assert_error(&e, "overloaded", Some("h"));
    assert_eq!(e["payload"]["details"]["max_anonymous_sessions"], 3);
    assert_eq!(extra.closed_with().await, 4010);
    drop(held);
    srv.stop().await;
}

#[tokio::test]
async fn one_session_more_than_max_sessions_per_identity_is_refused_with_4010() {
    let mut c = hs_config();
    c.limits.max_sessions_per_identity = 2;
    let srv = start_on("0.0.0.0:0", c).await;
    let token = hs256(
        json!({"sub": "bot", "role": "client", "exp": now() + 600}),
        HS_SECRET,
    );
    let a = srv.hello("client", Some(&token)).await;
    let _b = srv.hello("client", Some(&token)).await;
    let mut third = srv.raw().await;
    let e = third.send_hello("client", Some(&token)).await;
    assert_error(&e, "overloaded", Some("h"));
    assert_eq!(third.closed_with().await, 4010);
    // Another identity is not affected; a closed session frees its slot.
    let other = hs256(
        json!({"sub": "other", "role": "client", "exp": now() + 600}),
        HS_SECRET,
    );
    let _c = srv.hello("client", Some(&other)).await;
    drop(a);
    let mut freed = false;
    for _ in 0..50 {
        let mut r = srv.raw().await;
        if r.send_hello("client", Some(&token)).await["type"] == "WELCOME" {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the slot of a closed session is released");
    srv.stop().await;
}

#[tokio::test]
async fn a_session_is_closed_with_4003_when_its_jwt_expires() {
    let mut c = hs_config();
    c.server.ping_interval_ms = 100;
    let srv = start_on("0.0.0.0:0", c).await;
    let token = hs256(
        json!({"sub": "bot", "role": "client", "exp": now() + 2}),
        HS_SECRET,
    );
    let mut s = srv.hello("client", Some(&token)).await;
    let started = std::time::Instant::now();
    assert_eq!(s.closed_with().await, 4003);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "closed too early"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_jwt_not_yet_valid_is_refused_and_an_unknown_role_claim_too() {
    let srv = start_on("0.0.0.0:0", hs_config()).await;
    let early = hs256(
        json!({"sub": "bot", "role": "client", "nbf": now() + 600, "exp": now() + 1200}),
        HS_SECRET,
    );
    let mut r = srv.raw().await;
    let e = r.send_hello("client", Some(&early)).await;
    assert_eq!(e["payload"]["details"]["reason"], "not_yet_valid", "{e}");
    assert_eq!(r.closed_with().await, 4003);
    let root = hs256(
        json!({"sub": "bot", "role": "root", "exp": now() + 600}),
        HS_SECRET,
    );
    let mut r = srv.raw().await;
    let e = r.send_hello("client", Some(&root)).await;
    assert_eq!(e["payload"]["details"]["reason"], "invalid_token", "{e}");
    assert_eq!(r.closed_with().await, 4003);
    srv.stop().await;
}

#[tokio::test]
async fn no_credential_may_claim_the_anonymous_subject_or_an_unprintable_one() {
    // A JWT for `anonymous` would own every task a local session without a credential
    // submitted; one with a NUL or a space would be a name no listing shows truly.
    let srv = start(hs_config()).await;
    for sub in ["anonymous", "Anonymous", "a\u{0}b", "two words", ""] {
        let tok = hs256(
            json!({"sub": sub, "role": "client", "exp": now() + 600}),
            HS_SECRET,
        );
        let mut r = srv.raw().await;
        let e = r.send_hello("client", Some(&tok)).await;
        assert_error(&e, "unauthorized", Some("h"));
        assert_eq!(
            e["payload"]["details"]["reason"], "invalid_token",
            "{sub:?}"
        );
    }
    srv.stop().await;
    // A static token for it does not even load.
    let auth: hivebus::auth::AuthConfig = serde_json::from_value(json!({"tokens": [
        {"token": "tok-anon-0000000000", "subject": "anonymous", "role": "admin"}]}))
    .unwrap();
    let Err(err) = hivebus::auth::Authenticator::new(&auth, false) else {
        panic!("a static token for `anonymous` loaded");
    };
    assert!(err.contains("subject") && err.contains("reserved"), "{err}");
}
