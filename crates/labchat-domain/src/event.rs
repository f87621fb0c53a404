use crate::{Message, MessageId, RequestId, Timestamp, UserId};

/// Something that happened in a request's room, which every member of the room is told, in the
/// same order for every member.
#[derive(Clone, PartialEq, Eq, Debug)]
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
        messages: Vec<MessageId>,
        /// When they were marked.
        at: Timestamp,
    },
}

impl RoomEvent {
    /// The room the event belongs to.
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::MessagePosted(m) => m.request_id,
            Self::Delivered { request_id, .. } | Self::Read { request_id, .. } => *request_id,
        }
    }
}
