//! Server frames: `{"event": NAME, "data": {...}, "id"?}`, each named by a [`ServerEvent`].

use labchat_domain::{Message, MessageId, Receipt, RequestId, RoomEvent, Seq, Timestamp};

use serde::Serialize;
use serde_json::Value;

use super::{ErrorCode, ServerEvent};

/// Formats a timestamp as RFC 3339 UTC with milliseconds, e.g. `2024-12-05T14:03:11.120Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = t.unix_millis();
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        // Out of the representable range: cannot come from a clock or a valid token.
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReceipt {
    user_id: String,
    at: String,
}

impl From<&Receipt> for WireReceipt {
    fn from(r: &Receipt) -> Self {
        Self { user_id: r.user.as_str().to_owned(), at: rfc3339(r.at) }
    }
}

/// The Message object of the protocol.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMessage {
    id: String,
    request_id: String,
    /// The message's place in its room (1, 2, 3, … with no holes); absent only for a message
    /// no store has assigned one, which the server never sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    sender_id: String,
    sender_role: &'static str,
    /// The text; absent exactly when the message was deleted (a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_by: Option<String>,
    delivered_to: Vec<WireReceipt>,
    read_by: Vec<WireReceipt>,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_hex(),
            request_id: m.request_id.to_hex(),
            seq: m.seq.map(Seq::get),
            sender_id: m.sender_id.as_str().to_owned(),
            sender_role: m.sender_role.as_str(),
            message: m.text().map(|t| t.as_str().to_owned()),
            created_at: rfc3339(m.created_at),
            client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
            edited_at: m.edited_at().map(rfc3339),
            deleted_at: m.deletion().map(|d| rfc3339(d.at)),
            deleted_by: m.deletion().map(|d| d.by.as_str().to_owned()),
            delivered_to: m.delivered_to().iter().map(WireReceipt::from).collect(),
            read_by: m.read_by().iter().map(WireReceipt::from).collect(),
        }
    }
}

/// The data of `messageEdited` (`{requestId, messageId, message, editedAt, seq}`) and of
/// `messageDeleted` (`{requestId, messageId, deletedAt, deletedBy, seq}`): the message's id and
/// seq, and what changed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireChange {
    request_id: String,
    message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl From<&Message> for WireChange {
    fn from(m: &Message) -> Self {
        Self {
            request_id: m.request_id.to_hex(),
            message_id: m.id.to_hex(),
            message: m.text().map(|t| t.as_str().to_owned()),
            edited_at: m.edited_at().map(rfc3339),
            deleted_at: m.deletion().map(|d| rfc3339(d.at)),
            deleted_by: m.deletion().map(|d| d.by.as_str().to_owned()),
            seq: m.seq.map(Seq::get),
        }
    }
}

#[derive(Serialize)]
struct Frame<'a, T: Serialize> {
    event: &'a str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
}

/// What is sent instead of a frame that could not be encoded.
pub(super) const ENCODING_FAILED: &str =
    r#"{"event":"error","data":{"code":"INTERNAL","message":"encoding failed","retryable":false}}"#;

/// The frame `{"event": name, "data": data, "id"?: id}`.
pub(super) fn frame<T: Serialize>(name: &str, data: T, id: Option<&Value>) -> String {
    // Serializing these plain structs cannot fail (string keys, no maps with non-string keys).
    serde_json::to_string(&Frame { event: name, data, id }).unwrap_or_else(|_| ENCODING_FAILED.to_owned())
}

fn hex_ids(ids: &[MessageId]) -> Vec<String> {
    ids.iter().map(MessageId::to_hex).collect()
}

/// A member of a room as the protocol shows it: `{userId, role}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMember<'a> {
    pub(super) user_id: &'a str,
    pub(super) role: &'static str,
}

/// A room event as a server frame (`message`, `messagesDelivered`, `messageReads`, `typing`,
/// `memberJoined` or `memberLeft`), named by the domain's [`labchat_domain::RoomEventKind`].
pub fn room_event(event: &RoomEvent) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Receipts {
        request_id: String,
        user_id: String,
        messages: Vec<String>,
        at: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Someone<'a> {
        request_id: String,
        user_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'static str>,
    }
    let name = event.kind().as_str();
    match event {
        RoomEvent::MessagePosted(m) => frame(name, WireMessage::from(m), None),
        RoomEvent::MessageEdited(m) => frame(name, WireChange::from(m), None),
        RoomEvent::MessageDeleted(m) => frame(name, WireChange::from(m), None),
        RoomEvent::Delivered { request_id, user_id, messages, at }
        | RoomEvent::Read { request_id, user_id, messages, at } => {
            let data = Receipts {
                request_id: request_id.to_hex(),
                user_id: user_id.as_str().to_owned(),
                messages: hex_ids(messages),
                at: rfc3339(*at),
            };
            frame(name, data, None)
        }
        RoomEvent::Typing { request_id, user_id, role } | RoomEvent::MemberJoined { request_id, user_id, role } => {
            let data =
                Someone { request_id: request_id.to_hex(), user_id: user_id.as_str(), role: Some(role.as_str()) };
            frame(name, data, None)
        }
        RoomEvent::MemberLeft { request_id, user_id } => {
            frame(name, Someone { request_id: request_id.to_hex(), user_id: user_id.as_str(), role: None }, None)
        }
        RoomEvent::MembersChanged { request_id, joined, left, members_count } => {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Changed<'a> {
                request_id: String,
                joined: Vec<WireMember<'a>>,
                left: Vec<&'a str>,
                members_count: u64,
            }
            let data = Changed {
                request_id: request_id.to_hex(),
                joined: joined
                    .iter()
                    .map(|m| WireMember { user_id: m.user_id.as_str(), role: m.role.as_str() })
                    .collect(),
                left: left.iter().map(|u| u.as_str()).collect(),
                members_count: *members_count,
            };
            frame(name, data, None)
        }
    }
}

/// A `message` frame for one message, sent only to one client (a repeated send without an id).
pub fn message(m: &Message) -> String {
    frame(ServerEvent::Message.as_str(), WireMessage::from(m), None)
}

/// The result carried by an `ack` frame.
#[derive(Debug)]
pub enum AckData<'a> {
    /// `joinRoom`, `leaveRoom`, `history`, `typing`: `{requestId}`.
    Room(RequestId),
    /// `message`: the stored message.
    Message(&'a Message),
    /// `ackMessages`, `readMessages`: `{requestId, messages}` with the ids newly marked.
    Marked(RequestId, &'a [MessageId]),
    /// `refreshToken`: `{expiresAt}`.
    Refreshed(Timestamp),
    /// `subscribeInbox`, `unsubscribeInbox`: `{}`.
    Empty,
}

/// An `ack` frame for the frame with correlation id `id`.
pub fn ack(data: AckData<'_>, id: &Value) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Room {
        request_id: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Marked {
        request_id: String,
        messages: Vec<String>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Refreshed {
        expires_at: String,
    }
    let name = ServerEvent::Ack.as_str();
    match data {
        AckData::Room(r) => frame(name, Room { request_id: r.to_hex() }, Some(id)),
        AckData::Message(m) => frame(name, WireMessage::from(m), Some(id)),
        AckData::Marked(r, ids) => frame(name, Marked { request_id: r.to_hex(), messages: hex_ids(ids) }, Some(id)),
        AckData::Refreshed(t) => frame(name, Refreshed { expires_at: rfc3339(t) }, Some(id)),
        AckData::Empty => frame(name, serde_json::Map::new(), Some(id)),
    }
}

/// The fields of an `error` frame.
#[derive(Debug)]
pub struct ErrorFrame<'a> {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for the client developer.
    pub message: &'a str,
    /// The event of the frame that failed.
    pub event: Option<&'a str>,
    /// The room of the frame that failed.
    pub request_id: Option<RequestId>,
    /// The correlation id of the frame that failed.
    pub id: Option<&'a Value>,
    /// For `RATE_LIMITED`: when to try again.
    pub retry_after_ms: Option<u64>,
    /// Whether the client should send the frame again ([`ErrorCode::retryable`]).
    pub retryable: bool,
}

/// An `error` frame.
pub fn error(e: &ErrorFrame<'_>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        event: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        retryable: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    }
    let data = Data {
        code: e.code,
        message: e.message,
        event: e.event,
        request_id: e.request_id.map(|r| r.to_hex()),
        retryable: e.retryable,
        retry_after_ms: e.retry_after_ms,
    };
    frame(ServerEvent::Error.as_str(), data, e.id)
}
