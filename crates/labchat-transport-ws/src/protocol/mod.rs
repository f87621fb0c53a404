//! The wire format: JSON text frames in, JSON text frames out. Only this module knows JSON.
//!
//! The names of events have one home each: client events in [`ClientEvent`], server events in
//! [`ServerEvent`] (whose room events take their names from
//! [`labchat_domain::RoomEventKind::as_str`]). [`decode`] turns a frame into a [`Command`];
//! the encoders ([`ack`], [`error`], [`room_history`], [`room_event`], [`message`]) build the
//! server's frames.

use std::fmt;
use std::str::FromStr;

use labchat_domain::{ClientMessageId, Cursor, HistoryLimit, MessageId, MessageText, RequestId, RoomEventKind};
use serde::Serialize;
use serde_json::Value;

mod decode;
mod encode;
mod history;

pub use decode::{DecodeLimits, MAX_CORRELATION_ID_CHARS, decode};
pub use encode::{AckData, ErrorFrame, ack, error, message, rfc3339, room_event};
pub use history::{Keep, room_history, room_history_with_more};

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

/// An event a client may send: the home of the client events' names.
///
/// Adding one: a variant here (and in [`ClientEvent::ALL`]), a [`Command`] variant, a DTO in the
/// decoder, a use-case call in the connection, and its reply in the encoders; the compiler
/// points at each `match` that must grow.
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
}

impl ClientEvent {
    /// Every client event, in the order the protocol lists them.
    pub const ALL: [Self; 7] = [
        Self::JoinRoom,
        Self::LeaveRoom,
        Self::Message,
        Self::AckMessages,
        Self::ReadMessages,
        Self::History,
        Self::RefreshToken,
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

/// An event the server sends: the home of the server events' names (room events take theirs from
/// the domain's [`RoomEventKind`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `ack`: a frame with an id succeeded.
    Ack,
    /// `error`: a frame failed, or the token expired.
    Error,
    /// `roomHistory`: a page of a room's history.
    RoomHistory,
    /// `message`: a stored message.
    Message,
    /// `messagesDelivered`: a user newly received messages.
    MessagesDelivered,
    /// `messageReads`: a user newly read messages.
    MessageReads,
}

impl ServerEvent {
    /// Every server event.
    pub const ALL: [Self; 6] =
        [Self::Ack, Self::Error, Self::RoomHistory, Self::Message, Self::MessagesDelivered, Self::MessageReads];

    /// The event's name on the wire; also a fixed set of metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Error => "error",
            Self::RoomHistory => "roomHistory",
            Self::Message => RoomEventKind::Message.as_str(),
            Self::MessagesDelivered => RoomEventKind::Delivered.as_str(),
            Self::MessageReads => RoomEventKind::Read.as_str(),
        }
    }
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        }
    }
}

/// A frame that could not be turned into a command: answered with `BAD_REQUEST`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BadFrame {
    /// What is wrong, for the client developer.
    pub message: String,
    /// The frame's event name, when it had a string one (known or not).
    pub event: Option<String>,
    /// The frame's correlation id, when it had a valid one.
    pub id: Option<Value>,
    /// The frame's request id, when it had a valid one.
    pub request_id: Option<RequestId>,
}

/// A decoded client frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Inbound {
    /// The event.
    pub event: ClientEvent,
    /// The correlation id (a string of at most 64 characters, or an integer), echoed on replies.
    pub id: Option<Value>,
    /// The command.
    pub command: Command,
}

#[cfg(test)]
mod tests;
