//! Posts whose outcome is unknown. An insert that failed as retryable (it timed out, the
//! connection broke mid-call) may still be written by the store afterwards, with its seq; then
//! nobody publishes it. Other nodes find such a message by their own checks of quiet rooms only
//! when it was written soon after its stamp, or at their next sweep of the room (minutes on a node
//! with thousands of rooms): the members of a room that went quiet after it would miss it live.
//!
//! Such a message also escapes its counts: the recount that follows the failure (`recount.rs`)
//! runs [`super::recount::SETTLE`] after it, and a message stored later is in no room summary
//! and no sender's count (the sender would see their own message as unread, the room's last
//! message would lag, a room's first message would leave the room out of every inbox).
//!
//! So the node that took the post notes it, reads it back from the store at each of [`CHECKS`]
//! after the failure (a failed read counts as a check), and once it is there recounts its
//! sender's counts and then, with a backplane, publishes it (both holding the room's order); it
//! forgets the post then, or after the last check. A copy that reaches a receiver that already
//! holds it is dropped there: by seq in the backplane's order of the room, and by the transport's
//! join window for a connection whose history held it. The background task is `rounds.rs`'s, as
//! for recounts. Without a backplane no such filter exists, and nothing is published: a later
//! message's seq shows the hole, and the client reads the history (docs/protocol.md).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labchat_domain::{MessageId, RequestId, RoomEvent};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::order::RoomOrder;
use super::recount::Recounts;
use super::rounds::{self, Rounds};
use crate::{Broadcaster, ChatStore, StoreError};

/// When a post whose outcome is unknown is read back, counted from its failure.
pub(super) const CHECKS: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(30)];

/// How often the background task looks for posts due for a check.
const TICK: Duration = Duration::from_millis(500);

/// How long after the failure a post not yet read back at its last check is given up.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Most posts read back at once.
const AT_ONCE: usize = 8;

/// The most posts followed up at once; past it a failure is only logged.
const MAX_PENDING: usize = 10_000;

/// A post followed up.
#[derive(Clone, Copy, Debug)]
struct Pending {
    request: RequestId,
    /// When its insert failed.
    since: Instant,
    /// The index in [`CHECKS`] of its next check.
    next: usize,
}

/// The posts of this node whose outcome is unknown, and the task that follows them up.
pub(super) struct FollowUps {
    store: Arc<dyn ChatStore>,
    broadcaster: Arc<dyn Broadcaster>,
    order: Arc<RoomOrder>,
    recounts: Arc<Recounts>,
    pending: Mutex<HashMap<MessageId, Pending>>,
    running: AtomicBool,
}

impl FollowUps {
    pub(super) fn new(
        store: Arc<dyn ChatStore>,
        broadcaster: Arc<dyn Broadcaster>,
        order: Arc<RoomOrder>,
        recounts: Arc<Recounts>,
    ) -> Self {
        Self { store, broadcaster, order, recounts, pending: Mutex::default(), running: AtomicBool::new(false) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<MessageId, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The insert of message `id` in `request` failed with `error`: if the store may still write
    /// it, follow it up.
    pub(super) fn failed(self: &Arc<Self>, request: RequestId, id: MessageId, error: &StoreError) {
        if !error.is_retryable() {
            return;
        }
        {
            let mut pending = self.lock();
            if pending.len() >= MAX_PENDING {
                tracing::warn!(error = %error, request_id = %request, message_id = %id, "a post's outcome is unknown and too many already are: not followed up");
                return;
            }
            pending.insert(id, Pending { request, since: Instant::now(), next: 0 });
        }
        rounds::start(self, TICK);
    }

    /// How many posts are followed up.
    pub(super) fn pending(&self) -> usize {
        self.lock().len()
    }

    /// One round: reads back the posts due for a check, [`AT_ONCE`] at a time. Returns whether
    /// posts remain.
    async fn round(self: &Arc<Self>) -> bool {
        let now = Instant::now();
        let due: Vec<(MessageId, Pending)> = self
            .lock()
            .iter()
            .filter(|(_, p)| CHECKS.get(p.next).is_some_and(|after| p.since + *after <= now))
            .map(|(id, p)| (*id, *p))
            .collect();
        let mut checks = JoinSet::new();
        for (id, p) in due {
            while checks.len() >= AT_ONCE {
                let _ = checks.join_next().await;
            }
            let this = Arc::clone(self);
            checks.spawn(async move { this.check(id, p).await });
        }
        while checks.join_next().await.is_some() {}
        !self.lock().is_empty()
    }

    /// Reads the post back: if it is stored, recounts its sender's counts, then publishes it with
    /// a backplane (so every node's inbox reads rows that count it), and forgets it; else moves it
    /// to its next check (a failed read counts as one: at most [`CHECKS`] reads per post, however
    /// the store fares). Only the recount and the publish hold the room's order: a connection
    /// whose join read the message in its history meanwhile drops the copy (the transport's join
    /// window).
    async fn check(&self, id: MessageId, p: Pending) {
        // A round may come long after the post's checks were due (a store down for minutes):
        // a post past its time is forgotten without a read.
        if p.since.elapsed() >= GIVE_UP {
            tracing::warn!(request_id = %p.request, message_id = %id, "a post whose outcome is unknown was not read back in time: given up");
            self.lock().remove(&id);
            return;
        }
        match self.store.message(p.request, id).await {
            Ok(Some(message)) if message.seq.is_some() => {
                tracing::warn!(request_id = %p.request, message_id = %id, "a post answered as failed was stored after all");
                let _order = self.order.lock(p.request).await;
                self.recounts.recount_now(p.request, &message.sender_id).await;
                if self.broadcaster.backplane().is_some()
                    && let Err(e) = self.broadcaster.publish(RoomEvent::MessagePosted(message)).await
                {
                    tracing::error!(error = %e, request_id = %p.request, "broadcast of a stored change failed");
                }
                self.lock().remove(&id);
            }
            Ok(_) => self.advance(id),
            Err(e) => {
                tracing::warn!(error = %e, request_id = %p.request, message_id = %id, check = p.next, "reading back a post whose outcome is unknown failed");
                self.advance(id);
            }
        }
    }

    /// Moves the post to its next check, or forgets it after its last.
    fn advance(&self, id: MessageId) {
        let mut pending = self.lock();
        if let Some(p) = pending.get_mut(&id) {
            p.next += 1;
            if p.next >= CHECKS.len() {
                pending.remove(&id);
            }
        }
    }
}

impl Rounds for FollowUps {
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

#[cfg(test)]
#[path = "follow_up_tests.rs"]
mod tests;
