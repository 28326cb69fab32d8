//! JWT credentials (HS256 or RS256) with the `jsonwebtoken` crate.
//!
//! Claims: `sub` (the identity), `role`, `exp` (required), and optionally `publish`
//! and `subscribe` (address globs), or `rooms` as a shorthand for both, and `approve`
//! and `manage` (see `permissions`). `iss` and `aud`
//! are checked when configured. The signature is checked before any claim is read.

use super::permissions::Permissions;
use super::roles::Role;
use super::{AuthError, Identity};
use jsonwebtoken::{decode, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// `[auth.jwt]`. Its `Debug` shows whether an inline secret is set, never the secret.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// `HS256` (shared secret) or `RS256` (public key).
    pub algorithm: JwtAlgorithm,
    /// HS256 secret, inline. Prefer `secret_env`.
    #[serde(skip_serializing)]
    pub secret: Option<String>,
    /// Name of the environment variable holding the HS256 secret.
    pub secret_env: Option<String>,
    /// PEM file holding the RS256 public key.
    pub public_key_file: Option<std::path::PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("public_key_file", &self.public_key_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    #[default]
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256 and a public key.
    RS256,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    approve: Option<Vec<String>>,
    #[serde(default)]
    manage: Option<Vec<String>>,
    exp: u64,
}

/// A ready verifier.
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// Loads the key.
    ///
    /// # Errors
    /// A sentence naming what is missing or unreadable.
    pub(crate) fn new(c: &JwtConfig) -> Result<Self, String> {
        let key = match c.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = match (&c.secret, &c.secret_env) {
                    (Some(s), _) => s.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .map_err(|_| format!("auth.jwt.secret_env: ${var} is not set"))?,
                    (None, None) => return Err("auth.jwt: HS256 needs secret or secret_env".into()),
                };
                if secret.len() < 16 {
                    return Err("auth.jwt: the HS256 secret must be at least 16 bytes".into());
                }
                DecodingKey::from_secret(secret.as_bytes())
            }
            JwtAlgorithm::RS256 => {
                let path = c
                    .public_key_file
                    .as_ref()
                    .ok_or("auth.jwt: RS256 needs public_key_file")?;
                let pem = std::fs::read(path)
                    .map_err(|e| format!("auth.jwt: cannot read {}: {e}", path.display()))?;
                DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| format!("auth.jwt: {}: {e}", path.display()))?
            }
        };
        let mut validation = Validation::new(match c.algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
        });
        validation.leeway = c.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &c.issuer {
            Some(i) => validation.set_issuer(&[i]),
            None => validation.iss = None,
        }
        match &c.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier { key, validation })
    }

    /// Verifies `token` and turns its claims into an identity.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data =
            decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    AuthError::BadSignature
                }
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::InvalidToken(e.to_string()),
            })?;
        let c = data.claims;
        super::check_subject(&c.sub)
            .map_err(|why| AuthError::InvalidToken(format!("`sub` {why}")))?;
        let role = Role::parse(&c.role).map_err(|e| AuthError::InvalidToken(e.message))?;
        let publish = c.publish.or_else(|| c.rooms.clone());
        let subscribe = c.subscribe.or(c.rooms);
        let permissions = Permissions::new(publish.as_deref(), subscribe.as_deref())
            .and_then(|p| p.with_rights(c.approve.as_deref(), c.manage.as_deref()))
            .map_err(|e| AuthError::InvalidToken(e.message))?;
        Ok(Identity {
            subject: c.sub,
            role,
            permissions,
            method: "jwt",
            expires_at: Some(c.exp),
        })
    }
}
