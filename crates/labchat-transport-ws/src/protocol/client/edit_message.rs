//! `editMessage {requestId, messageId, message}`: the sender replaces a message's text, within
//! the edit window; the same limits as `message`. The reply is the message as stored now; the room
//! hears `messageEdited`.

use labchat_domain::{MessageId, MessageText, RequestId};
use serde_json::Value;

use super::parse::{DecodeLimits, Fail, Field, Room, dto, optional_id};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, AckData, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `editMessage`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EditMessage {
    /// The room.
    pub request_id: RequestId,
    /// The message to edit.
    pub message_id: MessageId,
    /// The new text.
    pub text: MessageText,
}

/// The fields `editMessage` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Data {
    #[serde(flatten)]
    room: Room,
    message_id: Field,
    message: Field,
}

impl EditMessage {
    pub(crate) fn parse(data: Value, limits: &DecodeLimits) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let message_id = optional_id(data.message_id, "messageId")
            .map_err(fail)?
            .ok_or_else(|| fail("missing field data.messageId".into()))?;
        let text = match data.message.0 {
            Some(Value::String(s)) => {
                MessageText::parse(s, limits.max_message_chars).map_err(|e| fail(format!("field data.message: {e}")))?
            }
            Some(_) => return Err(fail("field data.message must be a string".into())),
            None => return Err(fail("missing field data.message".into())),
        };
        Ok(Self { request_id, message_id, text })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let edited = server
            .chat()
            .edit(&session.principal.user, self.request_id, self.message_id, self.text.clone())
            .await
            .map_err(WireError::from)?;
        if let Some(id) = id {
            session.sink.reply(ServerEvent::Ack, protocol::ack(AckData::Message(&edited), id));
        }
        Ok(Outcome::Done)
    }
}
