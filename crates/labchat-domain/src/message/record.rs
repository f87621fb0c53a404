//! A message as a store or a wire keeps it, and the one way back from it to a [`Message`].

use super::{Body, Deletion, Message, ReceiptKind};
use crate::{ClientMessageId, MessageId, MessageText, Receipt, RequestId, Role, Seq, Timestamp, UserId};

/// Every part of a stored message, as a store or a wire keeps it: what [`Message::restore`]
/// validates, and what [`Message::to_record`] gives back.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct MessageRecord {
    /// See [`Message::id`].
    pub id: MessageId,
    /// See [`Message::request_id`].
    pub request_id: RequestId,
    /// See [`Message::seq`].
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub seq: Option<Seq>,
    /// See [`Message::sender_id`].
    pub sender_id: UserId,
    /// See [`Message::sender_role`].
    pub sender_role: Role,
    /// The text; `None` exactly when the message was deleted.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub text: Option<MessageText>,
    /// See [`Message::created_at`].
    pub created_at: Timestamp,
    /// See [`Message::client_message_id`].
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub client_message_id: Option<ClientMessageId>,
    /// When the text was last edited, if it was.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub edited_at: Option<Timestamp>,
    /// When it was deleted, if it was.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub deleted_at: Option<Timestamp>,
    /// Who deleted it, if it was.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub deleted_by: Option<UserId>,
    /// Delivery receipts, in the order they were marked.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Vec::is_empty"))]
    pub delivered_to: Vec<Receipt>,
    /// Read receipts, in the order they were marked.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Vec::is_empty"))]
    pub read_by: Vec<Receipt>,
}

/// Why [`Message::restore`] refused a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// Neither a text nor a deletion: every message has one of them.
    #[error("message {0} has neither a text nor a deletion")]
    NoBody(MessageId),
    /// Half a deletion: `deleted_at` without `deleted_by`, or the reverse.
    #[error("message {0} has half a deletion (both deletedAt and deletedBy are needed)")]
    HalfDeletion(MessageId),
    /// A text beside a deletion: a deleted message keeps no text.
    #[error("message {0} is deleted but keeps a text")]
    TextOnTombstone(MessageId),
}

impl TryFrom<MessageRecord> for Message {
    type Error = InvalidMessage;
    fn try_from(record: MessageRecord) -> Result<Self, Self::Error> {
        Self::restore(record)
    }
}

impl From<Message> for MessageRecord {
    fn from(message: Message) -> Self {
        message.to_record()
    }
}

impl Message {
    /// A stored message read back. Refuses a record that is neither a text nor a whole deletion;
    /// repairs receipt lists that break the rules (a second receipt of a user and kind is
    /// dropped, a reader missing from the delivered list is added, the sender's own receipts
    /// are dropped), so a corrupt store cannot make a count wrong.
    pub fn restore(record: MessageRecord) -> Result<Self, InvalidMessage> {
        let body = match (record.text, record.deleted_at, record.deleted_by) {
            (Some(text), None, None) => Body::Text { text, edited_at: record.edited_at },
            (None, Some(at), Some(by)) => Body::Deleted(Deletion { at, by }),
            (Some(_), Some(_), Some(_)) => return Err(InvalidMessage::TextOnTombstone(record.id)),
            (None, None, None) => return Err(InvalidMessage::NoBody(record.id)),
            _ => return Err(InvalidMessage::HalfDeletion(record.id)),
        };
        let mut message = Self {
            id: record.id,
            request_id: record.request_id,
            seq: record.seq,
            sender_id: record.sender_id,
            sender_role: record.sender_role,
            created_at: record.created_at,
            client_message_id: record.client_message_id,
            body,
            delivered_to: Vec::with_capacity(record.delivered_to.len()),
            read_by: Vec::with_capacity(record.read_by.len()),
        };
        for receipt in record.delivered_to {
            message.add(ReceiptKind::Delivered, receipt);
        }
        for receipt in record.read_by {
            message.add(ReceiptKind::Read, receipt);
        }
        Ok(message)
    }

    /// Every part of the message, as [`Message::restore`] takes it back.
    pub fn to_record(&self) -> MessageRecord {
        let (text, edited_at, deletion) = match &self.body {
            Body::Text { text, edited_at } => (Some(text.clone()), *edited_at, None),
            Body::Deleted(d) => (None, None, Some(d.clone())),
        };
        MessageRecord {
            id: self.id,
            request_id: self.request_id,
            seq: self.seq,
            sender_id: self.sender_id.clone(),
            sender_role: self.sender_role,
            text,
            created_at: self.created_at,
            client_message_id: self.client_message_id.clone(),
            edited_at,
            deleted_at: deletion.as_ref().map(|d| d.at),
            deleted_by: deletion.map(|d| d.by),
            delivered_to: self.delivered_to.clone(),
            read_by: self.read_by.clone(),
        }
    }
}
