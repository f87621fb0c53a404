//! `deleteMessage {requestId, messageId}`: the sender, or any LAB user, deletes a message; it
//! stays as a tombstone (text removed, seq and receipts kept). The reply is the tombstone; the
//! room hears `messageDeleted`. Deleting a tombstone again is answered with it, and tells no one.

use labchat_domain::{MessageId, RequestId};
use serde_json::Value;

use super::parse::{Fail, Field, Room, dto, optional_id};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, AckData, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `deleteMessage`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeleteMessage {
    /// The room.
    pub request_id: RequestId,
    /// The message to delete.
    pub message_id: MessageId,
}

/// The fields `deleteMessage` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Data {
    #[serde(flatten)]
    room: Room,
    message_id: Field,
}

impl DeleteMessage {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let message_id = optional_id(data.message_id, "messageId")
            .map_err(fail)?
            .ok_or_else(|| fail("missing field data.messageId".into()))?;
        Ok(Self { request_id, message_id })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let tombstone = server
            .chat()
            .delete(&session.principal.user, self.request_id, self.message_id)
            .await
            .map_err(WireError::from)?;
        if let Some(id) = id {
            session.sink.reply(ServerEvent::Ack, protocol::ack(AckData::Message(&tombstone), id));
        }
        Ok(Outcome::Done)
    }
}
