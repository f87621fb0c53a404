//! Token verification: which user a JWT names, and in which role.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use labchat_domain::{Role, Timestamp, User, UserId};
use serde_json::{Map, Value};

/// The algorithms labchat accepts, one at a time, fixed by configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256, verified with a PEM public key.
    Rs256,
    /// ECDSA P-256 with SHA-256, verified with a PEM public key.
    Es256,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

/// The key material can not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT key for {alg:?}: {source}")]
pub struct KeyError {
    alg: JwtAlgorithm,
    #[source]
    source: jsonwebtoken::errors::Error,
}

/// Why a handshake's token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one that is malformed, badly signed, of another algorithm, expired, not yet
    /// valid, or missing a required claim. Answered with HTTP 401.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role is not one labchat serves. Answered with HTTP 403.
    #[error("{0}")]
    Forbidden(String),
}

/// A verified token: its user and when it expires.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Principal {
    /// The user, from `sub` and the role claim.
    pub user: User,
    /// The token's `exp`.
    pub expires_at: Timestamp,
}

/// Verifies JWTs with one fixed algorithm and key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("role_claim", &self.role_claim)
            .finish_non_exhaustive()
    }
}

/// What to verify tokens with.
#[derive(Clone)]
pub struct AuthSettings {
    /// The one accepted algorithm.
    pub algorithm: JwtAlgorithm,
    /// The HS256 secret, or the PEM public key for RS256/ES256.
    pub key: Vec<u8>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// The claim that holds the role (default `role`).
    pub role_claim: String,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("role_claim", &self.role_claim)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for these settings; fails if the key does not suit the algorithm.
    pub fn new(settings: &AuthSettings) -> Result<Self, KeyError> {
        let alg = settings.algorithm;
        let key = match alg {
            JwtAlgorithm::Hs256 => Ok(DecodingKey::from_secret(&settings.key)),
            JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&settings.key),
            JwtAlgorithm::Es256 => DecodingKey::from_ec_pem(&settings.key),
        }
        .map_err(|source| KeyError { alg, source })?;
        let mut validation = Validation::new(alg.jwt());
        validation.algorithms = vec![alg.jwt()];
        let mut required = vec!["exp", "sub"];
        if settings.issuer.is_some() {
            required.push("iss");
        }
        if settings.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        match &settings.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation, role_claim: settings.role_claim.clone() })
    }

    /// Verifies a token and reads its user. The token itself never reaches a log.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Unauthorized(describe(&e)))?;
        let claims = data.claims;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(AuthError::Unauthorized("token claim sub must be a string".into())),
        };
        let user_id = UserId::parse(sub).map_err(|e| AuthError::Unauthorized(format!("token claim sub: {e}")))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| AuthError::Unauthorized("token claim exp must be a number".into()))?;
        let role = match claims.get(&self.role_claim) {
            Some(Value::String(r)) => {
                Role::parse(r).map_err(|e| AuthError::Forbidden(format!("token claim {}: {e}", self.role_claim)))?
            }
            _ => return Err(AuthError::Forbidden(format!("token has no string claim {}", self.role_claim))),
        };
        // exp is in seconds; keep millisecond precision for fractional values.
        #[allow(clippy::cast_possible_truncation)]
        let expires_at = Timestamp::from_unix_millis((exp * 1000.0) as i64);
        Ok(Principal { user: User::new(user_id, role), expires_at })
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    let what = match e.kind() {
        K::ExpiredSignature => "token expired",
        K::ImmatureSignature => "token not valid yet (nbf)",
        K::InvalidSignature => "token signature is invalid",
        K::InvalidAlgorithm => "token algorithm is not accepted",
        K::InvalidIssuer => "token issuer is not accepted",
        K::InvalidAudience => "token audience is not accepted",
        K::MissingRequiredClaim(c) => return format!("token lacks required claim {c}"),
        _ => "token is malformed or not accepted",
    };
    what.to_owned()
}
