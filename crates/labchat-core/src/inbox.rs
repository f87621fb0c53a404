//! Live inbox updates: the notices that change inbox rows, the sinks of the connections that
//! subscribed to their user's inbox, and the hub that turns one into updates for the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use labchat_domain::{InboxEffect, InboxRow, RequestId, RoomEvent, User, UserId};
use tokio::sync::mpsc;

use crate::{ChatStore, SinkId};

/// What changed inbox rows of a room, as every node hears it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InboxNotice {
    /// A message was stored in the room: every user who may act on it has a new last message.
    Posted {
        /// The room.
        request_id: RequestId,
    },
    /// `user` newly read messages of the room: their unread count changed.
    Read {
        /// The room.
        request_id: RequestId,
        /// Who read.
        user: UserId,
    },
}

impl InboxNotice {
    /// The notice a room event makes, if it changes inbox rows (a posted message, messages read).
    pub fn of(event: &RoomEvent) -> Option<Self> {
        let request_id = event.request_id();
        event.inbox_effect().map(|effect| match effect {
            InboxEffect::RoomRows => Self::Posted { request_id },
            InboxEffect::UnreadOf(user) => Self::Read { request_id, user: user.clone() },
        })
    }

    /// The room.
    pub const fn request_id(&self) -> RequestId {
        match self {
            Self::Posted { request_id } | Self::Read { request_id, .. } => *request_id,
        }
    }
}

/// Where a broadcaster hands inbox notices (see `Broadcaster::listen_inbox`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait InboxListener: Send + Sync + 'static {
    /// Takes one notice. Must not block; notices are handled in the order they are taken.
    fn notice(&self, notice: InboxNotice);
}

/// One connection's inbox subscription (implemented by the transport).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait InboxSink: Send + Sync + 'static {
    /// The subscriber's id; stable for the sink's life (the same as its room sink's).
    fn id(&self) -> SinkId;

    /// Queues an inbox update: the row of one room for the sink's user. Must not block.
    fn deliver_inbox(&self, row: Arc<InboxRow>);
}

/// How many notices may wait for the hub's task before new ones are dropped (and logged).
const NOTICE_QUEUE: usize = 65_536;

/// The most waiting notices the hub's task takes together.
const NOTICE_BATCH: usize = 4_096;

type Subscribers = HashMap<User, Vec<Subscriber>>;

/// One subscribed connection, and the row of each room last sent to it: an update identical to
/// it is not sent again (several posts handled after all were stored read the same row). The
/// rows are shared by every connection of the user, and kept for the rooms with activity since
/// the subscription only.
struct Subscriber {
    sink: Arc<dyn InboxSink>,
    last: HashMap<RequestId, Arc<InboxRow>>,
}

/// The node's inbox subscriptions, and the one task that turns notices into updates.
///
/// The task takes the notices waiting for it together (up to 4,096) and coalesces
/// them by room: however many posts and reads of one room wait, the room costs one lookup of its
/// request (so a room the user may no longer act on is never announced to them) and one read of
/// the rows of the interested local users: for a post, every subscribed user who may act on the
/// room; for reads alone, those readers. Rooms are handled in the order their first notice
/// arrived, and every read happens after the notices it covers, so the updates a connection
/// receives follow the store's counts in time: a user never sees an older unread count after a
/// newer one. A connection is never sent a row identical to the last one it was sent for that
/// room.
pub struct InboxHub {
    shared: Arc<Shared>,
    tx: mpsc::Sender<InboxNotice>,
    rx: Mutex<Option<mpsc::Receiver<InboxNotice>>>,
}

struct Shared {
    store: Arc<dyn ChatStore>,
    subscribers: Mutex<Subscribers>,
}

impl Shared {
    fn subscribers(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for InboxHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxHub").field("users", &self.shared.subscribers().len()).finish_non_exhaustive()
    }
}

impl InboxHub {
    /// A hub with no subscriber, reading rows from `store`. Its task starts with the first
    /// subscription (inside the caller's tokio runtime).
    pub fn new(store: Arc<dyn ChatStore>) -> Self {
        let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
        Self { shared: Arc::new(Shared { store, subscribers: Mutex::default() }), tx, rx: Mutex::new(Some(rx)) }
    }

    /// Subscribes `sink` to `user`'s inbox. Subscribing twice is the same as once. Returns
    /// whether `user` had no subscribed sink before (their first on this node).
    pub fn subscribe(&self, user: &User, sink: Arc<dyn InboxSink>) -> bool {
        if let Some(rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            tokio::spawn(run(Arc::clone(&self.shared), rx));
        }
        let mut subscribers = self.shared.subscribers();
        let sinks = subscribers.entry(user.clone()).or_default();
        let first = sinks.is_empty();
        if !sinks.iter().any(|s| s.sink.id() == sink.id()) {
            sinks.push(Subscriber { sink, last: HashMap::new() });
        }
        first
    }

    /// Unsubscribes the sink; an unknown sink is ignored. Returns the users whose last
    /// subscribed sink this was.
    pub fn unsubscribe(&self, sink: SinkId) -> Vec<User> {
        let mut gone = Vec::new();
        self.shared.subscribers().retain(|user, sinks| {
            sinks.retain(|s| s.sink.id() != sink);
            if sinks.is_empty() {
                gone.push(user.clone());
            }
            !sinks.is_empty()
        });
        gone
    }

    /// How many connections are subscribed.
    pub fn subscription_count(&self) -> usize {
        self.shared.subscribers().values().map(Vec::len).sum()
    }
}

impl InboxListener for InboxHub {
    fn notice(&self, notice: InboxNotice) {
        if self.shared.subscribers().is_empty() {
            return;
        }
        if let Err(e) = self.tx.try_send(notice) {
            tracing::warn!(error = %e, "inbox notice dropped: the inbox task is behind");
        }
    }
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<InboxNotice>) {
    let mut batch = Vec::with_capacity(NOTICE_BATCH);
    while rx.recv_many(&mut batch, NOTICE_BATCH).await > 0 {
        for (request_id, who) in coalesce(batch.drain(..)) {
            handle(&shared, request_id, &who).await;
        }
    }
}

/// Who a room's waiting notices concern.
#[derive(Debug, PartialEq, Eq)]
enum Who {
    /// A message was posted: every subscribed user who may act on the room.
    Everyone,
    /// Only reads: these readers.
    Readers(Vec<UserId>),
}

/// The rooms of `notices`, in the order of their first notice, each with who its notices concern.
fn coalesce(notices: impl IntoIterator<Item = InboxNotice>) -> Vec<(RequestId, Who)> {
    let mut rooms: Vec<(RequestId, Who)> = Vec::new();
    let mut at: HashMap<RequestId, usize> = HashMap::new();
    for notice in notices {
        let request_id = notice.request_id();
        let i = *at.entry(request_id).or_insert_with(|| {
            rooms.push((request_id, Who::Readers(Vec::new())));
            rooms.len() - 1
        });
        match (&mut rooms[i].1, notice) {
            (who, InboxNotice::Posted { .. }) => *who = Who::Everyone,
            (Who::Readers(readers), InboxNotice::Read { user, .. }) => {
                if !readers.contains(&user) {
                    readers.push(user);
                }
            }
            (Who::Everyone, InboxNotice::Read { .. }) => {}
        }
    }
    rooms
}

/// Sends the rows of the room that `who` names to the subscribed sinks of those users.
async fn handle(shared: &Shared, request_id: RequestId, who: &Who) {
    let candidates: Vec<User> = {
        let subscribers = shared.subscribers();
        match who {
            Who::Everyone => subscribers.keys().cloned().collect(),
            Who::Readers(readers) => subscribers.keys().filter(|u| readers.contains(u.id())).cloned().collect(),
        }
    };
    if candidates.is_empty() {
        return;
    }
    let request = match shared.store.find_request(request_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, %request_id, "inbox update skipped: looking up the request failed");
            return;
        }
    };
    let users: Vec<User> = candidates.into_iter().filter(|u| request.authorize(u).is_ok()).collect();
    if users.is_empty() {
        return;
    }
    let ids: Vec<UserId> = users.iter().map(|u| u.id().clone()).collect();
    let rows = match shared.store.inbox_rows(request_id, &ids).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, %request_id, "inbox update skipped: reading the rows failed");
            return;
        }
    };
    let mut subscribers = shared.subscribers();
    for (user, row) in users.iter().zip(rows) {
        let row = Arc::new(row);
        for subscriber in subscribers.get_mut(user).map_or(&mut [][..], Vec::as_mut_slice) {
            if subscriber.last.get(&request_id).is_some_and(|last| **last == *row) {
                continue;
            }
            subscriber.last.insert(request_id, Arc::clone(&row));
            subscriber.sink.deliver_inbox(Arc::clone(&row));
        }
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
