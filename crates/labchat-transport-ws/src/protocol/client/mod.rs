//! What clients send: the client events (the home of their names) and the commands they become.
//! Each event has its own file here (as mini-redis's `cmd/`): its command, the fields it reads
//! and their validation into domain types (its `parse`, the decoder's second stage; the first,
//! the envelope, is in `decode.rs`), and what it does (its `apply`, run by the dispatcher).
//! Adding a client event happens here (see docs/ARCHITECTURE.md, "How to add a client event").

use std::fmt;
use std::str::FromStr;

use labchat_domain::RequestId;
use serde_json::{Map, Value};

mod delete_message;
mod edit_message;
mod history;
mod inbox;
mod join_room;
mod leave_room;
mod members;
mod message;
pub(crate) mod parse;
mod receipts;
mod refresh_token;
mod subscribe_inbox;
mod typing;
mod unsubscribe_inbox;

pub use delete_message::DeleteMessage;
pub use edit_message::EditMessage;
pub use history::History;
pub use inbox::Inbox;
pub use join_room::JoinRoom;
pub use leave_room::LeaveRoom;
pub use members::Members;
pub use message::Message;
use parse::{DecodeLimits, Fail};
pub use receipts::Receipts;
pub use refresh_token::RefreshToken;
pub use subscribe_inbox::SubscribeInbox;
pub use typing::Typing;
pub use unsubscribe_inbox::UnsubscribeInbox;

/// An event a client may send: the home of the client events' names.
///
/// Adding one: a variant here (and in [`ClientEvent::ALL`]), a file in this directory with its
/// command, `parse` and `apply`, a [`Command`] variant, and its reply in the encoders; the
/// compiler points at each `match` that must grow (see docs/ARCHITECTURE.md, "How to add a
/// client event").
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
    /// `editMessage`: the sender replaces a message's text.
    EditMessage,
    /// `deleteMessage`: the sender or a LAB user deletes a message.
    DeleteMessage,
}

impl ClientEvent {
    /// Every client event, in the order the protocol lists them.
    pub const ALL: [Self; 14] = [
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
        Self::EditMessage,
        Self::DeleteMessage,
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
            Self::EditMessage => "editMessage",
            Self::DeleteMessage => "deleteMessage",
        }
    }

    /// Whether the event names a room (`data.requestId`), and so is authorized against that
    /// request before anything else.
    pub const fn names_room(self) -> bool {
        match self {
            Self::JoinRoom
            | Self::LeaveRoom
            | Self::Message
            | Self::AckMessages
            | Self::ReadMessages
            | Self::History
            | Self::Typing
            | Self::Members
            | Self::EditMessage
            | Self::DeleteMessage => true,
            Self::RefreshToken | Self::Inbox | Self::SubscribeInbox | Self::UnsubscribeInbox => false,
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

/// A valid client command: one variant per client event, each holding its event's command
/// (defined in the event's file, with its `parse` and `apply`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// `joinRoom`.
    JoinRoom(JoinRoom),
    /// `leaveRoom`.
    LeaveRoom(LeaveRoom),
    /// `message`.
    Message(Message),
    /// `ackMessages`: the messages to mark delivered.
    AckMessages(Receipts),
    /// `readMessages`: the messages to mark read.
    ReadMessages(Receipts),
    /// `history`.
    History(History),
    /// `refreshToken`.
    RefreshToken(RefreshToken),
    /// `inbox`.
    Inbox(Inbox),
    /// `subscribeInbox`.
    SubscribeInbox(SubscribeInbox),
    /// `unsubscribeInbox`.
    UnsubscribeInbox(UnsubscribeInbox),
    /// `typing`.
    Typing(Typing),
    /// `members`.
    Members(Members),
    /// `editMessage`.
    EditMessage(EditMessage),
    /// `deleteMessage`.
    DeleteMessage(DeleteMessage),
}

impl Command {
    /// The room the command is about, if any.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::JoinRoom(JoinRoom { request_id, .. })
            | Self::LeaveRoom(LeaveRoom { request_id })
            | Self::Message(Message { request_id, .. })
            | Self::AckMessages(Receipts { request_id, .. })
            | Self::ReadMessages(Receipts { request_id, .. })
            | Self::History(History { request_id, .. })
            | Self::Typing(Typing { request_id })
            | Self::Members(Members { request_id, .. })
            | Self::EditMessage(EditMessage { request_id, .. })
            | Self::DeleteMessage(DeleteMessage { request_id, .. }) => Some(*request_id),
            Self::RefreshToken(_) | Self::Inbox(_) | Self::SubscribeInbox(_) | Self::UnsubscribeInbox(_) => None,
        }
    }

    /// The event this command came from.
    pub fn event(&self) -> ClientEvent {
        match self {
            Self::JoinRoom(_) => ClientEvent::JoinRoom,
            Self::LeaveRoom(_) => ClientEvent::LeaveRoom,
            Self::Message(_) => ClientEvent::Message,
            Self::AckMessages(_) => ClientEvent::AckMessages,
            Self::ReadMessages(_) => ClientEvent::ReadMessages,
            Self::History(_) => ClientEvent::History,
            Self::RefreshToken(_) => ClientEvent::RefreshToken,
            Self::Inbox(_) => ClientEvent::Inbox,
            Self::SubscribeInbox(_) => ClientEvent::SubscribeInbox,
            Self::UnsubscribeInbox(_) => ClientEvent::UnsubscribeInbox,
            Self::Typing(_) => ClientEvent::Typing,
            Self::Members(_) => ClientEvent::Members,
            Self::EditMessage(_) => ClientEvent::EditMessage,
            Self::DeleteMessage(_) => ClientEvent::DeleteMessage,
        }
    }
}

/// The second stage: `data` through the event's own `parse` into a command.
pub(super) fn command(event: ClientEvent, data: Map<String, Value>, limits: &DecodeLimits) -> Result<Command, Fail> {
    let data = Value::Object(data);
    Ok(match event {
        ClientEvent::JoinRoom => Command::JoinRoom(JoinRoom::parse(data)?),
        ClientEvent::LeaveRoom => Command::LeaveRoom(LeaveRoom::parse(data)?),
        ClientEvent::Message => Command::Message(Message::parse(data, limits)?),
        ClientEvent::AckMessages => Command::AckMessages(Receipts::parse(data, limits)?),
        ClientEvent::ReadMessages => Command::ReadMessages(Receipts::parse(data, limits)?),
        ClientEvent::History => Command::History(History::parse(data)?),
        ClientEvent::RefreshToken => Command::RefreshToken(RefreshToken::parse(data)?),
        ClientEvent::Inbox => Command::Inbox(Inbox::parse(data)?),
        ClientEvent::SubscribeInbox => Command::SubscribeInbox(SubscribeInbox),
        ClientEvent::UnsubscribeInbox => Command::UnsubscribeInbox(UnsubscribeInbox),
        ClientEvent::Typing => Command::Typing(Typing::parse(data)?),
        ClientEvent::Members => Command::Members(Members::parse(data)?),
        ClientEvent::EditMessage => Command::EditMessage(EditMessage::parse(data, limits)?),
        ClientEvent::DeleteMessage => Command::DeleteMessage(DeleteMessage::parse(data)?),
    })
}
