use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, HistoryPage, HistoryQuery, Message, MessageId, MessageText, ReceiptKind,
    Request, RequestId, RoomEvent, User,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{
    BroadcastError, Broadcaster, ChatStore, Clock, Inserted, MessageIdGenerator, RoomSink, SinkId, StoreError,
};

macro_rules! op_error {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            /// The request does not exist, or the user may not act on it (the two are not told
            /// apart, so nobody learns which requests exist).
            #[error("{what}: forbidden: you may not access this request", what = $what)]
            Forbidden,
            /// The store failed.
            #[error("{what}: {0}", what = $what)]
            Store(#[from] StoreError),
            /// The broadcaster failed.
            #[error("{what}: {0}", what = $what)]
            Broadcast(#[from] BroadcastError),
        }

        impl $name {
            /// How a caller should classify the failure.
            pub fn kind(&self) -> FailureKind {
                match self {
                    Self::Forbidden => FailureKind::Forbidden,
                    Self::Store(e) if e.is_retryable() => FailureKind::Unavailable,
                    Self::Store(_) => FailureKind::Internal,
                    Self::Broadcast(_) => FailureKind::Unavailable,
                }
            }
        }
    };
}

/// The classes of use-case failure, the same for every operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailureKind {
    /// The request does not exist or the user may not act on it. Nothing was done.
    Forbidden,
    /// A backend (store or broadcaster) could not be reached; retrying later may succeed.
    Unavailable,
    /// Something unexpected failed; retrying will not help.
    Internal,
}

op_error!(
    /// Why [`Chat::join`] failed.
    JoinError,
    "joining a room"
);
op_error!(
    /// Why [`Chat::leave`] failed.
    LeaveError,
    "leaving a room"
);
op_error!(
    /// Why [`Chat::post`] failed. Nothing was stored.
    PostError,
    "posting a message"
);
op_error!(
    /// Why [`Chat::mark`] failed.
    MarkError,
    "marking messages"
);
op_error!(
    /// Why [`Chat::history`] failed.
    HistoryError,
    "reading history"
);

enum Denied {
    Forbidden,
    Store(StoreError),
}

macro_rules! from_denied {
    ($($t:ident),*) => {$(
        impl From<Denied> for $t {
            fn from(d: Denied) -> Self {
                match d {
                    Denied::Forbidden => Self::Forbidden,
                    Denied::Store(e) => Self::Store(e),
                }
            }
        }
    )*};
}
from_denied!(JoinError, LeaveError, PostError, MarkError, HistoryError);

/// A successful join: the room's history, taken while the room's event order was held.
///
/// While a `Joined` is alive no event of the room is published, so a transport that queues the
/// history for the connection before dropping this value gives the client the history, then
/// every later event, with no gap and no duplicate.
#[derive(Debug)]
pub struct Joined {
    /// The history page to send.
    pub history: HistoryPage,
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

const ORDER_STRIPES: usize = 256;

/// The use cases of a chat room, over the ports.
///
/// Every use case authorizes first with [`Request::authorize`] (a missing request is
/// forbidden too). Writes to one room, and joins of it, happen one at a time, so ids, storage
/// order and broadcast order agree.
pub struct Chat {
    store: Arc<dyn ChatStore>,
    broadcaster: Arc<dyn Broadcaster>,
    clock: Arc<dyn Clock>,
    ids: MessageIdGenerator,
    order: Box<[Arc<Mutex<()>>]>,
    history_limit: HistoryLimit,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("history_limit", &self.history_limit).finish_non_exhaustive()
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
        Self {
            store,
            broadcaster,
            clock,
            ids: MessageIdGenerator::new(),
            order: (0..ORDER_STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            history_limit,
        }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }

    async fn authorize(&self, user: &User, request: RequestId) -> Result<Request, Denied> {
        match self.store.find_request(request).await {
            Ok(Some(r)) if r.authorize(user).is_ok() => Ok(r),
            Ok(_) => Err(Denied::Forbidden),
            Err(e) => Err(Denied::Store(e)),
        }
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
        let mut h = DefaultHasher::new();
        room.hash(&mut h);
        let stripe = usize::try_from(h.finish() % ORDER_STRIPES as u64).unwrap_or(0);
        Arc::clone(&self.order[stripe]).lock_owned().await
    }

    /// Joins `sink` to the room and returns the history to send: the latest page, or with
    /// `after` the messages after that one. Joining twice is harmless.
    pub async fn join(
        &self,
        user: &User,
        request: RequestId,
        after: Option<MessageId>,
        sink: Arc<dyn RoomSink>,
    ) -> Result<Joined, JoinError> {
        self.authorize(user, request).await?;
        let order = self.room_order(request).await;
        let cursor = after.map_or(Cursor::Latest, Cursor::After);
        // A cursor that is not a message of the room gives an empty page.
        let history =
            self.store.history(request, HistoryQuery { cursor, limit: self.history_limit }).await?.unwrap_or_default();
        self.broadcaster.subscribe(request, sink).await?;
        Ok(Joined { history, _order: order })
    }

    /// Unsubscribes a closing connection's sink from its rooms, without authorization (the
    /// subscriptions were authorized when they were made).
    pub async fn disconnect(&self, sink: SinkId, rooms: impl IntoIterator<Item = RequestId>) {
        for room in rooms {
            if let Err(e) = self.broadcaster.unsubscribe(room, sink).await {
                tracing::warn!(error = %e, request_id = %room, "unsubscribe on disconnect failed");
            }
        }
    }

    /// Leaves the room; leaving a room not joined is harmless.
    pub async fn leave(&self, user: &User, request: RequestId, sink: SinkId) -> Result<(), LeaveError> {
        self.authorize(user, request).await?;
        self.broadcaster.unsubscribe(request, sink).await?;
        Ok(())
    }

    /// Stores a message from `user` and then broadcasts it to the room. With a client message id
    /// already used by this user in this room, stores and broadcasts nothing and returns the
    /// original.
    pub async fn post(
        &self,
        user: &User,
        request: RequestId,
        text: MessageText,
        client_message_id: Option<ClientMessageId>,
    ) -> Result<Posted, PostError> {
        self.authorize(user, request).await?;
        let _order = self.room_order(request).await;
        let now = self.clock.now();
        let mut message = Message {
            id: self.ids.next(now),
            request_id: request,
            seq: None,
            sender_id: user.id().clone(),
            sender_role: user.role(),
            text,
            created_at: now,
            client_message_id,
            delivered_to: Vec::new(),
            read_by: Vec::new(),
        };
        match self.store.insert_message(&message).await? {
            Inserted::Duplicate(original) => Ok(Posted { message: original, duplicate: true }),
            Inserted::New(seq) => {
                message.seq = Some(seq);
                self.publish(RoomEvent::MessagePosted(message.clone())).await;
                Ok(Posted { message, duplicate: false })
            }
        }
    }

    /// Marks the listed messages as delivered to (or read by) `user`, broadcasting what was newly
    /// marked: deliveries first, then reads. Returns the ids newly marked as `kind`.
    pub async fn mark(
        &self,
        user: &User,
        request: RequestId,
        kind: ReceiptKind,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, MarkError> {
        self.authorize(user, request).await?;
        let mut seen = HashSet::with_capacity(ids.len());
        let ids: Vec<MessageId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let at = self.clock.now();
        let marked = self.store.mark(request, user.id(), kind, &ids, at).await?;
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

    /// A page of older history: the newest messages before `before` (or the latest ones), at most
    /// `limit` and never more than the configured history limit.
    pub async fn history(
        &self,
        user: &User,
        request: RequestId,
        before: Option<MessageId>,
        limit: Option<HistoryLimit>,
    ) -> Result<HistoryPage, HistoryError> {
        self.authorize(user, request).await?;
        let limit = limit.map_or(self.history_limit, |l| l.min(self.history_limit));
        let cursor = before.map_or(Cursor::Latest, Cursor::Before);
        // A cursor that is not a message of the room gives an empty page.
        Ok(self.store.history(request, HistoryQuery { cursor, limit }).await?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
