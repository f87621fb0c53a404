//! Client frames to commands, in two stages: the envelope `{event, id, data}`, then one DTO per
//! event, validated into domain types. Never panics: any input is a [`Command`] or a
//! [`BadFrame`], whose message names the first field that is wrong.

use labchat_domain::{ClientMessageId, Cursor, HistoryLimit, MessageId, MessageText, RequestId};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

use super::{BadFrame, ClientEvent, Command, Inbound};

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

/// The longest correlation id string, in characters.
pub const MAX_CORRELATION_ID_CHARS: usize = 64;

/// Decodes one text frame. Never panics: any input is either a command or a [`BadFrame`].
pub fn decode(text: &str, limits: &DecodeLimits) -> Result<Inbound, Box<BadFrame>> {
    let Envelope { event, id, data } = Envelope::parse(text)?;
    let bad = |message: String, request_id: Option<RequestId>| {
        Box::new(BadFrame { message, event: Some(event.clone()), id: id.clone(), request_id })
    };
    let client_event = event.parse::<ClientEvent>().map_err(|e| bad(e.to_string(), None))?;
    let command = command(client_event, data, limits).map_err(|(message, rid)| bad(message, rid))?;
    Ok(Inbound { event: client_event, id, command })
}

impl BadFrame {
    fn boxed(message: String) -> Box<Self> {
        Box::new(Self { message, event: None, id: None, request_id: None })
    }
}

/// The first stage: a frame's envelope, its `data` still untyped.
struct Envelope {
    event: String,
    id: Option<Value>,
    data: Map<String, Value>,
}

impl Envelope {
    fn parse(text: &str) -> Result<Self, Box<BadFrame>> {
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
        let id = correlation_id(frame.remove("id"));
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
        let data = match frame.remove("data") {
            Some(Value::Object(m)) => m,
            other => {
                let message = if other.is_some() { "field data must be an object" } else { "missing field data" };
                return Err(Box::new(BadFrame { message: message.into(), event: Some(event), id, request_id: None }));
            }
        };
        Ok(Self { event, id, data })
    }
}

fn correlation_id(id: Option<Value>) -> Result<Option<Value>, String> {
    match id {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_CORRELATION_ID_CHARS => Ok(Some(Value::String(s))),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(Value::Number(n))),
        Some(_) => {
            Err(format!("field id must be a string of at most {MAX_CORRELATION_ID_CHARS} characters or an integer"))
        }
    }
}

/// What is wrong, and the frame's room when it was valid.
type Fail = (String, Option<RequestId>);

/// The second stage: `data` through the event's DTO into a command.
fn command(event: ClientEvent, data: Map<String, Value>, limits: &DecodeLimits) -> Result<Command, Fail> {
    let data = Value::Object(data);
    match event {
        ClientEvent::JoinRoom => dto::<JoinRoom>(data)?.command(),
        ClientEvent::LeaveRoom => dto::<LeaveRoom>(data)?.command(),
        ClientEvent::Message => dto::<Message>(data)?.command(limits),
        ClientEvent::AckMessages => {
            let (request_id, ids) = dto::<Receipts>(data)?.ids(limits)?;
            Ok(Command::AckMessages { request_id, ids })
        }
        ClientEvent::ReadMessages => {
            let (request_id, ids) = dto::<Receipts>(data)?.ids(limits)?;
            Ok(Command::ReadMessages { request_id, ids })
        }
        ClientEvent::History => dto::<History>(data)?.command(),
        ClientEvent::RefreshToken => dto::<RefreshToken>(data)?.command(),
    }
}

/// Reads `data` into a DTO. Every DTO field is a [`Field`], so this only fails on a non-object,
/// which the envelope already refused.
fn dto<T: DeserializeOwned>(data: Value) -> Result<T, Fail> {
    serde_json::from_value(data).map_err(|e| (format!("field data is malformed: {e}"), None))
}

// ---------------------------------------------------------------------------------------------
// The DTOs: one per event, naming the fields it reads. Fields are kept as JSON values, typed
// by the validation below, so that every error names its field in the protocol's own words.

/// A field of `data`: absent, or present with any JSON value (`null` included).
#[derive(Default, Debug)]
struct Field(Option<Value>);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Self(Some(v)))
    }
}

impl Field {
    /// The value, with `null` read as absent.
    fn non_null(self) -> Option<Value> {
        self.0.filter(|v| !v.is_null())
    }
}

/// The room, under `requestId` or its alias `resquestId`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Room {
    #[serde(rename = "requestId")]
    request_id: Field,
    #[serde(rename = "resquestId")]
    resquest_id: Field,
}

/// `joinRoom {requestId, after?}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct JoinRoom {
    #[serde(flatten)]
    room: Room,
    after: Field,
}

/// `leaveRoom {requestId}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct LeaveRoom {
    #[serde(flatten)]
    room: Room,
}

/// `message {requestId, message, clientMessageId?}`.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Message {
    #[serde(flatten)]
    room: Room,
    message: Field,
    client_message_id: Field,
}

/// `ackMessages` and `readMessages` `{requestId, messages}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Receipts {
    #[serde(flatten)]
    room: Room,
    messages: Field,
}

/// `history {requestId, before?, after?, limit?}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct History {
    #[serde(flatten)]
    room: Room,
    before: Field,
    after: Field,
    limit: Field,
}

/// `refreshToken {token}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RefreshToken {
    token: Field,
}

// ---------------------------------------------------------------------------------------------
// Validation: DTO to command. The room is checked first; later errors carry it.

impl Room {
    fn request_id(self) -> Result<RequestId, Fail> {
        let raw = match (self.request_id.0, self.resquest_id.0) {
            (Some(a), Some(b)) if a != b => {
                return Err(("fields data.requestId and data.resquestId disagree; send one of them".into(), None));
            }
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Err(("missing field data.requestId".into(), None)),
        };
        match raw {
            Value::String(s) => RequestId::parse(&s).map_err(|e| (format!("field data.requestId: {e}"), None)),
            _ => Err(("field data.requestId must be a 24-hex string".into(), None)),
        }
    }
}

impl JoinRoom {
    fn command(self) -> Result<Command, Fail> {
        let request_id = self.room.request_id()?;
        let after = optional_id(self.after, "after").map_err(|m| (m, Some(request_id)))?;
        Ok(Command::JoinRoom { request_id, after })
    }
}

impl LeaveRoom {
    fn command(self) -> Result<Command, Fail> {
        Ok(Command::LeaveRoom { request_id: self.room.request_id()? })
    }
}

impl Message {
    fn command(self, limits: &DecodeLimits) -> Result<Command, Fail> {
        let request_id = self.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let text = match self.message.0 {
            Some(Value::String(s)) => {
                MessageText::parse(s, limits.max_message_chars).map_err(|e| fail(format!("field data.message: {e}")))?
            }
            Some(_) => return Err(fail("field data.message must be a string".into())),
            None => return Err(fail("missing field data.message".into())),
        };
        let client_message_id = match self.client_message_id.non_null() {
            None => None,
            Some(Value::String(s)) => {
                Some(ClientMessageId::parse(s).map_err(|e| fail(format!("field data.clientMessageId: {e}")))?)
            }
            Some(_) => return Err(fail("field data.clientMessageId must be a string".into())),
        };
        Ok(Command::Message { request_id, text, client_message_id })
    }
}

impl Receipts {
    fn ids(self, limits: &DecodeLimits) -> Result<(RequestId, Vec<MessageId>), Fail> {
        let request_id = self.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let Some(Value::Array(items)) = self.messages.0 else {
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
        Ok((request_id, ids))
    }
}

impl History {
    fn command(self) -> Result<Command, Fail> {
        let request_id = self.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let before = optional_id(self.before, "before").map_err(fail)?;
        let after = optional_id(self.after, "after").map_err(fail)?;
        let cursor = match (before, after) {
            (None, None) => Cursor::Latest,
            (Some(id), None) => Cursor::Before(id),
            (None, Some(id)) => Cursor::After(id),
            (Some(_), Some(_)) => {
                return Err(fail("fields data.before and data.after exclude each other; send one of them".into()));
            }
        };
        let limit = match self.limit.non_null() {
            None => None,
            Some(Value::Number(n)) => {
                // Negative and fractional numbers are out of range like 0.
                let n = n.as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                Some(HistoryLimit::new(n).map_err(|e| fail(format!("field data.limit: {e}")))?)
            }
            Some(_) => return Err(fail("field data.limit must be a positive integer".into())),
        };
        Ok(Command::History { request_id, cursor, limit })
    }
}

impl RefreshToken {
    fn command(self) -> Result<Command, Fail> {
        match self.token.0 {
            Some(Value::String(token)) if !token.is_empty() => Ok(Command::RefreshToken { token }),
            _ => Err(("field data.token must be a non-empty string".into(), None)),
        }
    }
}

fn optional_id(field: Field, name: &str) -> Result<Option<MessageId>, String> {
    match field.non_null() {
        None => Ok(None),
        Some(Value::String(s)) => MessageId::parse(&s).map(Some).map_err(|e| format!("field data.{name}: {e}")),
        Some(_) => Err(format!("field data.{name} must be a 24-hex string")),
    }
}
