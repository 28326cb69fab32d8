//! Authentication and access control: who a session is, what its role lets it send,
//! which addresses it may publish to and subscribe to, and how fast it may send.
//!
//! Local mode (the listener is on loopback): a credential is optional; a session
//! without one gets the role its HELLO names and no address limits. Remote mode (any
//! other address): the server refuses to start unless an auth method is configured,
//! and every session must present a credential in HELLO `auth`. A credential is a
//! static token from the config (inline or from an environment variable) or a JWT
//! (HS256 / RS256). Refusals at handshake are ERROR `unauthorized` (or `forbidden`)
//! then close 4003.
//!
//! # Layout
//! - [`authority`]: the one check of who may do what to which target.
//! - `roles`: the role table (frame types per role).
//! - `permissions`: per-credential publish / subscribe globs.
//! - `jwt`: JWT verification.
//! - `rate`: the per-session token bucket.

pub mod authority;
mod jwt;
mod permissions;
mod rate;
mod roles;
pub mod signature;

pub use jwt::{JwtAlgorithm, JwtConfig};
pub use permissions::Permissions;
pub use rate::TokenBucket;
pub use roles::{Role, ROLES};

use crate::error::{ErrorCode, WireError};
use serde::{Deserialize, Serialize};

/// `[auth]`: the auth methods.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a credential from every session even in local mode. Remote mode always
    /// requires one.
    pub required: bool,
    /// Static tokens.
    pub tokens: Vec<TokenConfig>,
    /// JWT verification, when set.
    pub jwt: Option<JwtConfig>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("subject", &self.subject)
            .field("role", &self.role)
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .field("approve", &self.approve)
            .field("manage", &self.manage)
            .field("declare_roles", &self.declare_roles)
            .field("public_key", &self.public_key)
            .finish()
    }
}

impl AuthConfig {
    /// Whether any method is configured.
    pub fn has_method(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some()
    }
}

/// One `[[auth.tokens]]` entry. Its `Debug` shows whether an inline token is set, never
/// the token: the aggregate config and `BrokerOptions` are `Debug` too.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The token, inline. Prefer `token_env`.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// Name of the environment variable holding the token.
    pub token_env: Option<String>,
    /// The identity it authenticates (used for per-identity limits and in logs).
    pub subject: String,
    /// The role it grants.
    pub role: String,
    /// Address globs it may publish to; absent means all.
    pub publish: Option<Vec<String>>,
    /// Address globs it may subscribe to and read; absent means all.
    pub subscribe: Option<Vec<String>>,
    /// Address globs where it may decide approvals; absent means its `publish` list.
    pub approve: Option<Vec<String>>,
    /// Address globs where it may cancel, retry and requeue other identities' tasks;
    /// absent means none (its own tasks only).
    pub manage: Option<Vec<String>>,
    /// Routing roles its sessions may declare in HELLO (`roles`); absent means any.
    /// What makes `roles.<role>` rooms and `to_roles` trustworthy in remote mode.
    pub declare_roles: Option<Vec<String>>,
    /// The identity's ed25519 public key (32 bytes, standard base64): its sessions'
    /// signed envelopes are verified with it (`docs/PROTOCOL.md`, "Signed envelopes").
    pub public_key: Option<String>,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential, and one is required.
    #[error("a credential is required in HELLO `auth`")]
    Missing,
    /// The static token is not known.
    #[error("unknown token")]
    UnknownToken,
    /// The JWT's `exp` is past.
    #[error("token expired")]
    Expired,
    /// The JWT's `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The JWT's signature does not verify (or uses another algorithm).
    #[error("token signature is invalid")]
    BadSignature,
    /// The JWT is malformed or its claims are not usable.
    #[error("invalid token: {0}")]
    InvalidToken(String),
}

impl AuthError {
    /// The stable `details.reason` of the `unauthorized` error.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::UnknownToken => "unknown_token",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::BadSignature => "invalid_signature",
            AuthError::InvalidToken(_) => "invalid_token",
        }
    }
}

impl From<AuthError> for WireError {
    fn from(e: AuthError) -> Self {
        WireError::new(ErrorCode::Unauthorized, e.to_string())
            .with_details(serde_json::json!({"reason": e.reason()}))
    }
}

/// Who a session is, once authenticated.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// The credential's subject; `None`-like `anonymous` for local sessions without one.
    pub subject: String,
    /// The role.
    pub role: Role,
    /// Address permissions.
    pub permissions: Permissions,
    /// `token`, `jwt` or `none`.
    pub method: &'static str,
    /// JWT expiry (seconds since the epoch), when the credential has one.
    pub expires_at: Option<u64>,
}

/// The subject of sessions without a credential. No credential may claim it: it owns
/// every task such a session submits.
pub const ANONYMOUS: &str = "anonymous";

/// Checks a credential's subject: it names an owner (of tasks, of sessions against
/// `max_sessions_per_identity`) and is shown in listings and logs, so it is 1 to 128
/// bytes without whitespace or control characters, and never [`ANONYMOUS`].
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() || subject.len() > 128 {
        return Err(format!("must be 1 to 128 bytes, not {}", subject.len()));
    }
    if subject.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    if subject.eq_ignore_ascii_case(ANONYMOUS) {
        return Err(format!(
            "`{ANONYMOUS}` is reserved for sessions without a credential"
        ));
    }
    Ok(())
}

impl Identity {
    /// Whether this identity came from a credential (and so counts against
    /// `max_sessions_per_identity`).
    pub fn is_authenticated(&self) -> bool {
        self.method != "none"
    }
}

struct StaticToken {
    token: String,
    identity: Identity,
}

/// Verifies HELLO credentials against the configured methods.
pub struct Authenticator {
    required: bool,
    tokens: Vec<StaticToken>,
    jwt: Option<jwt::JwtVerifier>,
}

impl Authenticator {
    /// Resolves tokens from the environment and loads JWT keys. `remote` makes a
    /// credential required.
    ///
    /// # Errors
    /// A sentence naming the missing variable, unreadable key or bad entry.
    pub fn new(c: &AuthConfig, remote: bool) -> Result<Authenticator, String> {
        let mut tokens = Vec::new();
        for (i, t) in c.tokens.iter().enumerate() {
            let token = match (&t.token, &t.token_env) {
                (Some(v), _) => v.clone(),
                (None, Some(var)) => std::env::var(var)
                    .map_err(|_| format!("auth.tokens[{i}].token_env: ${var} is not set"))?,
                (None, None) => return Err(format!("auth.tokens[{i}]: token or token_env")),
            };
            if token.len() < 16 {
                return Err(format!(
                    "auth.tokens[{i}]: tokens must be at least 16 bytes"
                ));
            }
            check_subject(&t.subject).map_err(|why| format!("auth.tokens[{i}].subject: {why}"))?;
            let role =
                Role::parse(&t.role).map_err(|e| format!("auth.tokens[{i}]: {}", e.message))?;
            let permissions = Permissions::new(t.publish.as_deref(), t.subscribe.as_deref())
                .and_then(|p| p.with_rights(t.approve.as_deref(), t.manage.as_deref()))
                .map(|p| p.with_declarable_roles(t.declare_roles.as_deref()))
                .map_err(|e| format!("auth.tokens[{i}]: {}", e.message))?;
            tokens.push(StaticToken {
                token,
                identity: Identity {
                    subject: t.subject.clone(),
                    role,
                    permissions,
                    method: "token",
                    expires_at: None,
                },
            });
        }
        let jwt = c.jwt.as_ref().map(jwt::JwtVerifier::new).transpose()?;
        Ok(Authenticator {
            required: c.required || remote,
            tokens,
            jwt,
        })
    }

    /// Whether any method is configured.
    pub fn has_method(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some()
    }

    /// The identity of a session whose HELLO named `role` and carried `auth`.
    ///
    /// # Errors
    /// `unauthorized` (with `details.reason`) for a missing or bad credential;
    /// `forbidden` when the HELLO role differs from the credential's; `invalid_field`
    /// for an unknown role.
    pub fn authenticate(&self, role: &str, auth: Option<&str>) -> Result<Identity, WireError> {
        let asked = Role::parse(role)?;
        let Some(cred) = auth.map(|a| a.strip_prefix("Bearer ").unwrap_or(a)) else {
            if self.required {
                return Err(AuthError::Missing.into());
            }
            return Ok(Identity {
                subject: ANONYMOUS.into(),
                role: asked,
                permissions: Permissions::all(),
                method: "none",
                expires_at: None,
            });
        };
        let id = self.verify(cred)?;
        if id.role != asked {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!(
                    "the credential grants role {}, not {}",
                    id.role.as_str(),
                    asked.as_str()
                ),
            )
            .with_details(serde_json::json!({"reason": "role_mismatch"})));
        }
        Ok(id)
    }

    fn verify(&self, cred: &str) -> Result<Identity, AuthError> {
        // Every static token is compared, in constant time, so that timing tells
        // nothing about which prefix matched.
        let mut found = None;
        for t in &self.tokens {
            if ct_eq(t.token.as_bytes(), cred.as_bytes()) {
                found = Some(t.identity.clone());
            }
        }
        if let Some(id) = found {
            return Ok(id);
        }
        match &self.jwt {
            Some(j) if cred.split('.').count() == 3 => j.verify(cred),
            _ => Err(AuthError::UnknownToken),
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("required", &self.required)
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            required: false,
            tokens: vec![TokenConfig {
                token: Some("tok-client-0123456789".into()),
                subject: "ci".into(),
                role: "client".into(),
                publish: Some(vec!["bip-*:*".into()]),
                ..Default::default()
            }],
            jwt: None,
        }
    }

    #[test]
    fn debug_of_the_auth_config_never_shows_a_token_or_secret() {
        let mut c = config();
        c.jwt = Some(JwtConfig {
            secret: Some("hs256-secret-0123456789".into()),
            ..Default::default()
        });
        let shown = format!("{c:?}");
        assert!(!shown.contains("tok-client-0123456789"), "{shown}");
        assert!(!shown.contains("hs256-secret-0123456789"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("ci"),
            "{shown}"
        );
    }

    #[test]
    fn local_mode_trusts_hello_and_remote_mode_needs_a_credential() {
        let local = Authenticator::new(&config(), false).unwrap();
        assert_eq!(local.authenticate("admin", None).unwrap().role, Role::Admin);
        let remote = Authenticator::new(&config(), true).unwrap();
        let e = remote.authenticate("client", None).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        let id = remote
            .authenticate("client", Some("tok-client-0123456789"))
            .unwrap();
        assert_eq!((id.subject.as_str(), id.method), ("ci", "token"));
        let e = remote
            .authenticate("admin", Some("tok-client-0123456789"))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let e = remote
            .authenticate("client", Some("nope-nope-nope-nope"))
            .unwrap_err();
        assert_eq!(e.details.unwrap()["reason"], "unknown_token");
    }

    #[test]
    fn short_tokens_and_unset_env_vars_refuse_to_start() {
        let mut c = config();
        c.tokens[0].token = Some("short".into());
        assert!(Authenticator::new(&c, false).is_err());
        c.tokens[0].token = None;
        c.tokens[0].token_env = Some("HIVEBUS_TEST_UNSET_VAR_XYZ".into());
        assert!(Authenticator::new(&c, false).is_err());
    }
}
