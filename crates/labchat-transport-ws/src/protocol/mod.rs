//! The wire format: JSON text frames in, JSON text frames out. Only this module knows JSON.
//!
//! The names of events have one home each: client events in [`ClientEvent`], server events in
//! [`ServerEvent`] (whose room events take their names from
//! [`labchat_domain::RoomEventKind::as_str`]). [`decode`] turns a frame into a [`Command`];
//! the encoders ([`ack`], [`error`], [`room_history`], [`room_event`], [`message`]) build the
//! server's frames. Each client event has a file of its own under `client/`, with its command,
//! its parse and its apply (what the connection does with it).

use labchat_domain::RequestId;
use serde::Serialize;
use serde_json::Value;

mod client;
mod decode;
mod encode;
mod history;
mod inbox;
mod server_event;

pub use client::parse::DecodeLimits;
pub use client::{
    CLIENT_EVENTS, ClientEvent, Command, DeleteMessage, EditMessage, History, Inbox, JoinRoom, LeaveRoom, Members,
    Message, Receipts, RefreshToken, SubscribeInbox, Typing, UnknownEvent, UnsubscribeInbox, known_event,
};
pub use decode::{MAX_CORRELATION_ID_CHARS, decode};
pub use encode::{AckData, ErrorFrame, ack, error, message, rfc3339, room_event};
pub use history::{Keep, replay, room_history, room_history_with_more};
pub use inbox::{inbox_ack, inbox_update, join_fields_len, members_ack, with_join_fields};
pub use server_event::ServerEvent;

/// Error codes of `error` frames. Each frame also says whether the client should send the
/// failed frame again ([`ErrorCode::retryable`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame is malformed, or does not fit the room; nothing was done.
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
    /// A `refreshToken` token is invalid (bad signature, expired, expiring before the current
    /// one...); the current one still holds.
    Unauthorized,
    /// `after` names no message of the room (its history was wiped or restored): the client
    /// resets the room and joins without `after`. Nothing was done.
    UnknownAfter,
    /// A `message`'s `clientMessageId` was used before by the same user in the same room for a
    /// different text. Nothing was stored.
    ClientMessageIdReused,
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
            Self::UnknownAfter => "UNKNOWN_AFTER",
            Self::ClientMessageIdReused => "CLIENT_MESSAGE_ID_REUSED",
        }
    }

    /// Whether the client should send the failed frame (`command`, when there was one) again
    /// later, unchanged but for a new token after `UNAUTHORIZED`: it may then succeed, and does
    /// nothing twice.
    ///
    /// `RATE_LIMITED`: the frame was not processed, so always (after `retryAfterMs`).
    /// `UNAVAILABLE`: every frame but a `message` without `clientMessageId`, which may have been
    /// stored before the store failed to answer (a repeat would store it twice). `INTERNAL`: only
    /// a `message` with `clientMessageId`, whose repeat stores it at most once and is the only
    /// way to learn whether it was stored. `UNAUTHORIZED`: with a new token. Never the others: the
    /// same frame fails the same way.
    pub fn retryable(self, command: Option<&Command>) -> bool {
        let send_with_id = match command {
            Some(Command::Message(m)) => Some(m.client_message_id.is_some()),
            _ => None,
        };
        match self {
            Self::RateLimited | Self::Unauthorized => true,
            Self::Unavailable => send_with_id != Some(false),
            Self::Internal => send_with_id == Some(true),
            Self::BadRequest
            | Self::Forbidden
            | Self::TokenExpired
            | Self::UnknownAfter
            | Self::ClientMessageIdReused => false,
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
