//! The in-memory store's inbox: each room's last message is the last of its messages, and a
//! counter per room and user of the messages the user sent or read gives the unread count.

use std::collections::HashMap;

use labchat_domain::{InboxPage, InboxQuery, InboxRow, RequestId, User, UserId, select_page};

use crate::store::{Inner, Room};

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

    /// Sets the count of `user` in `room` (a recount).
    pub(crate) fn set(&mut self, room: RequestId, user: &UserId, n: u64) {
        self.0.insert((room, user.clone()), n);
    }

    fn get(&self, room: RequestId, user: &UserId) -> u64 {
        self.0.get(&(room, user.clone())).copied().unwrap_or(0)
    }
}

impl Inner {
    fn row(&self, id: RequestId, room: &Room, user: &UserId) -> Option<InboxRow> {
        let last = room.messages.last()?.clone();
        let total = u64::try_from(room.messages.len()).unwrap_or(u64::MAX);
        Some(InboxRow { last_message: last, unread: total.saturating_sub(self.seen.get(id, user)) })
    }

    /// `viewer`'s inbox page over the requests as they are now.
    pub(crate) fn inbox(&self, viewer: &User, query: InboxQuery) -> InboxPage {
        let rows = self
            .rooms
            .iter()
            .filter(|(id, _)| self.requests.get(id).is_some_and(|r| r.authorize(viewer).is_ok()))
            .filter_map(|(id, room)| self.row(*id, room, viewer.id()))
            .collect();
        select_page(rows, query)
    }

    /// The room's row for each user, or none for a room without messages.
    pub(crate) fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Vec<InboxRow> {
        let Some(room) = self.rooms.get(&request) else { return Vec::new() };
        users.iter().filter_map(|u| self.row(request, room, u)).collect()
    }

    /// How many of the room's messages `user` neither sent nor read.
    pub(crate) fn unread_count(&self, request: RequestId, user: &UserId) -> u64 {
        self.rooms.get(&request).and_then(|room| self.row(request, room, user)).map_or(0, |r| r.unread)
    }
}
