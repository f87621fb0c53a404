//! The in-memory store's count, per room and user, of the messages the user sent or read: the
//! inbox's unread count is the room's messages less this.

use std::collections::HashMap;

use labchat_domain::{RequestId, UserId};

/// Per room and user: how many of the room's messages the user sent or read (each at most once:
/// a message is read once, and never by its sender).
#[derive(Default)]
pub(crate) struct Seen(HashMap<(RequestId, UserId), u64>);

impl Seen {
    /// Counts `n` more messages of `room` as sent or read by `user`.
    pub(crate) fn add(&mut self, room: RequestId, user: &UserId, n: u64) {
        if n > 0 {
            let count = self.0.entry((room, user.clone())).or_default();
            *count = count.saturating_add(n);
        }
    }

    /// Counts one message of `room` less as sent or read by `user` (it was deleted).
    pub(crate) fn remove_one(&mut self, room: RequestId, user: &UserId) {
        if let Some(count) = self.0.get_mut(&(room, user.clone())) {
            *count = count.saturating_sub(1);
        }
    }

    /// Sets the count of `user` in `room` (a recount).
    pub(crate) fn set(&mut self, room: RequestId, user: &UserId, n: u64) {
        self.0.insert((room, user.clone()), n);
    }

    pub(crate) fn get(&self, room: RequestId, user: &UserId) -> u64 {
        self.0.get(&(room, user.clone())).copied().unwrap_or(0)
    }
}
