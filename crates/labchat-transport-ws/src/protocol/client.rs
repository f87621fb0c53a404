//! What clients send: the client events (the home of their names), the commands they become,
//! and one DTO per event with its validation into domain types (the decoder's second stage; the
//! first, the envelope, is in `decode.rs`). Adding a client event happens here.

use std::fmt;
use std::str::FromStr;

use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, InboxCursor, InboxLimit, InboxQuery, MessageId, MessageText, RequestId,
    UserId,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::decode::{DecodeLimits, Fail, Field, Room, optional_id};

/// An event a client may send: the home of the client events' names.
///
/// Adding one: a variant here (and in [`ClientEvent::ALL`]), a [`Command`] variant and a DTO in
/// this file, a use-case call in the dispatcher, and its reply in the encoders; the compiler
/// points at each `match` that must grow (see docs/ARCHITECTURE.md, "How to add a client event").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `joinRoom`: subscribe to a room and get its latest history.
    JoinRoom,
    /// `leaveRoom`: unsubscribe from a room.
    LeaveRoom,
    /// `message`: post a message.
    Message,
    /// `ackMessages`: mark messages delivered.
    AckMessages,
    /// `readMessages`: mark messages read.
    ReadMessages,
    /// `history`: a page of older messages.
    History,
    /// `refreshToken`: replace the connection's token.
    RefreshToken,
    /// `inbox`: a page of the user's rooms with their unread counts.
    Inbox,
    /// `subscribeInbox`: receive `inboxUpdate` events.
    SubscribeInbox,
    /// `unsubscribeInbox`: stop receiving `inboxUpdate` events.
    UnsubscribeInbox,
    /// `typing`: tell a room's other users that this user is typing.
    Typing,
    /// `members`: a page of a room's members.
    Members,
}

impl ClientEvent {
    /// Every client event, in the order the protocol lists them.
    pub const ALL: [Self; 12] = [
        Self::JoinRoom,
        Self::LeaveRoom,
        Self::Message,
        Self::AckMessages,
        Self::ReadMessages,
        Self::History,
        Self::RefreshToken,
        Self::Inbox,
        Self::SubscribeInbox,
        Self::UnsubscribeInbox,
        Self::Typing,
        Self::Members,
    ];

    /// The event's name on the wire; also a fixed set of metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::JoinRoom => "joinRoom",
            Self::LeaveRoom => "leaveRoom",
            Self::Message => "message",
            Self::AckMessages => "ackMessages",
            Self::ReadMessages => "readMessages",
            Self::History => "history",
            Self::RefreshToken => "refreshToken",
            Self::Inbox => "inbox",
            Self::SubscribeInbox => "subscribeInbox",
            Self::UnsubscribeInbox => "unsubscribeInbox",
            Self::Typing => "typing",
            Self::Members => "members",
        }
    }
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientEvent {
    type Err = UnknownEvent;

    fn from_str(name: &str) -> Result<Self, UnknownEvent> {
        Self::ALL.into_iter().find(|e| e.as_str() == name).ok_or_else(|| UnknownEvent(name.to_owned()))
    }
}

/// A frame's event name that is not a [`ClientEvent`]. Its message lists the accepted ones.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnknownEvent(pub String);

impl fmt::Display for UnknownEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown event {:?} (expected ", self.0)?;
        let last = ClientEvent::ALL.len() - 1;
        for (i, event) in ClientEvent::ALL.iter().enumerate() {
            let sep = match i {
                0 => "",
                _ if i == last => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{event}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownEvent {}

/// The client events, by name, in the order of [`ClientEvent::ALL`].
pub const CLIENT_EVENTS: [&str; ClientEvent::ALL.len()] = {
    let mut names = [""; ClientEvent::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = ClientEvent::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The event name as a static string if it is a client event, else `"unknown"` (for metrics
/// labels, which must not take arbitrary client input).
pub fn known_event(name: &str) -> &'static str {
    name.parse::<ClientEvent>().map_or("unknown", ClientEvent::as_str)
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
        /// Where the page starts: the latest messages (default), `before` a message (scrolling
        /// back) or `after` one (catching up, in the room's order).
        cursor: Cursor,
        /// Page size.
        limit: Option<HistoryLimit>,
    },
    /// `refreshToken`.
    RefreshToken {
        /// The new token.
        token: String,
    },
    /// `inbox`.
    Inbox {
        /// The page: its size and where it starts.
        query: InboxQuery,
    },
    /// `subscribeInbox`.
    SubscribeInbox,
    /// `unsubscribeInbox`.
    UnsubscribeInbox,
    /// `typing`.
    Typing {
        /// The room.
        request_id: RequestId,
    },
    /// `members`.
    Members {
        /// The room.
        request_id: RequestId,
        /// The page starts after this user id (the previous page's `next`).
        after: Option<UserId>,
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
            | Self::History { request_id, .. }
            | Self::Typing { request_id }
            | Self::Members { request_id, .. } => Some(*request_id),
            Self::RefreshToken { .. } | Self::Inbox { .. } | Self::SubscribeInbox | Self::UnsubscribeInbox => None,
        }
    }

    /// The event this command came from.
    pub fn event(&self) -> ClientEvent {
        match self {
            Self::JoinRoom { .. } => ClientEvent::JoinRoom,
            Self::LeaveRoom { .. } => ClientEvent::LeaveRoom,
            Self::Message { .. } => ClientEvent::Message,
            Self::AckMessages { .. } => ClientEvent::AckMessages,
            Self::ReadMessages { .. } => ClientEvent::ReadMessages,
            Self::History { .. } => ClientEvent::History,
            Self::RefreshToken { .. } => ClientEvent::RefreshToken,
            Self::Inbox { .. } => ClientEvent::Inbox,
            Self::SubscribeInbox => ClientEvent::SubscribeInbox,
            Self::UnsubscribeInbox => ClientEvent::UnsubscribeInbox,
            Self::Typing { .. } => ClientEvent::Typing,
            Self::Members { .. } => ClientEvent::Members,
        }
    }
}

/// The second stage: `data` through the event's DTO into a command.
pub(super) fn command(event: ClientEvent, data: Map<String, Value>, limits: &DecodeLimits) -> Result<Command, Fail> {
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
        ClientEvent::Inbox => dto::<Inbox>(data)?.command(),
        ClientEvent::SubscribeInbox => Ok(Command::SubscribeInbox),
        ClientEvent::UnsubscribeInbox => Ok(Command::UnsubscribeInbox),
        ClientEvent::Typing => Ok(Command::Typing { request_id: dto::<Typing>(data)?.room.request_id()? }),
        ClientEvent::Members => dto::<Members>(data)?.command(),
    }
}

/// Reads `data` into a DTO. Every DTO field is a [`Field`], so this only fails on a non-object,
/// which the envelope already refused.
fn dto<T: DeserializeOwned>(data: Value) -> Result<T, Fail> {
    serde_json::from_value(data).map_err(|e| (format!("field data is malformed: {e}"), None))
}

// The DTOs: one per event, naming the fields it reads (see [`Field`]).

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

/// `typing {requestId}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Typing {
    #[serde(flatten)]
    room: Room,
}

/// `members {requestId, after?}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Members {
    #[serde(flatten)]
    room: Room,
    after: Field,
}

/// `refreshToken {token}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RefreshToken {
    token: Field,
}

/// `inbox {limit?, before?}`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Inbox {
    limit: Field,
    before: Field,
}

// Validation: DTO to command. The room is checked first; later errors carry it.

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

impl Inbox {
    fn command(self) -> Result<Command, Fail> {
        let fail = |m: String| (m, None);
        let limit = match self.limit.non_null() {
            None => InboxLimit::DEFAULT,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| InboxLimit::new(n).ok())
                .ok_or_else(|| fail(format!("field data.limit must be an integer from 1 to {}", InboxLimit::MAX)))?,
            Some(_) => {
                return Err(fail(format!("field data.limit must be an integer from 1 to {}", InboxLimit::MAX)));
            }
        };
        let bad_cursor = || fail(crate::errors::NOT_AN_INBOX_CURSOR.into());
        let before = match self.before.non_null() {
            None => None,
            Some(Value::String(s)) => Some(InboxCursor::parse(&s).map_err(|_| bad_cursor())?),
            Some(_) => return Err(bad_cursor()),
        };
        Ok(Command::Inbox { query: InboxQuery { limit, before } })
    }
}

impl Members {
    fn command(self) -> Result<Command, Fail> {
        let request_id = self.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let after = match self.after.non_null() {
            None => None,
            Some(Value::String(s)) => Some(UserId::parse(s).map_err(|e| fail(format!("field data.after: {e}")))?),
            Some(_) => return Err(fail("field data.after must be the `next` of an earlier members page".into())),
        };
        Ok(Command::Members { request_id, after })
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
