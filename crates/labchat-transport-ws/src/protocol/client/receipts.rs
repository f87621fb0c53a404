//! `ackMessages` and `readMessages` `{requestId, messages}`: mark messages delivered or read.
//! The two events read the same fields and run the same use case, their [`ReceiptKind`] apart.

use labchat_domain::{MessageId, ReceiptKind, RequestId};
use serde_json::Value;

use super::parse::{DecodeLimits, Fail, Field, Room, dto};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::AckData;
use crate::session::{Failure, Outcome, Session};

/// `ackMessages` (delivered) or `readMessages` (read).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipts {
    /// The room.
    pub request_id: RequestId,
    /// The ids to mark.
    pub ids: Vec<MessageId>,
}

/// The fields `ackMessages` and `readMessages` read.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
    messages: Field,
}

impl Receipts {
    pub(crate) fn parse(data: Value, limits: &DecodeLimits) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let Some(Value::Array(items)) = data.messages.0 else {
            return Err(fail("field data.messages must be an array of message ids".into()));
        };
        let max = limits.max_receipt_ids;
        if items.is_empty() || items.len() > max {
            return Err(fail(format!("field data.messages must hold 1 to {max} ids, got {}", items.len())));
        }
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => MessageId::parse(s).map_err(|e| format!("field data.messages[{i}]: {e}")),
                _ => Err(format!("field data.messages[{i}] must be a 24-hex string")),
            })
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        Ok(Self { request_id, ids })
    }

    pub(crate) async fn apply(
        &self,
        kind: ReceiptKind,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let marked = server
            .chat()
            .mark(&session.principal.user, self.request_id, kind, &self.ids)
            .await
            .map_err(WireError::from)?;
        session.ack(AckData::Marked(self.request_id, &marked), id);
        Ok(Outcome::Done)
    }
}
