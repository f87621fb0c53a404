//! The use cases of presence and typing: this node's connections per room and user, the
//! [`Presence`] port called on a user's first and last local connection, and the announcements
//! (`memberJoined`, `memberLeft`, `typing`).
//!
//! Presence never fails a join, a leave or a post: when the port fails (Redis is down), the
//! failure is logged and the node decides from what it knows, its own connections. Clients then
//! see the members of this node only, `memberJoined` and `memberLeft` for the users of this node
//! only (possibly repeated once the port answers again), and typing unthrottled across nodes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use labchat_domain::{RequestId, Role, RoomEvent, User, UserId};

use super::Chat;
use crate::{ChatError, Member, SinkId};

/// A room's users on this node: each one's role and connections.
// A user's sinks in a room: a list, for what is almost always one tab (a hash set would take
// four times the memory for it).
type RoomUsers = HashMap<UserId, (Role, Vec<SinkId>)>;

/// This node's connections (sinks) per room and user.
#[derive(Debug, Default)]
pub(super) struct LocalPresence {
    rooms: Mutex<HashMap<RequestId, RoomUsers>>,
}

impl LocalPresence {
    fn lock(&self) -> MutexGuard<'_, HashMap<RequestId, RoomUsers>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `sink` of `user` in `room`; `true` when it is the user's first one here.
    fn add(&self, room: RequestId, user: &User, sink: SinkId) -> bool {
        let mut rooms = self.lock();
        let users = rooms.entry(room).or_default();
        let (_, sinks) = users.entry(user.id().clone()).or_insert_with(|| (user.role(), Vec::with_capacity(1)));
        if sinks.contains(&sink) {
            return false;
        }
        sinks.push(sink);
        sinks.len() == 1
    }

    /// Stops counting `sink` of `user` in `room`; `true` when it was the user's last one here.
    fn remove(&self, room: RequestId, user: &UserId, sink: SinkId) -> bool {
        let mut rooms = self.lock();
        let Some(users) = rooms.get_mut(&room) else { return false };
        let Some((_, sinks)) = users.get_mut(user) else { return false };
        let Some(at) = sinks.iter().position(|s| *s == sink) else { return false };
        sinks.swap_remove(at);
        if !sinks.is_empty() {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            rooms.remove(&room);
        }
        true
    }

    /// The users with a connection in `room` on this node.
    fn members(&self, room: RequestId) -> Vec<Member> {
        self.lock().get(&room).map_or_else(Vec::new, |users| {
            users.iter().map(|(user_id, (role, _))| Member { user_id: user_id.clone(), role: *role }).collect()
        })
    }
}

impl Chat {
    /// A sink of `user` joined `room` (called under the room's order lock, after the history was
    /// read): on the user's first local connection, enters the room's presence and, when the
    /// user is new anywhere, announces `memberJoined`. Returns the room's members, `user`
    /// included.
    pub(super) async fn arrive(&self, room: RequestId, user: &User, sink: SinkId) -> Vec<Member> {
        if self.local.add(room, user, sink) {
            let first_anywhere = match &self.presence {
                None => true,
                Some(p) => p.enter(room, user).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, request_id = %room, "presence: entering a room failed; announcing from this node's view");
                    true
                }),
            };
            if first_anywhere {
                let (user_id, role) = (user.id().clone(), user.role());
                self.publish(RoomEvent::MemberJoined { request_id: room, user_id, role }).await;
            }
        }
        let mut members = match &self.presence {
            None => self.local.members(room),
            Some(p) => p.members(room).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, request_id = %room, "presence: listing members failed; answering with this node's");
                self.local.members(room)
            }),
        };
        if !members.iter().any(|m| m.user_id == *user.id()) {
            members.push(Member { user_id: user.id().clone(), role: user.role() });
        }
        members
    }

    /// A sink of `user` left `room` (or closed): after the user's last local connection, exits
    /// the room's presence and, when the user is gone everywhere, announces `memberLeft`. Takes
    /// the room's order lock, so that a user's entering and exiting reach the port in the order
    /// their connections came and went.
    pub(super) async fn depart(&self, room: RequestId, user: &UserId, sink: SinkId) {
        let _order = self.room_order(room).await;
        if !self.local.remove(room, user, sink) {
            return;
        }
        let last_anywhere = match &self.presence {
            None => true,
            Some(p) => p.exit(room, user).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, request_id = %room, "presence: exiting a room failed; announcing from this node's view");
                true
            }),
        };
        if last_anywhere {
            self.publish(RoomEvent::MemberLeft { request_id: room, user_id: user.clone() }).await;
        }
    }

    /// `user` is typing in `request`: broadcasts `typing` to the room (every member but the
    /// user's own connections) at most once per [`crate::TYPING_INTERVAL`] per user and room,
    /// across nodes. Returns whether it was broadcast (`false`: throttled, dropped). Nothing is
    /// stored. The user need not have joined the room, only be allowed to act on it.
    pub async fn typing(&self, user: &User, request: RequestId) -> Result<bool, ChatError> {
        self.authorize(user, request).await?;
        let allowed = match &self.presence {
            None => true,
            Some(p) => p.may_type(request, user.id()).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, request_id = %request, "presence: the typing throttle failed; broadcasting");
                true
            }),
        };
        if allowed {
            let (user_id, role) = (user.id().clone(), user.role());
            self.publish(RoomEvent::Typing { request_id: request, user_id, role }).await;
        }
        Ok(allowed)
    }
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
