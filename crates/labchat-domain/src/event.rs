use crate::{Message, MessageId, RequestId, Timestamp, UserId};

/// Something that happened in a request's room, which every member of the room is told, in the
/// same order for every member.
///
/// New kinds of event will be added: match with a wildcard arm.
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
#[non_exhaustive]
pub enum RoomEvent {
    /// A message was stored in the room.
    MessagePosted(Message),
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
}

/// The kind of a [`RoomEvent`], without its data: the home of the events' names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum RoomEventKind {
    /// [`RoomEvent::MessagePosted`].
    Message,
    /// [`RoomEvent::Delivered`].
    Delivered,
    /// [`RoomEvent::Read`].
    Read,
}

impl RoomEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Message, Self::Delivered, Self::Read];

    /// The event's name as clients see it (`message`, `messagesDelivered`, `messageReads`); also
    /// a fixed set of metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Delivered => "messagesDelivered",
            Self::Read => "messageReads",
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
            Self::Delivered { .. } => RoomEventKind::Delivered,
            Self::Read { .. } => RoomEventKind::Read,
        }
    }

    /// The room the event belongs to.
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::MessagePosted(m) => m.request_id,
            Self::Delivered { request_id, .. } | Self::Read { request_id, .. } => *request_id,
        }
    }
}
