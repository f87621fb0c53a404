//! `leaveRoom {requestId}`: stop listening to a room.

use labchat_domain::RequestId;
use serde_json::Value;

use super::parse::{Fail, Room, dto};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::AckData;
use crate::session::{Failure, Outcome, Session};

/// `leaveRoom`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeaveRoom {
    /// The room.
    pub request_id: RequestId,
}

/// The fields `leaveRoom` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
}

impl LeaveRoom {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        Ok(Self { request_id: dto::<Data>(data)?.room.request_id()? })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let request_id = &self.request_id;
        let (chat, user) = (server.chat(), &session.principal.user);
        // Stopping to listen needs no authorization. Leaving a room not joined is
        // answered like any other operation, so it tells nobody which requests exist.
        if !session.rooms.contains(request_id) {
            chat.check_access(user, *request_id).await.map_err(WireError::from)?;
        }
        chat.leave(user, *request_id, session.sink.sink_id()).await.map_err(WireError::from)?;
        session.sink.forget(*request_id);
        if session.rooms.remove(request_id) {
            metrics::gauge!("labchat_rooms_joined").decrement(1.0);
        }
        session.ack(AckData::Room(*request_id), id);
        Ok(Outcome::Done)
    }
}
