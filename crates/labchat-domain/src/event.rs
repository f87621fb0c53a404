//! Room events ([`RoomEvent`]): what every member of a room is told, in the room's order.

use crate::{Message, MessageId, RequestId, Role, Seq, Timestamp, UserId};

/// Something that happened in a request's room, which every member of the room is told, in the
/// same order for every member.
///
/// Not `#[non_exhaustive]` on purpose: a new variant must fail to compile wherever events are
/// matched. The decisions every adapter needs (ordering, inbox effect, audience) are methods
/// here ([`RoomEvent::placement`], [`RoomEvent::inbox_effect`], [`RoomEvent::hidden_from`]),
/// each an exhaustive match, so a new variant is decided in this file first.
///
/// With the feature `serde`: `{"type":"<variant in camelCase>","data":<the variant's data>}`
/// (adjacently tagged, so a variant of any shape has a form), struct variants' fields in
/// camelCase; see the crate docs.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "type", content = "data", rename_all = "camelCase", rename_all_fields = "camelCase")
)]
pub enum RoomEvent {
    /// A message was stored in the room.
    MessagePosted(Message),
    /// A stored message's text was edited by its sender: the message as it is now (its new text
    /// and `edited_at`, its seq and receipts unchanged).
    MessageEdited(Message),
    /// A stored message was deleted (by its sender, or a LAB user): the tombstone as it is now,
    /// without its text, keeping its seq and receipts.
    MessageDeleted(Message),
    /// `user` newly received these messages (only the ids that were newly marked).
    Delivered {
        /// The room.
        request_id: RequestId,
        /// Who received them.
        user_id: UserId,
        /// The ids newly marked as delivered, never empty.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "crate::serde_impls::non_empty"))]
        messages: Vec<MessageId>,
        /// When they were marked.
        at: Timestamp,
    },
    /// `user` newly read these messages (only the ids that were newly marked).
    Read {
        /// The room.
        request_id: RequestId,
        /// Who read them.
        user_id: UserId,
        /// The ids newly marked as read, never empty.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "crate::serde_impls::non_empty"))]
        messages: Vec<MessageId>,
        /// When they were marked.
        at: Timestamp,
    },
    /// `user` is typing in the room. Ephemeral: not stored, carries no seq, not ordered against
    /// messages; the user's own connections are not told ([`RoomEvent::hidden_from`]).
    Typing {
        /// The room.
        request_id: RequestId,
        /// Who is typing.
        user_id: UserId,
        /// In which role.
        role: Role,
    },
    /// `user`'s first connection (over all nodes) joined the room. Ephemeral, like
    /// [`RoomEvent::Typing`].
    MemberJoined {
        /// The room.
        request_id: RequestId,
        /// Who joined.
        user_id: UserId,
        /// In which role.
        role: Role,
    },
    /// `user`'s last connection (over all nodes) left the room, closed, or its node stopped
    /// refreshing its presence. Ephemeral, like [`RoomEvent::Typing`].
    MemberLeft {
        /// The room.
        request_id: RequestId,
        /// Who left.
        user_id: UserId,
    },
    /// Several users joined or left the room in one short interval: the changes past a room's
    /// bound of [`RoomEvent::MemberJoined`] and [`RoomEvent::MemberLeft`] per interval, coalesced
    /// by the node that decided them. Each user is named once, by their latest change, so the
    /// changes may be applied in any order. Ephemeral, like [`RoomEvent::Typing`]; every member
    /// hears it (it may name the receiving user).
    MembersChanged {
        /// The room.
        request_id: RequestId,
        /// Who joined (and had not left again by the end of the interval).
        joined: Vec<Member>,
        /// Who left (and had not joined again by the end of the interval).
        left: Vec<UserId>,
        /// How many users were present in the room, on every node, when it was sent.
        members_count: u64,
    },
}

/// A user present in a room: at least one of their connections, on some node, joined it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct Member {
    /// Who.
    pub user_id: UserId,
    /// In which role.
    pub role: Role,
}

/// The kind of a [`RoomEvent`], without its data: the home of the events' names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RoomEventKind {
    /// [`RoomEvent::MessagePosted`].
    Message,
    /// [`RoomEvent::MessageEdited`].
    MessageEdited,
    /// [`RoomEvent::MessageDeleted`].
    MessageDeleted,
    /// [`RoomEvent::Delivered`].
    Delivered,
    /// [`RoomEvent::Read`].
    Read,
    /// [`RoomEvent::Typing`].
    Typing,
    /// [`RoomEvent::MemberJoined`].
    MemberJoined,
    /// [`RoomEvent::MemberLeft`].
    MemberLeft,
    /// [`RoomEvent::MembersChanged`].
    MembersChanged,
}

impl RoomEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::Message,
        Self::MessageEdited,
        Self::MessageDeleted,
        Self::Delivered,
        Self::Read,
        Self::Typing,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MembersChanged,
    ];

    /// The event's name as clients see it (`message`, `messagesDelivered`, `messageReads`,
    /// `messageEdited`, `messageDeleted`, `typing`, `memberJoined`, `memberLeft`,
    /// `membersChanged`); also a fixed set of metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MessageEdited => "messageEdited",
            Self::MessageDeleted => "messageDeleted",
            Self::Delivered => "messagesDelivered",
            Self::Read => "messageReads",
            Self::Typing => "typing",
            Self::MemberJoined => "memberJoined",
            Self::MemberLeft => "memberLeft",
            Self::MembersChanged => "membersChanged",
        }
    }

    /// Whether events of this kind are ephemeral: typing and presence, which are not stored,
    /// carry no seq and are not ordered against the room's messages (a node delivers them as
    /// they come, never waiting for a gap to fill nor filling them from the store).
    pub const fn is_ephemeral(self) -> bool {
        match self {
            Self::Typing | Self::MemberJoined | Self::MemberLeft | Self::MembersChanged => true,
            Self::Message | Self::MessageEdited | Self::MessageDeleted | Self::Delivered | Self::Read => false,
        }
    }
}

impl std::fmt::Display for RoomEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RoomEvent {
    /// What kind of event this is.
    pub fn kind(&self) -> RoomEventKind {
        match self {
            Self::MessagePosted(_) => RoomEventKind::Message,
            Self::MessageEdited(_) => RoomEventKind::MessageEdited,
            Self::MessageDeleted(_) => RoomEventKind::MessageDeleted,
            Self::Delivered { .. } => RoomEventKind::Delivered,
            Self::Read { .. } => RoomEventKind::Read,
            Self::Typing { .. } => RoomEventKind::Typing,
            Self::MemberJoined { .. } => RoomEventKind::MemberJoined,
            Self::MemberLeft { .. } => RoomEventKind::MemberLeft,
            Self::MembersChanged { .. } => RoomEventKind::MembersChanged,
        }
    }

    /// The room the event belongs to.
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::MessagePosted(m) | Self::MessageEdited(m) | Self::MessageDeleted(m) => m.request_id,
            Self::Delivered { request_id, .. }
            | Self::Read { request_id, .. }
            | Self::Typing { request_id, .. }
            | Self::MemberJoined { request_id, .. }
            | Self::MemberLeft { request_id, .. }
            | Self::MembersChanged { request_id, .. } => *request_id,
        }
    }

    /// The user whose own connections are not told this event: the subject of a typing or
    /// presence event (a user does not hear themself typing, joining or leaving, on any tab).
    /// `None` for every other event, which every member hears.
    pub fn hidden_from(&self) -> Option<&UserId> {
        match self {
            Self::Typing { user_id, .. } | Self::MemberJoined { user_id, .. } | Self::MemberLeft { user_id, .. } => {
                Some(user_id)
            }
            Self::MessagePosted(_)
            | Self::MessageEdited(_)
            | Self::MessageDeleted(_)
            | Self::Delivered { .. }
            | Self::Read { .. }
            | Self::MembersChanged { .. } => None,
        }
    }

    /// The seq of a stored message's event; `None` for every other event (and for a message no
    /// store numbered yet).
    pub fn seq(&self) -> Option<Seq> {
        match self.placement() {
            Placement::Sequenced(seq) => Some(seq),
            Placement::Follows { .. } | Placement::AsItComes => None,
        }
    }

    /// Where the event goes in the room's order, which every node keeps for its members.
    pub fn placement(&self) -> Placement<'_> {
        match self {
            Self::MessagePosted(m) => m.seq.map_or(Placement::AsItComes, Placement::Sequenced),
            Self::MessageEdited(m) | Self::MessageDeleted(m) => {
                Placement::Follows { messages: std::slice::from_ref(&m.id), up_to: m.seq }
            }
            Self::Delivered { messages, .. } | Self::Read { messages, .. } => {
                Placement::Follows { messages, up_to: None }
            }
            Self::Typing { .. } | Self::MemberJoined { .. } | Self::MemberLeft { .. } | Self::MembersChanged { .. } => {
                Placement::AsItComes
            }
        }
    }

    /// What the event changes in the inbox of the users who may act on the room, if anything.
    pub fn inbox_effect(&self) -> Option<InboxEffect<'_>> {
        match self {
            // A new last message; an edit or a delete of the last one changes the row's message,
            // and a delete changes the counts of those who had not read it.
            Self::MessagePosted(_) | Self::MessageEdited(_) | Self::MessageDeleted(_) => Some(InboxEffect::RoomRows),
            Self::Read { user_id, .. } => Some(InboxEffect::UnreadOf(user_id)),
            // A delivery receipt changes no count, and the row's last message is re-read with
            // its receipts whenever the row is read.
            Self::Delivered { .. } => None,
            Self::Typing { .. } | Self::MemberJoined { .. } | Self::MemberLeft { .. } | Self::MembersChanged { .. } => {
                None
            }
        }
    }
}

/// Where a [`RoomEvent`] goes in its room's order ([`RoomEvent::placement`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement<'a> {
    /// A stored message: delivered in seq order, after every lower seq of the room, each seq
    /// once; a hole waits to be filled from the store.
    Sequenced(Seq),
    /// A change to stored messages (receipts, an edit, a delete): delivered after the messages it
    /// names, which the receiver must know first: by their ids, or, when the event carries it,
    /// by `up_to`, the highest seq among them (an edit or a deletion carries its message's seq;
    /// a receipt does not): a receiver that delivered the room up to that seq knows them all,
    /// however long ago they came.
    Follows {
        /// The messages it changes.
        messages: &'a [MessageId],
        /// The highest seq among them, when the event carries it.
        up_to: Option<Seq>,
    },
    /// Ephemeral (typing, presence) or not numbered by a store: delivered as it comes, never
    /// held and never filled from the store.
    AsItComes,
}

/// What a [`RoomEvent`] changes in inboxes ([`RoomEvent::inbox_effect`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InboxEffect<'a> {
    /// The room's row may have changed for every user who may act on it (its last message, and
    /// so the unread counts).
    RoomRows,
    /// Only this user's row changed (their unread count).
    UnreadOf(&'a UserId),
}
