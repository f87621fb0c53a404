//! Unread counts that heal: when the count write that follows a stored message or receipt fails
//! ([`ChatStore::count_posted`], [`ChatStore::count_read`]), the room and user are noted as
//! needing a recount, and [`ChatStore::recount`] makes their counts exact again from the stored
//! messages and receipts.
//!
//! A noted pair is recounted on the next read that shows it on this node (an inbox page, a join
//! of the room), and in the background once the failure is [`SETTLE`] old, then forgotten. The
//! second recount covers a write that timed out for the caller but took effect in the store
//! later. A failing recount is retried every [`RETRY`]. Every recount holds the room's order, so
//! no post or receipt of the room on this node runs beside it, and each one that succeeds sends
//! the room's inbox notice through the broadcaster, so the users' subscribed connections on every
//! node get the exact rows (`Broadcaster::notify_inbox`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labchat_domain::{RequestId, UserId};
use tokio::time::Instant;

use super::order::RoomOrder;
use super::rounds::{self, Rounds};
use crate::{Broadcaster, ChatStore, InboxNotice, StoreError};

/// How old a failure must be before the background recount that forgets it.
pub(super) const SETTLE: Duration = Duration::from_secs(2);

/// How often the background task looks for pairs to recount.
pub(super) const RETRY: Duration = Duration::from_millis(500);

/// The most pairs waiting for a recount; past it a failure is only logged.
const MAX_PENDING: usize = 100_000;

/// The most noted pairs one read recounts before it is served (the rest heal in the background).
const MAX_PER_READ: usize = 64;

/// A pair waiting for a recount.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// When its last failure happened.
    since: Instant,
    /// A recount succeeded after that failure (a read's): only the settling one is left.
    recounted: bool,
}

type Key = (RequestId, UserId);

/// The pairs of this node that need a recount, and the task that heals them.
pub(super) struct Recounts {
    store: Arc<dyn ChatStore>,
    order: Arc<RoomOrder>,
    /// Where a recount's inbox notice goes: every node's inbox listener.
    broadcaster: Arc<dyn Broadcaster>,
    pending: Mutex<HashMap<Key, Pending>>,
    running: AtomicBool,
}

impl Recounts {
    pub(super) fn new(store: Arc<dyn ChatStore>, order: Arc<RoomOrder>, broadcaster: Arc<dyn Broadcaster>) -> Self {
        Self { store, order, broadcaster, pending: Mutex::default(), running: AtomicBool::new(false) }
    }

    /// How many pairs the map has room for without growing (tests: it gives its memory back).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.lock().capacity()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A count write of `user` in `room` failed with `error`: the pair needs a recount.
    pub(super) fn failed(self: &Arc<Self>, room: RequestId, user: &UserId, error: &StoreError) {
        {
            let mut pending = self.lock();
            if pending.len() >= MAX_PENDING && !pending.contains_key(&(room, user.clone())) {
                tracing::error!(error = %error, request_id = %room, user_id = %user, "an unread count write failed and too many counts already wait for a recount: this one stays off until the room is rebuilt");
                return;
            }
            pending.insert((room, user.clone()), Pending { since: Instant::now(), recounted: false });
        }
        tracing::warn!(error = %error, request_id = %room, user_id = %user, "an unread count write failed; the count will be recounted");
        rounds::start(self, RETRY);
    }

    /// Recounts the pair now and tells the room's inbox subscribers, on every node; a failed
    /// recount is noted, as a failed count write is. For a message `user` posted in `room` that
    /// was found stored after its insert was answered as failed (`follow_up.rs`): the recount of
    /// that failure may have run before it was stored. The caller holds the room's order.
    pub(super) async fn recount_now(self: &Arc<Self>, room: RequestId, user: &UserId) {
        match self.store.recount(room, user).await {
            Ok(()) => self.recounted(room),
            Err(e) => self.failed(room, user, &e),
        }
    }

    /// A recount of `room` made counts exact again: every inbox subscriber who may see the room,
    /// on any node, is sent the rows as they are now (the user's other devices too).
    fn recounted(&self, room: RequestId) {
        self.broadcaster.notify_inbox(InboxNotice::Posted { request_id: room });
    }

    /// How many pairs wait for a recount.
    pub(super) fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Recounts the noted pairs a read is about to show that no recount healed yet: those of
    /// `room` (a join, which holds the room's order: `held`), or of every room (an inbox page,
    /// which holds none), at most [`MAX_PER_READ`]. A failure is logged and left to the
    /// background.
    pub(super) async fn before_read(&self, room: Option<RequestId>, held: bool) {
        let due: Vec<Key> = {
            let pending = self.lock();
            if pending.is_empty() {
                return;
            }
            pending
                .iter()
                .filter(|((r, _), p)| !p.recounted && room.is_none_or(|room| *r == room))
                .map(|(k, _)| k.clone())
                .take(MAX_PER_READ)
                .collect()
        };
        for (r, user) in due {
            let _order = if held { None } else { Some(self.order.lock(r).await) };
            let started = Instant::now();
            match self.store.recount(r, &user).await {
                Ok(()) => {
                    if let Some(p) = self.lock().get_mut(&(r, user.clone()))
                        && p.since <= started
                    {
                        p.recounted = true;
                    }
                    self.recounted(r);
                }
                Err(e) => {
                    tracing::warn!(error = %e, request_id = %r, user_id = %user, "recounting an unread count failed; retrying in the background")
                }
            }
        }
    }

    /// One background round: recounts the pairs whose failure settled, forgets those that
    /// succeeded and tells the room's inbox subscribers, on every node. Returns whether pairs
    /// remain.
    async fn round(&self) -> bool {
        let now = Instant::now();
        let due: Vec<Key> =
            self.lock().iter().filter(|(_, p)| p.since + SETTLE <= now).map(|(k, _)| k.clone()).collect();
        for (room, user) in due {
            let _order = self.order.lock(room).await;
            let started = Instant::now();
            match self.store.recount(room, &user).await {
                Ok(()) => {
                    let mut pending = self.lock();
                    if pending.get(&(room, user.clone())).is_some_and(|p| p.since + SETTLE <= started) {
                        pending.remove(&(room, user.clone()));
                    }
                    drop(pending);
                    self.recounted(room);
                }
                Err(e) => {
                    tracing::warn!(error = %e, request_id = %room, user_id = %user, "recounting an unread count failed; retrying");
                }
            }
        }
        !self.lock().is_empty()
    }
}

impl Rounds for Recounts {
    fn running(&self) -> &AtomicBool {
        &self.running
    }
    fn idle(&self) -> bool {
        rounds::emptied(&mut self.lock())
    }
    async fn run_round(self: Arc<Self>) -> bool {
        self.round().await
    }
}
