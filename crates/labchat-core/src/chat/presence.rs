//! The use cases of presence and typing: this node's connections per room and user, the
//! [`Presence`] port called on a user's first and last local connection, and the announcements
//! (`memberJoined`, `memberLeft`, `membersChanged`, `typing`), bounded per room and interval
//! (`burst.rs`), and the pages of a room's members.
//!
//! Presence never fails a join, a leave or a post: when the port fails (Redis is down), the
//! failure is logged and the node decides from what it knows, its own connections. Clients then
//! see the members of this node only, `memberJoined` and `memberLeft` for the users of this node
//! only (possibly repeated once the port answers again), and typing unthrottled across nodes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};

use labchat_domain::{RequestId, Role, RoomEvent, User, UserId};

use super::Chat;
use super::burst::{Admit, Bursts};
use crate::{Broadcaster, ChatError, MEMBERS_PAGE, Member, MembersPage, Presence, SinkId};

/// A room's users on this node: each one's role and connections.
type RoomUsers = HashMap<UserId, (Role, Tabs)>;

/// A user's connections (sinks) in a room: almost always one tab, held without an allocation
/// (every idle connection holds its entry).
#[derive(Debug)]
enum Tabs {
    One(SinkId),
    Many(Vec<SinkId>),
}

impl Tabs {
    /// Adds `sink`; `false` when it was there.
    fn add(&mut self, sink: SinkId) -> bool {
        match self {
            Self::One(s) if *s == sink => false,
            Self::One(s) => {
                *self = Self::Many(vec![*s, sink]);
                true
            }
            Self::Many(v) if v.contains(&sink) => false,
            Self::Many(v) => {
                v.push(sink);
                true
            }
        }
    }

    /// Removes `sink`; `None` when it was not there, else whether none is left.
    fn remove(&mut self, sink: SinkId) -> Option<bool> {
        match self {
            Self::One(s) => (*s == sink).then_some(true),
            Self::Many(v) => {
                let at = v.iter().position(|s| *s == sink)?;
                v.swap_remove(at);
                if let [one] = v.as_slice() {
                    *self = Self::One(*one);
                }
                Some(false)
            }
        }
    }
}

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
        match users.entry(user.id().clone()) {
            Entry::Occupied(mut tabs) => {
                tabs.get_mut().1.add(sink);
                false
            }
            Entry::Vacant(v) => {
                v.insert((user.role(), Tabs::One(sink)));
                true
            }
        }
    }

    /// Stops counting `sink` of `user` in `room`; `true` when it was the user's last one here.
    fn remove(&self, room: RequestId, user: &UserId, sink: SinkId) -> bool {
        let mut rooms = self.lock();
        let Some(users) = rooms.get_mut(&room) else { return false };
        let Some((_, tabs)) = users.get_mut(user) else { return false };
        if tabs.remove(sink) != Some(true) {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            rooms.remove(&room);
        }
        true
    }

    /// A page of the users with a connection in `room` on this node.
    fn members(&self, room: RequestId, after: Option<&UserId>, limit: usize) -> MembersPage {
        let all = self.lock().get(&room).map_or_else(Vec::new, |users| {
            users.iter().map(|(user_id, (role, _))| Member { user_id: user_id.clone(), role: *role }).collect()
        });
        MembersPage::select(all, after, limit)
    }
}

/// What a presence flush needs, shared with its task.
#[derive(Clone)]
pub(super) struct Announcer {
    pub(super) bursts: Arc<Bursts>,
    pub(super) broadcaster: Arc<dyn Broadcaster>,
    pub(super) presence: Option<Arc<dyn Presence>>,
    pub(super) local: Arc<LocalPresence>,
}

impl Announcer {
    /// A page of `room`'s members from the port, or from this node's connections when it fails.
    async fn page(&self, room: RequestId, after: Option<&UserId>, limit: usize) -> MembersPage {
        match &self.presence {
            None => self.local.members(room, after, limit),
            Some(p) => p.members(room, after.cloned(), limit).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, request_id = %room, "presence: listing members failed; answering with this node's");
                self.local.members(room, after, limit)
            }),
        }
    }

    async fn publish(&self, event: RoomEvent) {
        if let Err(e) = self.broadcaster.publish(event).await {
            tracing::warn!(error = %e, "presence: publishing a presence change failed");
        }
    }

    /// Announces a change of `user` in `room` (`Some(role)`: joined, `None`: left): now, or in
    /// the room's next `membersChanged` past the burst bound.
    async fn announce(&self, room: RequestId, user: &UserId, change: Option<Role>) {
        match self.bursts.admit(room, user, change, tokio::time::Instant::now()) {
            Admit::Now => {
                let user_id = user.clone();
                self.publish(match change {
                    Some(role) => RoomEvent::MemberJoined { request_id: room, user_id, role },
                    None => RoomEvent::MemberLeft { request_id: room, user_id },
                })
                .await;
            }
            Admit::Wait(None) => {}
            Admit::Wait(Some(at)) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(self.clone().flush(room, at))),
                Err(e) => tracing::error!(error = %e, request_id = %room, "presence: no runtime to announce changes"),
            },
        }
    }

    /// Sends the room's waiting changes at `at`, then every interval while changes keep waiting.
    async fn flush(self, room: RequestId, mut at: tokio::time::Instant) {
        loop {
            tokio::time::sleep_until(at).await;
            let now = tokio::time::Instant::now();
            let Some(batch) = self.bursts.take(room, now) else { return };
            // The count after the changes are taken, so that it counts every user this frame
            // says joined (each entered the room before their change was admitted). A change
            // admitted meanwhile waits for the next frame, whose count is read after it again,
            // so the last frame of a storm carries the room's final count.
            let count = self.page(room, None, 0).await.count;
            let members_count = u64::try_from(count).unwrap_or(u64::MAX);
            let (joined, left) = (batch.joined, batch.left);
            self.publish(RoomEvent::MembersChanged { request_id: room, joined, left, members_count }).await;
            at = now + self.bursts.interval();
        }
    }
}

impl Chat {
    /// A sink of `user` joined `room` (called under the room's order lock, after the history was
    /// read): on the user's first local connection, enters the room's presence and, when the
    /// user is new anywhere, announces it (`memberJoined`, or within a `membersChanged` past
    /// the burst bound). Returns the first page of the room's members.
    pub(super) async fn arrive(&self, room: RequestId, user: &User, sink: SinkId) -> MembersPage {
        if self.local.add(room, user, sink) {
            let first_anywhere = match &self.presence {
                None => true,
                Some(p) => p.enter(room, user).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, request_id = %room, "presence: entering a room failed; announcing from this node's view");
                    true
                }),
            };
            if first_anywhere {
                self.announcer.announce(room, user.id(), Some(user.role())).await;
            }
        }
        self.announcer.page(room, None, MEMBERS_PAGE).await
    }

    /// A page of the members of `request`: those whose user id comes after `after` in byte
    /// order, at most [`MEMBERS_PAGE`], with how many there are in all (see
    /// [`Presence::members`]). The user need not have joined the room, only be allowed to act on
    /// it. When the presence backend fails, the page lists this node's members.
    pub async fn members(
        &self,
        user: &User,
        request: RequestId,
        after: Option<&UserId>,
    ) -> Result<MembersPage, ChatError> {
        self.authorize(user, request).await?;
        Ok(self.announcer.page(request, after, MEMBERS_PAGE).await)
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
            self.announcer.announce(room, user, None).await;
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
