//! The versioned JSON envelope a node publishes for each room event, and its DTOs.
//!
//! The domain types do not derive serde; this module owns the format nodes exchange:
//! `{"v":1,"origin":"<node id>","seq":<seq, for messages>,"event":{"type":...}}`.

use labchat_domain::{
    ClientMessageId, Message, MessageId, MessageText, Receipt, RequestId, Role, RoomEvent, Seq, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

/// The envelope version this node writes and reads.
pub(crate) const VERSION: u32 = 1;

/// The pub/sub channel of a room.
pub(crate) fn channel(room: RequestId) -> String {
    format!("labchat:room:{}", room.to_hex())
}

/// An envelope could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Not JSON of the envelope's shape. Only the error's category and place are kept: serde's
    /// message may quote the payload, which holds message text that is never logged.
    #[error("malformed envelope ({0:?} error at line {1}, column {2})")]
    Json(serde_json::error::Category, usize, usize),
    /// A version this node does not know.
    #[error("unsupported envelope version {0} (this node reads {VERSION})")]
    Version(u32),
    /// A field held a value the domain refuses.
    #[error("invalid envelope field {0}: {1}")]
    Field(&'static str, String),
    /// A kind of event the envelope has no form for.
    #[error("an event kind the envelope cannot carry")]
    UnknownKind,
}

/// A received envelope: who published it and the event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// The publishing node's id.
    pub(crate) origin: String,
    /// The event.
    pub(crate) event: RoomEvent,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    event: EventDto,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum EventDto {
    Message { message: MessageDto },
    Delivered(ReceiptsDto),
    Read(ReceiptsDto),
    Typing(SomeoneDto),
    MemberJoined(SomeoneDto),
    MemberLeft(SomeoneDto),
}

/// The subject of a typing or presence event (`role`: absent for `memberLeft`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SomeoneDto {
    request_id: String,
    user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptsDto {
    request_id: String,
    user_id: String,
    messages: Vec<String>,
    at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageDto {
    id: String,
    request_id: String,
    #[serde(default)]
    seq: Option<u64>,
    sender_id: String,
    sender_role: String,
    text: String,
    created_at: i64,
    #[serde(default)]
    client_message_id: Option<String>,
    #[serde(default)]
    delivered_to: Vec<ReceiptDto>,
    #[serde(default)]
    read_by: Vec<ReceiptDto>,
}

#[derive(Serialize, Deserialize)]
struct ReceiptDto {
    user: String,
    at: i64,
}

/// Encodes `event` as published by node `origin`.
pub(crate) fn encode(origin: &str, event: &RoomEvent) -> Result<Vec<u8>, EnvelopeError> {
    let (seq, dto) = match event {
        RoomEvent::MessagePosted(m) => (m.seq.map(Seq::get), EventDto::Message { message: message_dto(m) }),
        RoomEvent::Delivered { request_id, user_id, messages, at } => {
            (None, EventDto::Delivered(receipts_dto(*request_id, user_id, messages, *at)))
        }
        RoomEvent::Read { request_id, user_id, messages, at } => {
            (None, EventDto::Read(receipts_dto(*request_id, user_id, messages, *at)))
        }
        RoomEvent::Typing { request_id, user_id, role } => {
            (None, EventDto::Typing(someone_dto(*request_id, user_id, Some(*role))))
        }
        RoomEvent::MemberJoined { request_id, user_id, role } => {
            (None, EventDto::MemberJoined(someone_dto(*request_id, user_id, Some(*role))))
        }
        RoomEvent::MemberLeft { request_id, user_id } => {
            (None, EventDto::MemberLeft(someone_dto(*request_id, user_id, None)))
        }
        _ => return Err(EnvelopeError::UnknownKind),
    };
    let envelope = Envelope { v: VERSION, origin: origin.to_owned(), seq, event: dto };
    serde_json::to_vec(&envelope).map_err(json_error)
}

/// Decodes an envelope, validating every field as the domain does.
pub(crate) fn decode(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(json_error)?;
    if version.v != VERSION {
        return Err(EnvelopeError::Version(version.v));
    }
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(json_error)?;
    let event = match envelope.event {
        EventDto::Message { message } => {
            let message = message_from(message)?;
            if message.seq.map(Seq::get) != envelope.seq {
                return Err(EnvelopeError::Field("seq", "differs from the message's seq".to_owned()));
            }
            RoomEvent::MessagePosted(message)
        }
        EventDto::Delivered(r) => {
            let (request_id, user_id, messages, at) = receipts_from(r)?;
            RoomEvent::Delivered { request_id, user_id, messages, at }
        }
        EventDto::Read(r) => {
            let (request_id, user_id, messages, at) = receipts_from(r)?;
            RoomEvent::Read { request_id, user_id, messages, at }
        }
        EventDto::Typing(s) => {
            let (request_id, user_id, role) = someone_from(s)?;
            RoomEvent::Typing { request_id, user_id, role: role.ok_or(EnvelopeError::Field("role", "missing".into()))? }
        }
        EventDto::MemberJoined(s) => {
            let (request_id, user_id, role) = someone_from(s)?;
            let role = role.ok_or(EnvelopeError::Field("role", "missing".into()))?;
            RoomEvent::MemberJoined { request_id, user_id, role }
        }
        EventDto::MemberLeft(s) => {
            let (request_id, user_id, _) = someone_from(s)?;
            RoomEvent::MemberLeft { request_id, user_id }
        }
    };
    Ok(Received { origin: envelope.origin, event })
}

fn json_error(e: serde_json::Error) -> EnvelopeError {
    EnvelopeError::Json(e.classify(), e.line(), e.column())
}

fn message_dto(m: &Message) -> MessageDto {
    let receipts = |rs: &[Receipt]| {
        rs.iter().map(|r| ReceiptDto { user: r.user.as_str().to_owned(), at: r.at.unix_millis() }).collect()
    };
    MessageDto {
        id: m.id.to_hex(),
        request_id: m.request_id.to_hex(),
        seq: m.seq.map(Seq::get),
        sender_id: m.sender_id.as_str().to_owned(),
        sender_role: m.sender_role.as_str().to_owned(),
        text: m.text.as_str().to_owned(),
        created_at: m.created_at.unix_millis(),
        client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
        delivered_to: receipts(&m.delivered_to),
        read_by: receipts(&m.read_by),
    }
}

fn receipts_dto(request_id: RequestId, user_id: &UserId, messages: &[MessageId], at: Timestamp) -> ReceiptsDto {
    ReceiptsDto {
        request_id: request_id.to_hex(),
        user_id: user_id.as_str().to_owned(),
        messages: messages.iter().map(MessageId::to_hex).collect(),
        at: at.unix_millis(),
    }
}

fn field<T, E: std::fmt::Display>(name: &'static str, r: Result<T, E>) -> Result<T, EnvelopeError> {
    r.map_err(|e| EnvelopeError::Field(name, e.to_string()))
}

fn message_from(m: MessageDto) -> Result<Message, EnvelopeError> {
    let receipts = |name: &'static str, rs: Vec<ReceiptDto>| -> Result<Vec<Receipt>, EnvelopeError> {
        rs.into_iter()
            .map(|r| Ok(Receipt { user: field(name, UserId::parse(r.user))?, at: Timestamp::from_unix_millis(r.at) }))
            .collect()
    };
    Ok(Message {
        id: field("message.id", MessageId::parse(&m.id))?,
        request_id: field("message.requestId", RequestId::parse(&m.request_id))?,
        seq: m.seq.map(|s| field("message.seq", Seq::new(s))).transpose()?,
        sender_id: field("message.senderId", UserId::parse(m.sender_id))?,
        sender_role: field("message.senderRole", Role::parse(&m.sender_role))?,
        text: field("message.text", MessageText::restore(m.text))?,
        created_at: Timestamp::from_unix_millis(m.created_at),
        client_message_id: m
            .client_message_id
            .map(|c| field("message.clientMessageId", ClientMessageId::parse(c)))
            .transpose()?,
        delivered_to: receipts("message.deliveredTo", m.delivered_to)?,
        read_by: receipts("message.readBy", m.read_by)?,
    })
}

fn someone_dto(request_id: RequestId, user_id: &UserId, role: Option<Role>) -> SomeoneDto {
    SomeoneDto {
        request_id: request_id.to_hex(),
        user_id: user_id.as_str().to_owned(),
        role: role.map(|r| r.as_str().to_owned()),
    }
}

fn someone_from(s: SomeoneDto) -> Result<(RequestId, UserId, Option<Role>), EnvelopeError> {
    Ok((
        field("requestId", RequestId::parse(&s.request_id))?,
        field("userId", UserId::parse(s.user_id))?,
        s.role.map(|r| field("role", Role::parse(&r))).transpose()?,
    ))
}

type Receipts = (RequestId, UserId, Vec<MessageId>, Timestamp);

fn receipts_from(r: ReceiptsDto) -> Result<Receipts, EnvelopeError> {
    let messages =
        r.messages.iter().map(|id| field("messages", MessageId::parse(id))).collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Err(EnvelopeError::Field("messages", "empty".to_owned()));
    }
    Ok((
        field("requestId", RequestId::parse(&r.request_id))?,
        field("userId", UserId::parse(r.user_id))?,
        messages,
        Timestamp::from_unix_millis(r.at),
    ))
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
