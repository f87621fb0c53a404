//! `message {requestId, message, clientMessageId?}`: post a message; a repeated
//! `clientMessageId` gets the original back.

use labchat_domain::{ClientMessageId, MessageText, RequestId};
use serde_json::Value;

use super::parse::{DecodeLimits, Fail, Field, Room, dto};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, AckData, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `message`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// The room.
    pub request_id: RequestId,
    /// The text.
    pub text: MessageText,
    /// The idempotency id.
    pub client_message_id: Option<ClientMessageId>,
}

/// The fields `message` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Data {
    #[serde(flatten)]
    room: Room,
    message: Field,
    client_message_id: Field,
}

impl Message {
    pub(crate) fn parse(data: Value, limits: &DecodeLimits) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let text = match data.message.0 {
            Some(Value::String(s)) => {
                MessageText::parse(s, limits.max_message_chars).map_err(|e| fail(format!("field data.message: {e}")))?
            }
            Some(_) => return Err(fail("field data.message must be a string".into())),
            None => return Err(fail("missing field data.message".into())),
        };
        let client_message_id = match data.client_message_id.non_null() {
            None => None,
            Some(Value::String(s)) => {
                Some(ClientMessageId::parse(s).map_err(|e| fail(format!("field data.clientMessageId: {e}")))?)
            }
            Some(_) => return Err(fail("field data.clientMessageId must be a string".into())),
        };
        Ok(Self { request_id, text, client_message_id })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let posted = server
            .chat()
            .post(&session.principal.user, self.request_id, self.text.clone(), self.client_message_id.clone())
            .await
            .map_err(WireError::from)?;
        match id {
            Some(id) => session.sink.reply(ServerEvent::Ack, protocol::ack(AckData::Message(&posted.message), id)),
            // A repeated send gets the original back even without a correlation id.
            None if posted.duplicate => session.sink.reply(ServerEvent::Message, protocol::message(&posted.message)),
            None => {}
        }
        Ok(Outcome::Done)
    }
}
