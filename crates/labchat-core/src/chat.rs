//! The use cases ([`Chat`]): join, leave, post, mark, history, inbox, members and typing, over
//! the ports.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use labchat_domain::{
    Cursor, HistoryLimit, HistoryPage, HistoryQuery, Message, MessageId, ReceiptKind, Request, RequestId, RoomEvent,
    Seq, Unread, User,
};
use tokio::sync::OwnedMutexGuard;

use crate::access::RequestCache;
use crate::{
    Broadcaster, ChatError, ChatStore, Clock, InboxHub, LeaveError, MembersPage, MessageIdGenerator, Presence, SinkId,
};

mod admission;
mod burst;
mod catch_up;
mod edit;
mod follow_up;
mod inbox;
mod join;
mod join_cache;
mod order;
mod post;
mod presence;
mod recount;
mod rounds;

pub use admission::{JoinAdmission, MAX_JOIN_RETRY_AFTER};
pub use burst::PresenceBurst;
pub use catch_up::CaughtUp;
pub use join_cache::DEFAULT_JOIN_REUSE;

/// A successful join: the room's history, read after the sink was subscribed and while the
/// room's event order on this node was held.
///
/// While a `Joined` is alive no event of the room is published on this node, so a transport
/// that queues the history for the connection before dropping this value gives the client the
/// history, then every later event of this node, with no gap and no duplicate. Events from other
/// nodes may reach the sink at any moment after it was subscribed, including before the history
/// was read: the transport holds the room's events from before it calls [`Chat::join`] until it
/// queued the history, then passes on only those past [`Joined::covered`] (receipts: all).
#[derive(Debug)]
pub struct Joined {
    /// The history page to send.
    pub history: HistoryPage,
    /// The highest seq of the room the history covers: its last message, or for an empty page
    /// after a message, that message (read by the join for its catch-up anyway). `None` when the
    /// history covers nothing (an empty room).
    pub covered: Option<Seq>,
    /// With `after`: what changed since on the messages up to it, to replay after the history.
    pub catch_up: CaughtUp,
    /// The joining user's unread messages in the room: how many, and the oldest.
    pub unread: Unread,
    /// The first page of the room's members on every node ([`crate::MEMBERS_PAGE`] at most), with
    /// their count; the client pages on with [`Chat::members`].
    pub members: MembersPage,
    _order: OwnedMutexGuard<()>,
}

/// A successful post.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Posted {
    /// The stored message (for a duplicate: the original one).
    pub message: Message,
    /// The send repeated an earlier one with the same client message id: nothing was stored or
    /// broadcast.
    pub duplicate: bool,
}

/// How long a request found in the store is trusted by default (see [`Chat::with_access_ttl`]).
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(60);

/// How long after sending a sender may edit a message by default (see [`Chat::with_edit_window`]).
pub const DEFAULT_EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Most requests cached at once: above the rooms a node serves (up to 20,000 at 20,000
/// connections in rooms of 5), or joins and re-checks read the store (about 100 bytes each).
const ACCESS_CACHE_CAPACITY: usize = 100_000;

/// The use cases of a chat room, over the ports.
///
/// Every use case authorizes first with [`Request::authorize`] (a missing request is
/// forbidden too). Writes to one room, and joins of it, happen one at a time, so ids, storage
/// order and broadcast order agree.
///
/// Requests are looked up in the store and kept for the access TTL (default
/// [`DEFAULT_ACCESS_TTL`]; see [`Chat::with_access_ttl`]). A kept request is used only to allow
/// an action: a refusal is confirmed with a fresh lookup. So a user who lost access to a request
/// (it was reassigned or deleted) may still be allowed for at most the TTL (twice the TTL while
/// the store's lookups fail: a kept request is then used past its lifetime rather than ask a
/// failing store again for every join and re-check), and one who gained access is allowed at
/// once.
pub struct Chat {
    store: Arc<dyn ChatStore>,
    broadcaster: Arc<dyn Broadcaster>,
    clock: Arc<dyn Clock>,
    ids: MessageIdGenerator,
    order: Arc<order::RoomOrder>,
    recounts: Arc<recount::Recounts>,
    follow_ups: Arc<follow_up::FollowUps>,
    history_limit: HistoryLimit,
    edit_window: Duration,
    requests: Arc<RequestCache>,
    joins: join_cache::JoinCache,
    inbox: Arc<InboxHub>,
    presence: Option<Arc<dyn Presence>>,
    local: Arc<presence::LocalPresence>,
    announcer: presence::Announcer,
    admission: admission::Admission,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("history_limit", &self.history_limit)
            .field("access_ttl", &self.requests.ttl())
            .field("join_admission", &self.join_admission())
            .finish_non_exhaustive()
    }
}

impl Chat {
    /// Use cases over these ports; `history_limit` is the size of the page sent on join and the
    /// largest page [`Chat::history`] returns.
    pub fn new(
        store: Arc<dyn ChatStore>,
        broadcaster: Arc<dyn Broadcaster>,
        clock: Arc<dyn Clock>,
        history_limit: HistoryLimit,
    ) -> Self {
        let local = Arc::new(presence::LocalPresence::default());
        let announcer = presence::Announcer {
            bursts: Arc::new(burst::Bursts::new(PresenceBurst::default())),
            broadcaster: Arc::clone(&broadcaster),
            presence: None,
            local: Arc::clone(&local),
        };
        let inbox = Arc::new(InboxHub::new(Arc::clone(&store)));
        let order = Arc::new(order::RoomOrder::new());
        let recounts =
            Arc::new(recount::Recounts::new(Arc::clone(&store), Arc::clone(&order), Arc::clone(&broadcaster)));
        Self {
            follow_ups: Arc::new(follow_up::FollowUps::new(
                Arc::clone(&store),
                Arc::clone(&broadcaster),
                Arc::clone(&order),
                Arc::clone(&recounts),
            )),
            recounts,
            inbox,
            store,
            broadcaster,
            clock,
            ids: MessageIdGenerator::new(),
            order,
            history_limit,
            edit_window: DEFAULT_EDIT_WINDOW,
            requests: Arc::new(RequestCache::new(DEFAULT_ACCESS_TTL, ACCESS_CACHE_CAPACITY)),
            joins: join_cache::JoinCache::new(DEFAULT_JOIN_REUSE),
            presence: None,
            local,
            announcer,
            admission: admission::Admission::new(JoinAdmission::default()),
        }
    }

    /// The same use cases, keeping presence and throttling typing through `presence` (across
    /// nodes with a shared backend). Without it, members are this node's connections and typing
    /// is not throttled.
    #[must_use]
    pub fn with_presence(mut self, presence: Arc<dyn Presence>) -> Self {
        self.announcer.presence = Some(Arc::clone(&presence));
        self.presence = Some(presence);
        self
    }

    /// The same use cases, announcing presence changes one by one up to `burst.limit` per room
    /// and interval, and coalescing the rest into one `membersChanged` per interval (default
    /// [`PresenceBurst::default`]: 10 per 250 ms).
    #[must_use]
    pub fn with_presence_burst(mut self, burst: PresenceBurst) -> Self {
        self.announcer.bursts = Arc::new(burst::Bursts::new(burst));
        self
    }

    /// The same use cases, trusting a request found in the store for `ttl` (zero: look every
    /// request up for every call). This bounds how long a user who lost access to a request may
    /// still act on it.
    #[must_use]
    pub fn with_access_ttl(mut self, ttl: Duration) -> Self {
        self.requests = Arc::new(RequestCache::new(ttl, ACCESS_CACHE_CAPACITY));
        self
    }

    /// The same use cases, letting a sender edit a message for `window` after sending it
    /// (default [`DEFAULT_EDIT_WINDOW`]; zero: never).
    #[must_use]
    pub const fn with_edit_window(mut self, window: Duration) -> Self {
        self.edit_window = window;
        self
    }

    /// How long a request found in the store is trusted.
    pub fn access_ttl(&self) -> Duration {
        self.requests.ttl()
    }

    /// Authorizes `user` on `request`: from the cache when it allows, else from a fresh lookup
    /// (which refreshes the cache).
    async fn authorize(&self, user: &User, request: RequestId) -> Result<Request, ChatError> {
        if let Some(r) = self.requests.get(request, Instant::now())
            && r.authorize(user).is_ok()
        {
            self.requests.refresh_if_due(&self.store);
            return Ok(r);
        }
        let found = self.store.find_request(request).await.map_err(|e| {
            if e.is_retryable() {
                self.requests.lookup_failed(Instant::now());
            }
            ChatError::store("looking up the request")(e)
        })?;
        self.requests.put(request, found.as_ref(), Instant::now());
        match found {
            Some(r) if r.authorize(user).is_ok() => Ok(r),
            _ => Err(ChatError::Forbidden),
        }
    }

    /// Whether `user` may still act on `request` (as every use case checks it, cache included):
    /// `Ok` if so, [`ChatError::Forbidden`] if not. For re-checking the rooms a connection joined.
    pub async fn check_access(&self, user: &User, request: RequestId) -> Result<(), ChatError> {
        self.authorize(user, request).await.map(drop)
    }

    /// Publishes what was already stored. Stored is what counts: the change is in the history
    /// even if the live broadcast fails, so the failure is logged and does not fail the call.
    async fn publish(&self, event: RoomEvent) {
        let request_id = event.request_id();
        if let Err(e) = self.broadcaster.publish(event).await {
            tracing::error!(error = %e, %request_id, "broadcast of a stored change failed");
        }
    }

    async fn room_order(&self, room: RequestId) -> OwnedMutexGuard<()> {
        self.order.lock(room).await
    }

    /// Unsubscribes a closing connection's sink (of `user`) from its rooms and its inbox,
    /// without authorization (the subscriptions were authorized when they were made); the rooms
    /// the user has no connection left in hear `memberLeft`.
    pub async fn disconnect(&self, user: &User, sink: SinkId, rooms: impl IntoIterator<Item = RequestId>) {
        self.unsubscribe_inbox(sink).await;
        for room in rooms {
            if let Err(e) = self.unsubscribe_room(room, sink).await {
                tracing::warn!(error = %e, request_id = %room, "unsubscribe on disconnect failed");
            }
            self.depart(room, user.id(), sink).await;
        }
    }

    /// Stops `sink` from listening to the room; leaving a room not joined is harmless.
    ///
    /// Needs no authorization: anyone may stop listening, including a user who lost access to
    /// the request since joining. (A transport that answers leaving a room never joined may
    /// still check [`Chat::check_access`] first, so that it says no more about which requests
    /// exist than any other operation.) After the user's last connection to the room left, the
    /// room hears `memberLeft`.
    pub async fn leave(&self, user: &User, request: RequestId, sink: SinkId) -> Result<(), LeaveError> {
        self.unsubscribe_room(request, sink).await.map_err(LeaveError)?;
        self.depart(request, user.id(), sink).await;
        Ok(())
    }

    /// Marks the listed messages as delivered to (or read by) `user`, broadcasting what was newly
    /// marked: deliveries first, then reads. Returns the ids newly marked as `kind`.
    pub async fn mark(
        &self,
        user: &User,
        request: RequestId,
        kind: ReceiptKind,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, ChatError> {
        self.authorize(user, request).await?;
        let mut seen = HashSet::with_capacity(ids.len());
        let ids: Vec<MessageId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        // Held across the store write and the publish, as for a post: a join of the room sees a
        // receipt either in its history or live after it, never both and never neither.
        let _order = self.room_order(request).await;
        let at = self.clock.now();
        let marked = self.store.mark(request, user.id(), kind, &ids, at).await;
        let marked = marked
            .inspect_err(|e| self.may_have_counted(request, user, e))
            .map_err(ChatError::store("marking messages"))?;
        if !marked.read.is_empty() {
            let n = u64::try_from(marked.read.len()).unwrap_or(u64::MAX);
            // The receipts are stored: a failed count is recounted later (see `recount`).
            if let Err(e) = self.store.count_read(request, user.id(), n).await {
                self.recounts.failed(request, user.id(), &e);
            }
        }
        let user_id = user.id().clone();
        if !marked.delivered.is_empty() {
            let messages = marked.delivered.clone();
            self.publish(RoomEvent::Delivered { request_id: request, user_id: user_id.clone(), messages, at }).await;
        }
        if !marked.read.is_empty() {
            let messages = marked.read.clone();
            self.publish(RoomEvent::Read { request_id: request, user_id, messages, at }).await;
        }
        Ok(match kind {
            ReceiptKind::Delivered => marked.delivered,
            ReceiptKind::Read => marked.read,
        })
    }

    /// A page of history in the room's order: the latest messages, the newest ones before a
    /// message ([`Cursor::Before`], scrolling back) or the oldest ones after it
    /// ([`Cursor::After`], catching up); at most `limit` and never more than the configured
    /// history limit. A cursor that is not a message of the room is [`ChatError::NotInRoom`].
    pub async fn history(
        &self,
        user: &User,
        request: RequestId,
        cursor: Cursor,
        limit: Option<HistoryLimit>,
    ) -> Result<HistoryPage, ChatError> {
        self.authorize(user, request).await?;
        let limit = limit.map_or(self.history_limit, |l| l.min(self.history_limit));
        self.store
            .history(request, HistoryQuery { cursor, limit })
            .await
            .map_err(ChatError::store("reading history"))?
            .ok_or(ChatError::NotInRoom(cursor))
    }

    /// Whether the use cases can serve now: the store answers a ping (for readiness probes).
    pub async fn ready(&self) -> Result<(), crate::StoreError> {
        self.store.ping().await
    }

    /// A write that changes `user`'s count of the room (an insert, a mark) failed with `error`.
    /// One that timed out may have taken effect without its count write; the retry then finds
    /// nothing new to count: the pair is recounted (see `recount`).
    fn may_have_counted(&self, request: RequestId, user: &User, error: &crate::StoreError) {
        if error.is_retryable() {
            self.recounts.failed(request, user.id(), error);
        }
    }

    /// How many rooms and users wait for their unread count to be recounted after a failed count
    /// write (see [`ChatStore::recount`]); 0 when every count write succeeded or healed.
    pub fn recounts_waiting(&self) -> usize {
        self.recounts.pending()
    }

    /// The state of the backplane between nodes, if the broadcaster has one (for readiness
    /// probes: a node whose backplane is down still serves its own clients).
    pub fn backplane(&self) -> Option<crate::BackplaneStatus> {
        self.broadcaster.backplane()
    }
}

#[cfg(test)]
#[path = "chat/edit_tests.rs"]
mod edit_tests;
#[cfg(test)]
#[path = "chat/join_cache_tests.rs"]
mod join_cache_tests;
#[cfg(test)]
pub(crate) mod tests;
