//! The in-memory store's inbox: each room's last message is the last of its messages, and the
//! count per room and user of the messages the user sent or read ([`crate::seen::Seen`]) gives
//! the unread count.

use labchat_domain::{InboxPage, InboxQuery, InboxRow, RequestId, User, UserId, select_page};

use crate::state::{Inner, Room};

impl Inner {
    fn row(&self, id: RequestId, room: &Room, user: &UserId) -> Option<InboxRow> {
        let last = room.messages.last()?.clone();
        let total = u64::try_from(room.messages.len()).unwrap_or(u64::MAX).saturating_sub(room.deleted);
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
