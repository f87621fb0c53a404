//! `typing {requestId}`: tell a room's other users that this user is typing. Throttled here
//! when this connection's latest one in the room was broadcast less than an interval ago (see
//! [`TypingGate`]), else asked of the presence port. A throttled one is dropped, but still
//! answered, and not charged to the frame rate limit.

use labchat_domain::RequestId;
use serde_json::Value;
use tokio::time::Instant;

use super::parse::{Fail, Room, dto};
use crate::close::{self, End};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{AckData, ClientEvent, ErrorCode, ErrorFrame};
use crate::session::{Failure, Outcome, Session};
use crate::typing_gate::{TypingCheck, TypingGate};

/// `typing`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Typing {
    /// The room.
    pub request_id: RequestId,
}

/// The fields `typing` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
}

impl Typing {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        Ok(Self { request_id: dto::<Data>(data)?.room.request_id()? })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let room = self.request_id;
        let now = Instant::now();
        let limits = server.config().typing_limits();
        let gate = session.typing.get_or_insert_with(|| Box::new(TypingGate::new(limits, now)));
        match gate.check(room, now, limits) {
            TypingCheck::Ask => {}
            TypingCheck::Throttled => {
                session.ack(AckData::Room(room), id);
                return Ok(Outcome::Uncounted);
            }
            TypingCheck::Refuse { retry_after_ms } => {
                session.sink.reply_error(&ErrorFrame {
                    code: ErrorCode::RateLimited,
                    message: "too many typing frames; this one was not processed",
                    event: Some(ClientEvent::Typing.as_str()),
                    request_id: Some(room),
                    id,
                    retry_after_ms: Some(retry_after_ms),
                    retryable: true,
                });
                return Ok(Outcome::Uncounted);
            }
            TypingCheck::Close => {
                return Ok(Outcome::Close(End::Close(close::POLICY, "rate limit exceeded for too long")));
            }
        }
        let broadcast = server.chat().typing(&session.principal.user, room).await.map_err(WireError::from)?;
        if let Some(gate) = session.typing.as_mut() {
            gate.record(room, Instant::now(), broadcast);
        }
        session.ack(AckData::Room(room), id);
        Ok(Outcome::Done)
    }
}
