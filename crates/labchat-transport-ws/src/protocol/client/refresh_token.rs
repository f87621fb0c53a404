//! `refreshToken {token}`: replace the connection's token with a newer one for the same user
//! and role; the connection's expiry moves with it.

use serde_json::Value;

use super::parse::{Fail, Field, dto};
use crate::auth::AuthError;
use crate::close::{self, End};
use crate::context::Server;
use crate::protocol::{AckData, ErrorCode};
use crate::session::{Failure, Outcome, Session};

/// `refreshToken`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RefreshToken {
    /// The new token.
    pub token: String,
}

/// The fields `refreshToken` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    token: Field,
}

impl RefreshToken {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        match dto::<Data>(data)?.token.0 {
            Some(Value::String(token)) if !token.is_empty() => Ok(Self { token }),
            _ => Err(("field data.token must be a non-empty string".into(), None)),
        }
    }

    pub(crate) fn apply(&self, session: &mut Session, server: &Server, id: Option<&Value>) -> Result<Outcome, Failure> {
        match server.auth().authenticate(&self.token) {
            // A refresh never shortens the connection: an older token is refused, the current holds.
            Ok(p) if p.user == session.principal.user && p.expires_at < session.principal.expires_at => {
                Err(Failure::with(
                    ErrorCode::Unauthorized,
                    format!(
                        "refresh refused: the new token expires at {}, before the current one ({}), which still holds",
                        crate::protocol::rfc3339(p.expires_at),
                        crate::protocol::rfc3339(session.principal.expires_at)
                    ),
                ))
            }
            Ok(p) if p.user == session.principal.user => {
                session.principal.expires_at = p.expires_at;
                session.ack(AckData::Refreshed(p.expires_at), id);
                Ok(Outcome::ExpiryChanged)
            }
            Ok(_) => Err(Failure {
                close: Some(End::Close(close::FORBIDDEN, "token for another user or role")),
                ..Failure::with(ErrorCode::Forbidden, "the new token is for another user or role".into())
            }),
            Err(AuthError::Forbidden(m)) => Err(Failure {
                close: Some(End::Close(close::FORBIDDEN, "token for another role")),
                ..Failure::with(ErrorCode::Forbidden, m)
            }),
            Err(AuthError::Unauthorized(m)) => {
                Err(Failure::with(ErrorCode::Unauthorized, format!("refresh refused: {m}")))
            }
        }
    }
}
