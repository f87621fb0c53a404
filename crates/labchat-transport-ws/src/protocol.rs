//! The wire format: JSON text frames in, JSON text frames out. Only this module knows JSON.

use labchat_domain::{
    ClientMessageId, HistoryLimit, HistoryPage, Message, MessageId, MessageText, Receipt, RequestId, RoomEvent,
    Timestamp,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Error codes of `error` frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame is malformed; nothing was done.
    BadRequest,
    /// The request does not exist or the user may not access it; nothing was done.
    Forbidden,
    /// The store failed; retry later.
    Unavailable,
    /// The server failed.
    Internal,
    /// Too many frames; this one was not processed.
    RateLimited,
    /// The token expired; the connection closes.
    TokenExpired,
    /// A `refreshToken` token is invalid (bad signature, expired...); the current one still holds.
    Unauthorized,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::Forbidden => "FORBIDDEN",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::RateLimited => "RATE_LIMITED",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::Unauthorized => "UNAUTHORIZED",
        }
    }

    /// Whether the same frame may succeed later.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::RateLimited)
    }
}

/// Limits the decoder enforces.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Longest message text, in characters.
    pub max_message_chars: usize,
    /// Most ids in one `ackMessages`/`readMessages` frame.
    pub max_receipt_ids: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_message_chars: MessageText::DEFAULT_MAX_CHARS, max_receipt_ids: 500 }
    }
}

/// A valid client command.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// `joinRoom`.
    JoinRoom {
        /// The room.
        request_id: RequestId,
        /// Only send history after this message.
        after: Option<MessageId>,
    },
    /// `leaveRoom`.
    LeaveRoom {
        /// The room.
        request_id: RequestId,
    },
    /// `message`.
    Message {
        /// The room.
        request_id: RequestId,
        /// The text.
        text: MessageText,
        /// The idempotency id.
        client_message_id: Option<ClientMessageId>,
    },
    /// `ackMessages`.
    AckMessages {
        /// The room.
        request_id: RequestId,
        /// The ids to mark delivered.
        ids: Vec<MessageId>,
    },
    /// `readMessages`.
    ReadMessages {
        /// The room.
        request_id: RequestId,
        /// The ids to mark read.
        ids: Vec<MessageId>,
    },
    /// `history`.
    History {
        /// The room.
        request_id: RequestId,
        /// Messages before this one (default: the latest).
        before: Option<MessageId>,
        /// Page size.
        limit: Option<HistoryLimit>,
    },
    /// `refreshToken`.
    RefreshToken {
        /// The new token.
        token: String,
    },
}

impl Command {
    /// The room the command is about, if any.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::JoinRoom { request_id, .. }
            | Self::LeaveRoom { request_id }
            | Self::Message { request_id, .. }
            | Self::AckMessages { request_id, .. }
            | Self::ReadMessages { request_id, .. }
            | Self::History { request_id, .. } => Some(*request_id),
            Self::RefreshToken { .. } => None,
        }
    }
}

/// A frame that could not be turned into a command: answered with `BAD_REQUEST`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BadFrame {
    /// What is wrong, for the client developer.
    pub message: String,
    /// The frame's event name, when it had a string one.
    pub event: Option<String>,
    /// The frame's correlation id, when it had a valid one.
    pub id: Option<Value>,
    /// The frame's request id, when it had a valid one.
    pub request_id: Option<RequestId>,
}

/// A decoded client frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Inbound {
    /// The event name.
    pub event: String,
    /// The correlation id (a string of at most 64 characters, or an integer), echoed on replies.
    pub id: Option<Value>,
    /// The command.
    pub command: Command,
}

/// The client events, by name.
pub const CLIENT_EVENTS: [&str; 7] =
    ["joinRoom", "leaveRoom", "message", "ackMessages", "readMessages", "history", "refreshToken"];

/// The event name as a static string if it is a client event, else `"unknown"` (for metrics
/// labels, which must not take arbitrary client input).
pub fn known_event(name: &str) -> &'static str {
    CLIENT_EVENTS.iter().copied().find(|e| *e == name).unwrap_or("unknown")
}

/// The longest correlation id string, in characters.
pub const MAX_CORRELATION_ID_CHARS: usize = 64;

/// Decodes one text frame. Never panics: any input is either a command or a [`BadFrame`].
pub fn decode(text: &str, limits: &DecodeLimits) -> Result<Inbound, Box<BadFrame>> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| BadFrame::boxed(format!("frame is not valid JSON: {e}")))?;
    let Value::Object(mut frame) = value else {
        return Err(BadFrame::boxed("frame must be a JSON object".into()));
    };
    // The event and the id are read independently, so an error names whichever is valid.
    let event = match frame.remove("event") {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("field event must be a string"),
        None => Err("missing field event"),
    };
    let id = match frame.remove("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_CORRELATION_ID_CHARS => Ok(Some(Value::String(s))),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(Value::Number(n))),
        Some(_) => {
            Err(format!("field id must be a string of at most {MAX_CORRELATION_ID_CHARS} characters or an integer"))
        }
    };
    let (event, id) = match (event, id) {
        (Ok(event), Ok(id)) => (event, id),
        (event, id) => {
            let message = match (&event, &id) {
                (_, Err(m)) => m.clone(),
                (Err(m), _) => (*m).to_owned(),
                (Ok(_), Ok(_)) => String::new(),
            };
            return Err(Box::new(BadFrame { message, event: event.ok(), id: id.ok().flatten(), request_id: None }));
        }
    };
    let bad = |message: String, request_id: Option<RequestId>| {
        Box::new(BadFrame { message, event: Some(event.clone()), id: id.clone(), request_id })
    };
    let mut data = match frame.remove("data") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("field data must be an object".into(), None)),
        None => return Err(bad("missing field data".into(), None)),
    };
    let command = decode_command(&event, &mut data, limits).map_err(|(message, rid)| bad(message, rid))?;
    Ok(Inbound { event, id, command })
}

impl BadFrame {
    fn boxed(message: String) -> Box<Self> {
        Box::new(Self { message, event: None, id: None, request_id: None })
    }
}

type Fail = (String, Option<RequestId>);

fn decode_command(event: &str, data: &mut Map<String, Value>, limits: &DecodeLimits) -> Result<Command, Fail> {
    if event == "refreshToken" {
        return match data.remove("token") {
            Some(Value::String(token)) if !token.is_empty() => Ok(Command::RefreshToken { token }),
            _ => Err(("field data.token must be a non-empty string".into(), None)),
        };
    }
    if !matches!(event, "joinRoom" | "leaveRoom" | "message" | "ackMessages" | "readMessages" | "history") {
        return Err((
            format!(
                "unknown event {event:?} (expected joinRoom, leaveRoom, message, ackMessages, readMessages, history or refreshToken)"
            ),
            None,
        ));
    }
    let rid = request_id(data).map_err(|m| (m, None))?;
    let with_rid = |m: String| (m, Some(rid));
    Ok(match event {
        "joinRoom" => Command::JoinRoom { request_id: rid, after: optional_id(data, "after").map_err(with_rid)? },
        "leaveRoom" => Command::LeaveRoom { request_id: rid },
        "message" => {
            let text = match data.remove("message") {
                Some(Value::String(s)) => MessageText::parse(s, limits.max_message_chars)
                    .map_err(|e| with_rid(format!("field data.message: {e}")))?,
                Some(_) => return Err(with_rid("field data.message must be a string".into())),
                None => return Err(with_rid("missing field data.message".into())),
            };
            let client_message_id = match data.remove("clientMessageId") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    Some(ClientMessageId::parse(s).map_err(|e| with_rid(format!("field data.clientMessageId: {e}")))?)
                }
                Some(_) => return Err(with_rid("field data.clientMessageId must be a string".into())),
            };
            Command::Message { request_id: rid, text, client_message_id }
        }
        "ackMessages" | "readMessages" => {
            let ids = id_list(data, limits.max_receipt_ids).map_err(with_rid)?;
            if event == "ackMessages" {
                Command::AckMessages { request_id: rid, ids }
            } else {
                Command::ReadMessages { request_id: rid, ids }
            }
        }
        _ => {
            let before = optional_id(data, "before").map_err(with_rid)?;
            let limit = match data.remove("limit") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => {
                    let n = n.as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                    Some(HistoryLimit::new(n).map_err(|e| with_rid(format!("field data.limit: {e}")))?)
                }
                Some(_) => return Err(with_rid("field data.limit must be a positive integer".into())),
            };
            Command::History { request_id: rid, before, limit }
        }
    })
}

fn request_id(data: &mut Map<String, Value>) -> Result<RequestId, String> {
    let primary = data.remove("requestId");
    let alias = data.remove("resquestId");
    let raw = match (primary, alias) {
        (Some(a), Some(b)) if a != b => {
            return Err("fields data.requestId and data.resquestId disagree; send one of them".into());
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err("missing field data.requestId".into()),
    };
    match raw {
        Value::String(s) => RequestId::parse(&s).map_err(|e| format!("field data.requestId: {e}")),
        _ => Err("field data.requestId must be a 24-hex string".into()),
    }
}

fn optional_id(data: &mut Map<String, Value>, field: &str) -> Result<Option<MessageId>, String> {
    match data.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => MessageId::parse(&s).map(Some).map_err(|e| format!("field data.{field}: {e}")),
        Some(_) => Err(format!("field data.{field} must be a 24-hex string")),
    }
}

fn id_list(data: &mut Map<String, Value>, max: usize) -> Result<Vec<MessageId>, String> {
    let Some(Value::Array(items)) = data.remove("messages") else {
        return Err("field data.messages must be an array of message ids".into());
    };
    if items.is_empty() || items.len() > max {
        return Err(format!("field data.messages must hold 1 to {max} ids, got {}", items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => MessageId::parse(s).map_err(|e| format!("field data.messages[{i}]: {e}")),
            _ => Err(format!("field data.messages[{i}] must be a 24-hex string")),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server frames.

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    id: String,
    request_id: String,
    sender_id: String,
    sender_role: &'static str,
    message: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_message_id: Option<String>,
    delivered_to: Vec<WireReceipt>,
    read_by: Vec<WireReceipt>,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_hex(),
            request_id: m.request_id.to_hex(),
            sender_id: m.sender_id.as_str().to_owned(),
            sender_role: m.sender_role.as_str(),
            message: m.text.as_str().to_owned(),
            created_at: rfc3339(m.created_at),
            client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
            delivered_to: m.delivered_to.iter().map(WireReceipt::from).collect(),
            read_by: m.read_by.iter().map(WireReceipt::from).collect(),
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

fn frame<T: Serialize>(event: &str, data: T, id: Option<&Value>) -> String {
    // Serializing these plain structs cannot fail (string keys, no maps with non-string keys).
    serde_json::to_string(&Frame { event, data, id }).unwrap_or_else(|_| {
        r#"{"event":"error","data":{"code":"INTERNAL","message":"encoding failed","retryable":false}}"#.to_owned()
    })
}

fn hex_ids(ids: &[MessageId]) -> Vec<String> {
    ids.iter().map(MessageId::to_hex).collect()
}

/// A room event as a server frame (`message`, `messagesDelivered` or `messageReads`).
pub fn room_event(event: &RoomEvent) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Receipts {
        request_id: String,
        user_id: String,
        messages: Vec<String>,
        at: String,
    }
    match event {
        RoomEvent::MessagePosted(m) => frame("message", WireMessage::from(m), None),
        RoomEvent::Delivered { request_id, user_id, messages, at }
        | RoomEvent::Read { request_id, user_id, messages, at } => {
            let name = event.kind().as_str();
            let data = Receipts {
                request_id: request_id.to_hex(),
                user_id: user_id.as_str().to_owned(),
                messages: hex_ids(messages),
                at: rfc3339(*at),
            };
            frame(name, data, None)
        }
        // A kind this transport does not know yet: its name and room, so clients can ignore it.
        other => {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Room {
                request_id: String,
            }
            frame(other.kind().as_str(), Room { request_id: other.request_id().to_hex() }, None)
        }
    }
}

/// A `message` frame for one message, sent only to one client (a repeated send without an id).
pub fn message(m: &Message) -> String {
    frame("message", WireMessage::from(m), None)
}

/// A `roomHistory` frame.
pub fn room_history(request_id: RequestId, page: &HistoryPage, id: Option<&Value>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct History {
        request_id: String,
        messages: Vec<WireMessage>,
        has_more: bool,
    }
    let data = History {
        request_id: request_id.to_hex(),
        messages: page.messages.iter().map(WireMessage::from).collect(),
        has_more: page.has_more,
    };
    frame("roomHistory", data, id)
}

/// The result carried by an `ack` frame.
#[derive(Debug)]
pub enum AckData<'a> {
    /// `joinRoom`, `leaveRoom`, `history`: `{requestId}`.
    Room(RequestId),
    /// `message`: the stored message.
    Message(&'a Message),
    /// `ackMessages`, `readMessages`: `{requestId, messages}` with the ids newly marked.
    Marked(RequestId, &'a [MessageId]),
    /// `refreshToken`: `{expiresAt}`.
    Refreshed(Timestamp),
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
    match data {
        AckData::Room(r) => frame("ack", Room { request_id: r.to_hex() }, Some(id)),
        AckData::Message(m) => frame("ack", WireMessage::from(m), Some(id)),
        AckData::Marked(r, ids) => frame("ack", Marked { request_id: r.to_hex(), messages: hex_ids(ids) }, Some(id)),
        AckData::Refreshed(t) => frame("ack", Refreshed { expires_at: rfc3339(t) }, Some(id)),
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
        retryable: e.code.retryable(),
        retry_after_ms: e.retry_after_ms,
    };
    frame("error", data, e.id)
}

#[cfg(test)]
mod tests;
