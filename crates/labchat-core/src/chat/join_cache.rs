//! One history read per room for a burst of joins: the page a join read (with its cover and its
//! catch-up) is reused by the next joins of the room with the same `after`, as long as nothing of
//! the room that they would miss can have happened since.
//!
//! A join subscribes its sink first and reads the history second, so that no event falls
//! between the two. A page read for an earlier join A may serve a later join B only if every
//! event of the room stored after A's read either reaches B's sink live (it arrives after B
//! subscribed) or is seen by this node before B looks the page up, which then reads afresh. So:
//!
//! - Every sink a join subscribes is wrapped ([`JoinCache::watch`]): the wrapper counts each
//!   stored-state event of its room that reaches it (messages, edits, deletions, receipts; not
//!   typing nor presence), in the room's "events seen" version, before handing it on. Local
//!   writes and other nodes' events alike reach the room's sinks through the broadcaster, and an
//!   event reaches either A's sink before B subscribed (it is counted) or B's sink (it is live).
//! - The version is taken after the subscription and before the read ([`JoinCache::stamp`]); a
//!   page is reused only while the version is still the one taken before it was read.
//! - A's sink must stay subscribed all along (it keeps the node subscribed to the room and sees
//!   its events): every unsubscription through the use cases counts in the version first
//!   ([`JoinCache::lapse`]), and the version lives only while a wrapped sink of the room does
//!   (a room whose last sink went gets a new one, which no kept page matches).
//! - A page lives at most the cache's lifetime (default [`DEFAULT_JOIN_REUSE`]), at most
//!   [`CAPACITY`] of them, and it is not reused while a backplane is down (events of other nodes
//!   then wait for the reconnection's replay and fill, which a fresh read would not).
//!
//! Joins of a room already run one after another under the room's order, so a cache, not a
//! single flight, is what saves the reads. The unread counts are the user's own: read per join,
//! but from the page itself when the join read a page that holds the whole room (`inbox.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use labchat_domain::{HistoryPage, MessageId, RequestId, Seq};

use super::{CaughtUp, Chat};
use crate::{ChatError, Published, RoomSink, SinkId};

/// How long a join's history page may serve the next joins of the room by default (see
/// [`Chat::with_join_reuse`]).
pub const DEFAULT_JOIN_REUSE: Duration = Duration::from_secs(1);

/// Most pages kept at once.
pub(super) const CAPACITY: usize = 1024;

/// Above this many rooms with a version, those whose sinks are all gone are forgotten (the
/// threshold then doubles with what is left).
const PRUNE_AT: usize = 1024;

/// What a join sends of the room's history: the page, the seq it covers, and the catch-up.
#[derive(Clone, Debug)]
pub(super) struct View {
    pub(super) history: HistoryPage,
    pub(super) covered: Option<Seq>,
    pub(super) catch_up: CaughtUp,
    /// Kept from an earlier join rather than read for this one: its receipts are as the store
    /// held them at that read (a receipt stored but never published would not lapse it).
    pub(super) reused: bool,
}

/// A room's "events seen" version on this node.
#[derive(Debug, Default)]
struct Seen(AtomicU64);

impl Seen {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The room's version as a join found it after subscribing, before reading.
#[derive(Debug)]
pub(super) struct Stamp {
    seen: Weak<Seen>,
    version: u64,
}

impl Stamp {
    /// Whether nothing was counted in the room since this stamp was taken.
    fn holds(&self) -> bool {
        self.seen.upgrade().is_some_and(|s| s.get() == self.version)
    }
}

/// A kept page, with the stamp taken before it was read.
#[derive(Debug)]
struct Entry {
    view: View,
    stamp: Stamp,
    at: Instant,
}

/// A sink subscribed by a join: counts the room's stored-state events, then hands them on.
struct Watched {
    inner: Arc<dyn RoomSink>,
    seen: Arc<Seen>,
}

impl RoomSink for Watched {
    fn id(&self) -> SinkId {
        self.inner.id()
    }

    fn deliver(&self, event: Arc<Published>) {
        if !event.event().kind().is_ephemeral() {
            self.seen.bump();
        }
        self.inner.deliver(event);
    }
}

/// The pages of recent joins, and every room's "events seen" version (see the module).
#[derive(Debug)]
pub(super) struct JoinCache {
    ttl: Duration,
    rooms: Mutex<(HashMap<RequestId, Weak<Seen>>, usize)>,
    entries: Arc<Pages>,
    reuses: AtomicU64,
}

/// The kept pages, and whether a task sweeps the expired ones out (one runs while any is kept,
/// so that the pages of a burst of joins are given back once it is over).
#[derive(Debug, Default)]
struct Pages {
    map: Mutex<HashMap<(RequestId, Option<MessageId>), Entry>>,
    sweeping: AtomicBool,
}

impl Pages {
    /// Every `ttl`, drops the pages past it or lapsed; ends, giving the map's memory back, once
    /// none is left.
    async fn sweep(self: Arc<Self>, ttl: Duration) {
        loop {
            tokio::time::sleep(ttl).await;
            let mut map = locked(&self.map);
            let now = Instant::now();
            map.retain(|_, e| now.saturating_duration_since(e.at) < ttl && e.stamp.holds());
            if map.is_empty() {
                *map = HashMap::new();
                // Under the lock: a page kept after this starts a new sweep.
                self.sweeping.store(false, Ordering::Release);
                return;
            }
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JoinCache {
    /// A cache keeping pages for `ttl` (zero: none).
    pub(super) fn new(ttl: Duration) -> Self {
        Self { ttl, rooms: Mutex::new((HashMap::new(), PRUNE_AT)), entries: Arc::default(), reuses: AtomicU64::new(0) }
    }

    /// `sink`, wrapped to count the events of `room` that reach it (subscribe this one).
    pub(super) fn watch(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Arc<dyn RoomSink> {
        let mut guard = locked(&self.rooms);
        let (rooms, prune_at) = &mut *guard;
        if let Some(seen) = rooms.get(&room).and_then(Weak::upgrade) {
            return Arc::new(Watched { inner: sink, seen });
        }
        if rooms.len() >= *prune_at {
            rooms.retain(|_, s| s.strong_count() > 0);
            *prune_at = PRUNE_AT.max(rooms.len() * 2);
        }
        let seen = Arc::new(Seen::default());
        rooms.insert(room, Arc::downgrade(&seen));
        Arc::new(Watched { inner: sink, seen })
    }

    /// The room's version now (after the join subscribed, before it reads).
    pub(super) fn stamp(&self, room: RequestId) -> Stamp {
        let seen = locked(&self.rooms).0.get(&room).cloned().unwrap_or_default();
        let version = seen.upgrade().map_or(0, |s| s.get());
        Stamp { seen, version }
    }

    /// A sink of `room` is about to be unsubscribed: no page read so far may serve a later join.
    pub(super) fn lapse(&self, room: RequestId) {
        if let Some(seen) = locked(&self.rooms).0.get(&room).and_then(Weak::upgrade) {
            seen.bump();
        }
    }

    /// The page kept for a join of `room` with `after` at `now`, if nothing was counted in the
    /// room since it was read and it is younger than the lifetime.
    fn get(&self, room: RequestId, after: Option<MessageId>, now: Instant) -> Option<View> {
        let mut entries = locked(&self.entries.map);
        let key = (room, after);
        let e = entries.get(&key)?;
        if e.stamp.holds() && now.saturating_duration_since(e.at) < self.ttl {
            return Some(e.view.clone());
        }
        entries.remove(&key);
        None
    }

    /// Keeps the page read for a join of `room` with `after`, stamped before the read.
    fn put(&self, room: RequestId, after: Option<MessageId>, stamp: Stamp, view: &View, now: Instant) {
        if self.ttl.is_zero() || !stamp.holds() {
            return;
        }
        let mut entries = locked(&self.entries.map);
        if entries.len() >= CAPACITY && !entries.contains_key(&(room, after)) {
            let ttl = self.ttl;
            entries.retain(|_, e| now.saturating_duration_since(e.at) < ttl && e.stamp.holds());
            if entries.len() >= CAPACITY
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert((room, after), Entry { view: view.clone(), stamp, at: now });
        drop(entries);
        if !self.entries.sweeping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(Arc::clone(&self.entries).sweep(self.ttl))),
                Err(_) => self.entries.sweeping.store(false, Ordering::Release),
            }
        }
    }

    /// How many joins were served a kept page.
    pub(super) fn reuses(&self) -> u64 {
        self.reuses.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        locked(&self.entries.map).len()
    }
}

impl Chat {
    /// The same use cases, letting the history page a join read serve the next joins of the room
    /// with the same `after` for at most `lifetime` (default [`DEFAULT_JOIN_REUSE`]; zero: every
    /// join reads its own), while no message, edit, deletion or receipt of the room reached this
    /// node since it was read (see [`Chat::join`]).
    #[must_use]
    pub fn with_join_reuse(mut self, lifetime: Duration) -> Self {
        self.joins = JoinCache::new(lifetime);
        self
    }

    /// Unsubscribes `sink` from `room`, first telling the join cache that the room's history
    /// pages may no longer serve later joins (its last sink on this node may be going).
    pub(super) async fn unsubscribe_room(&self, room: RequestId, sink: SinkId) -> Result<(), crate::BroadcastError> {
        self.joins.lapse(room);
        self.broadcaster.unsubscribe(room, sink).await
    }

    /// The history a join of `request` with `after` sends, its sink subscribed: a page kept from
    /// an earlier join when the cache may serve it (see the module), else read from the store.
    pub(super) async fn join_view(&self, request: RequestId, after: Option<MessageId>) -> Result<View, ChatError> {
        let stamp = self.joins.stamp(request);
        let backplane_up = || self.broadcaster.backplane().is_none_or(|b| b.connected);
        if stamp.holds()
            && let Some(view) = self.joins.get(request, after, Instant::now())
            && backplane_up()
        {
            self.joins.reuses.fetch_add(1, Ordering::Relaxed);
            return Ok(View { reused: true, ..view });
        }
        let (history, covered, last_held) = self.joined_history(request, after).await?;
        let (catch_up, complete) = self.caught_up(request, last_held.as_ref()).await;
        let view = View { history, covered, catch_up, reused: false };
        if complete {
            self.joins.put(request, after, stamp, &view, Instant::now());
        }
        Ok(view)
    }

    /// How many joins were served the history page of an earlier join of their room (see
    /// [`Chat::with_join_reuse`]) instead of reading the store.
    pub fn history_reuses(&self) -> u64 {
        self.joins.reuses()
    }
}
