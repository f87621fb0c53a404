//! The bound on a room's presence announcements: a join storm does not cost a frame per member
//! per arrival.
//!
//! Each node counts the `memberJoined` and `memberLeft` it announces per room in windows of
//! [`PresenceBurst::interval`]. The first [`PresenceBurst::limit`] changes of a window are
//! announced one by one, as they happen; the rest wait, and at the end of the window the node
//! announces them together in one `membersChanged`. While changes keep coming (a window ended
//! with some waiting), the next window announces nothing one by one and sends its changes at its
//! end too; the first window that ends with nothing waiting ends the storm. So a room hears at
//! most `limit + 1` presence frames per interval from each node, and one per interval during a
//! storm.
//!
//! A waiting change is kept by user, the latest one winning (a user who joined and left within
//! the window is sent as having left), so a `membersChanged` names each user once and can be
//! applied in any order; and while changes wait, later ones wait too, so no change announced by
//! itself overtakes an earlier one of the same user.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use labchat_domain::{Member, RequestId, Role, UserId};
use tokio::time::Instant;

/// How many presence changes a room announces one by one per interval; past it they are
/// coalesced into one `membersChanged` per interval.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PresenceBurst {
    /// Changes announced one by one per interval and room (default 10).
    pub limit: u32,
    /// The interval (default 250 ms).
    pub interval: Duration,
}

impl Default for PresenceBurst {
    fn default() -> Self {
        Self { limit: 10, interval: Duration::from_millis(250) }
    }
}

/// Above this many rooms with a window, the windows of calm rooms are forgotten.
const PRUNE_AT: usize = 1024;

/// One room's current window.
#[derive(Debug)]
struct Window {
    start: Instant,
    used: u32,
    /// The waiting changes: `Some(role)` joined, `None` left.
    waiting: BTreeMap<UserId, Option<Role>>,
    /// A flush of this room is scheduled.
    flushing: bool,
}

/// What to do with a change.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Announce it by itself now.
    Now,
    /// It waits; when `Some`, the caller schedules the room's flush at that instant.
    Wait(Option<Instant>),
}

/// The coalesced changes of one window.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Batch {
    pub(super) joined: Vec<Member>,
    pub(super) left: Vec<UserId>,
}

/// Every room's window on this node.
#[derive(Debug, Default)]
pub(super) struct Bursts {
    settings: PresenceBurst,
    rooms: Mutex<HashMap<RequestId, Window>>,
}

impl Bursts {
    pub(super) fn new(settings: PresenceBurst) -> Self {
        Self { settings, rooms: Mutex::default() }
    }

    pub(super) fn interval(&self) -> Duration {
        self.settings.interval
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RequestId, Window>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a change of `user` in `room` at `now` (`Some(role)`: joined, `None`: left).
    pub(super) fn admit(&self, room: RequestId, user: &UserId, change: Option<Role>, now: Instant) -> Admit {
        let interval = self.settings.interval;
        let mut rooms = self.lock();
        if rooms.len() >= PRUNE_AT {
            rooms.retain(|_, w| w.flushing || now < w.start + interval);
        }
        let w = rooms.entry(room).or_insert_with(|| Window {
            start: now,
            used: 0,
            waiting: BTreeMap::new(),
            flushing: false,
        });
        if !w.flushing && now >= w.start + interval {
            w.start = now;
            w.used = 0;
        }
        if w.waiting.is_empty() && w.used < self.settings.limit {
            w.used += 1;
            return Admit::Now;
        }
        w.waiting.insert(user.clone(), change);
        if w.flushing {
            return Admit::Wait(None);
        }
        w.flushing = true;
        Admit::Wait(Some(w.start + interval))
    }

    /// Whether changes of `room` wait.
    #[cfg(test)]
    pub(super) fn waiting(&self, room: RequestId) -> bool {
        self.lock().get(&room).is_some_and(|w| !w.waiting.is_empty())
    }

    /// The flush of `room` at `now`: the waiting changes, and a new window begins in which
    /// changes wait too (the caller flushes again one interval later); or `None` when nothing
    /// waits, which ends the storm (no flush is scheduled any more).
    pub(super) fn take(&self, room: RequestId, now: Instant) -> Option<Batch> {
        let mut rooms = self.lock();
        let w = rooms.get_mut(&room)?;
        if w.waiting.is_empty() {
            w.flushing = false;
            return None;
        }
        w.start = now;
        w.used = self.settings.limit;
        let mut batch = Batch::default();
        for (user_id, change) in std::mem::take(&mut w.waiting) {
            match change {
                Some(role) => batch.joined.push(Member { user_id, role }),
                None => batch.left.push(user_id),
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }
    fn u(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn past_the_limit_changes_wait_for_one_flush_per_interval_until_a_quiet_window() {
        let b = Bursts::new(PresenceBurst { limit: 2, interval: Duration::from_millis(100) });
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(b.admit(rid(1), &u("a"), Some(Role::Lab), ms(0)), Admit::Now);
        assert_eq!(b.admit(rid(1), &u("b"), Some(Role::Lab), ms(1)), Admit::Now);
        assert_eq!(b.admit(rid(2), &u("a"), Some(Role::Lab), ms(1)), Admit::Now, "another room");
        assert_eq!(b.admit(rid(1), &u("c"), Some(Role::Lab), ms(2)), Admit::Wait(Some(ms(100))));
        assert_eq!(b.admit(rid(1), &u("d"), Some(Role::Teacher), ms(3)), Admit::Wait(None));
        assert_eq!(b.admit(rid(1), &u("c"), None, ms(4)), Admit::Wait(None), "the latest change wins");
        assert!(b.waiting(rid(1)));
        let batch = b.take(rid(1), ms(100)).unwrap();
        assert_eq!(batch.joined, [Member { user_id: u("d"), role: Role::Teacher }]);
        assert_eq!(batch.left, [u("c")]);
        // The storm goes on: the next window's changes wait from its first one.
        assert_eq!(b.admit(rid(1), &u("e"), Some(Role::Lab), ms(150)), Admit::Wait(None));
        assert_eq!(b.take(rid(1), ms(200)).unwrap().joined.len(), 1);
        // A window with nothing waiting ends it.
        assert_eq!(b.take(rid(1), ms(300)), None);
        assert_eq!(b.admit(rid(1), &u("f"), Some(Role::Lab), ms(310)), Admit::Now);
    }
}
