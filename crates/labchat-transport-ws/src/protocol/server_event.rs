//! [`ServerEvent`]: the events the server sends, the home of their names on the wire.

use std::fmt;

use labchat_domain::RoomEventKind;

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
    /// `messageEdited`: a message's text was edited by its sender.
    MessageEdited,
    /// `messageDeleted`: a message was deleted; it stays as a tombstone.
    MessageDeleted,
    /// `messagesDelivered`: a user newly received messages.
    MessagesDelivered,
    /// `messageReads`: a user newly read messages.
    MessageReads,
    /// `inboxUpdate`: a room's inbox row changed for the user.
    InboxUpdate,
    /// `typing`: another user is typing in a room.
    Typing,
    /// `memberJoined`: another user's first connection joined a room.
    MemberJoined,
    /// `memberLeft`: another user's last connection left a room.
    MemberLeft,
    /// `membersChanged`: several users joined or left a room within one interval.
    MembersChanged,
}

impl ServerEvent {
    /// Every server event.
    pub const ALL: [Self; 13] = [
        Self::Ack,
        Self::Error,
        Self::RoomHistory,
        Self::Message,
        Self::MessageEdited,
        Self::MessageDeleted,
        Self::MessagesDelivered,
        Self::MessageReads,
        Self::InboxUpdate,
        Self::Typing,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MembersChanged,
    ];

    /// The server event that carries a room event of `kind`.
    pub const fn of(kind: RoomEventKind) -> Self {
        match kind {
            RoomEventKind::Message => Self::Message,
            RoomEventKind::MessageEdited => Self::MessageEdited,
            RoomEventKind::MessageDeleted => Self::MessageDeleted,
            RoomEventKind::Delivered => Self::MessagesDelivered,
            RoomEventKind::Read => Self::MessageReads,
            RoomEventKind::Typing => Self::Typing,
            RoomEventKind::MemberJoined => Self::MemberJoined,
            RoomEventKind::MemberLeft => Self::MemberLeft,
            RoomEventKind::MembersChanged => Self::MembersChanged,
        }
    }

    /// The event's name on the wire; also a fixed set of metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Error => "error",
            Self::RoomHistory => "roomHistory",
            Self::Message => RoomEventKind::Message.as_str(),
            Self::MessageEdited => RoomEventKind::MessageEdited.as_str(),
            Self::MessageDeleted => RoomEventKind::MessageDeleted.as_str(),
            Self::MessagesDelivered => RoomEventKind::Delivered.as_str(),
            Self::MessageReads => RoomEventKind::Read.as_str(),
            Self::InboxUpdate => "inboxUpdate",
            Self::Typing => RoomEventKind::Typing.as_str(),
            Self::MemberJoined => RoomEventKind::MemberJoined.as_str(),
            Self::MemberLeft => RoomEventKind::MemberLeft.as_str(),
            Self::MembersChanged => RoomEventKind::MembersChanged.as_str(),
        }
    }
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
