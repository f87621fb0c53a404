//! What the in-memory store holds, under its one lock: the requests, each room's messages in seq
//! order, the message ids and idempotency keys, and what each user sent or read ([`Seen`]). The
//! store (`store.rs`) and its inbox reads (`inbox.rs`) both work on it; it imports neither.

use std::collections::HashMap;

use labchat_domain::{IdempotencyKey, Message, MessageId, Request, RequestId};

use crate::seen::Seen;

/// One room's messages in seq order: the message with seq `n` is at index `n - 1`.
#[derive(Default)]
pub(crate) struct Room {
    pub(crate) messages: Vec<Message>,
    /// Where each message is in `messages`.
    pub(crate) at: HashMap<MessageId, usize>,
    /// How many of `messages` were counted as deleted ([`labchat_core::ChatStore::count_deleted`]):
    /// they are unread for no one.
    pub(crate) deleted: u64,
}

/// Everything the store holds (behind its lock).
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) requests: HashMap<RequestId, Request>,
    pub(crate) rooms: HashMap<RequestId, Room>,
    /// Every stored message's room, by id (ids are unique across rooms).
    pub(crate) ids: HashMap<MessageId, RequestId>,
    pub(crate) idempotency: HashMap<IdempotencyKey, MessageId>,
    /// Per room and user: how many of the room's messages the user sent or read.
    pub(crate) seen: Seen,
}

impl Room {
    pub(crate) fn get(&self, id: &MessageId) -> Option<&Message> {
        self.at.get(id).and_then(|&i| self.messages.get(i))
    }

    pub(crate) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Message> {
        self.at.get(id).and_then(|&i| self.messages.get_mut(i))
    }
}
