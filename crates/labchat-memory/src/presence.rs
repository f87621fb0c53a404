//! The in-process presence: one node's members per room, and its typing throttle.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use labchat_core::{Member, MembersPage, Presence, PresenceError, TYPING_INTERVAL};
use labchat_domain::{RequestId, Role, User, UserId};

/// Above this many remembered typers, expired ones are forgotten on the next typing; the next
/// prune waits until the map has doubled, so live entries are never rescanned on every typing.
const TYPING_PRUNE_AT: usize = 4096;

/// A [`Presence`] for one node: who entered which room, in a map ordered by user id (a page of
/// members is a range of it); typing throttled per user and
/// room with the process's monotonic clock. It never fails.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    rooms: Mutex<HashMap<RequestId, BTreeMap<UserId, Role>>>,
    typing: Mutex<Typers>,
}

/// The typing throttle's map, and the size at which it is next pruned.
#[derive(Debug, Default)]
struct Typers {
    at: HashMap<(RequestId, UserId), Instant>,
    prune_at: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryPresence {
    /// No one anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// The throttle's decision at `now` (see [`Presence::may_type`]).
    fn may_type_at(&self, room: RequestId, user: &UserId, now: Instant) -> bool {
        let mut guard = lock(&self.typing);
        let Typers { at: typing, prune_at } = &mut *guard;
        if typing.len() >= (*prune_at).max(TYPING_PRUNE_AT) {
            typing.retain(|_, at| now.saturating_duration_since(*at) < TYPING_INTERVAL);
            *prune_at = typing.len().saturating_mul(2);
        }
        match typing.get_mut(&(room, user.clone())) {
            Some(at) if now.saturating_duration_since(*at) < TYPING_INTERVAL => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                typing.insert((room, user.clone()), now);
                true
            }
        }
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn enter(&self, room: RequestId, user: &User) -> Result<bool, PresenceError> {
        Ok(lock(&self.rooms).entry(room).or_default().insert(user.id().clone(), user.role()).is_none())
    }

    async fn exit(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError> {
        let mut rooms = lock(&self.rooms);
        let Some(users) = rooms.get_mut(&room) else { return Ok(false) };
        let was = users.remove(user).is_some();
        if users.is_empty() {
            rooms.remove(&room);
        }
        Ok(was)
    }

    async fn members(
        &self,
        room: RequestId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<MembersPage, PresenceError> {
        let rooms = lock(&self.rooms);
        let Some(users) = rooms.get(&room) else { return Ok(MembersPage::default()) };
        let from = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let after_cursor = users
            .range::<UserId, _>((from, Bound::Unbounded))
            .map(|(user_id, role)| Member { user_id: user_id.clone(), role: *role });
        Ok(MembersPage::from_ordered(after_cursor, users.len(), limit))
    }

    async fn may_type(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError> {
        Ok(self.may_type_at(room, user, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    #[tokio::test]
    async fn enter_and_exit_report_the_first_and_the_last() {
        let p = MemoryPresence::new();
        let lab = User::new(UserId::parse("lab").unwrap(), Role::Lab);
        assert!(p.enter(rid(1), &lab).await.unwrap());
        assert!(!p.enter(rid(1), &lab).await.unwrap(), "entering twice is once");
        let page = p.members(rid(1), None, 10).await.unwrap();
        assert_eq!(page.members, [Member { user_id: lab.id().clone(), role: Role::Lab }]);
        assert_eq!((page.count, page.has_more), (1, false));
        assert_eq!(p.members(rid(2), None, 10).await.unwrap(), MembersPage::default());
        assert!(p.exit(rid(1), lab.id()).await.unwrap());
        assert!(!p.exit(rid(1), lab.id()).await.unwrap(), "exiting a room not entered");
        assert_eq!(p.members(rid(1), None, 10).await.unwrap(), MembersPage::default());
    }

    #[tokio::test]
    async fn members_are_paged_in_user_id_order_with_the_room_s_count() {
        let p = MemoryPresence::new();
        let ids = ["b", "a", "é", "a|b", "c", "B"];
        for id in ids {
            p.enter(rid(1), &User::new(UserId::parse(id).unwrap(), Role::Lab)).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = p.members(rid(1), after.clone(), 2).await.unwrap();
            assert_eq!(page.count, ids.len());
            assert!(page.members.len() <= 2);
            seen.extend(page.members.iter().map(|m| m.user_id.to_string()));
            match page.next() {
                Some(next) => after = Some(next.clone()),
                None => break,
            }
        }
        assert_eq!(seen, ["B", "a", "a|b", "b", "c", "é"], "every member once, in byte order");
        let count_only = p.members(rid(1), None, 0).await.unwrap();
        assert_eq!((count_only.members.len(), count_only.count, count_only.has_more), (0, 6, true));
    }

    #[test]
    fn typing_passes_once_per_interval_per_user_and_room() {
        let p = MemoryPresence::new();
        let (a, b) = (UserId::parse("a").unwrap(), UserId::parse("b").unwrap());
        let t0 = Instant::now();
        assert!(p.may_type_at(rid(1), &a, t0));
        assert!(!p.may_type_at(rid(1), &a, t0 + Duration::from_millis(1999)));
        assert!(p.may_type_at(rid(1), &b, t0), "another user");
        assert!(p.may_type_at(rid(2), &a, t0), "another room");
        assert!(p.may_type_at(rid(1), &a, t0 + TYPING_INTERVAL));
        assert!(!p.may_type_at(rid(1), &a, t0 + TYPING_INTERVAL + Duration::from_millis(1)));
    }

    #[test]
    fn live_typers_are_not_rescanned_on_every_typing() {
        let p = MemoryPresence::new();
        let t0 = Instant::now();
        let users: Vec<UserId> = (0..5000).map(|i| UserId::parse(format!("u{i}")).unwrap()).collect();
        for u in &users {
            assert!(p.may_type_at(rid(1), u, t0));
        }
        // One prune at 4,096 live entries; the next only once the map has doubled.
        assert_eq!(lock(&p.typing).prune_at, 2 * TYPING_PRUNE_AT);
        // Expired ones go at that prune.
        let later = t0 + TYPING_INTERVAL;
        let more: Vec<UserId> = (0..4000).map(|i| UserId::parse(format!("v{i}")).unwrap()).collect();
        for u in &more {
            assert!(p.may_type_at(rid(1), u, later));
        }
        assert!(lock(&p.typing).at.len() < 5000 + 4000);
        assert!(!p.may_type_at(rid(1), &more[0], later), "a live entry survives the prune");
    }
}
