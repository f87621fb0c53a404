//! Development tokens: HS256 JWTs minted with the configured secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use labchat_domain::Role;
use serde_json::json;

/// Mints an HS256 token for `sub` with `role` in `role_claim`, valid for `ttl` from now.
pub fn mint(
    secret: &[u8],
    sub: &str,
    role: Role,
    role_claim: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut claims = json!({ "sub": sub, "iat": now, "exp": now + ttl.as_secs() });
    if let Some(map) = claims.as_object_mut() {
        map.insert(role_claim.to_owned(), json!(role.as_str()));
    }
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use labchat_transport_ws::{AuthSettings, Authenticator, JwtAlgorithm};

    use super::*;

    /// Proves the chosen jsonwebtoken crypto backend signs and verifies at run time.
    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let token = mint(b"s3cret", "t1", Role::Teacher, "role", Duration::from_secs(60)).unwrap();
        let settings = |key: &[u8]| AuthSettings {
            algorithm: JwtAlgorithm::Hs256,
            key: key.to_vec(),
            issuer: None,
            audience: None,
            role_claim: "role".into(),
        };
        let p = Authenticator::new(&settings(b"s3cret")).unwrap().authenticate(&token).unwrap();
        assert_eq!((p.user.id().as_str(), p.user.role()), ("t1", Role::Teacher));
        assert!(Authenticator::new(&settings(b"other")).unwrap().authenticate(&token).is_err());
    }
}
