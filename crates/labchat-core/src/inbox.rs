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

    /// Subscribes `sink` to `user`'s inbox. Subscribing twice is the same as once.
    pub fn subscribe(&self, user: &User, sink: Arc<dyn InboxSink>) {
        if let Some(rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            tokio::spawn(run(Arc::clone(&self.shared), rx));
        }
        let mut subscribers = self.shared.subscribers();
        let sinks = subscribers.entry(user.clone()).or_default();
        if !sinks.iter().any(|s| s.sink.id() == sink.id()) {
            sinks.push(Subscriber { sink, last: HashMap::new() });
        }
    }

    /// Unsubscribes the sink; an unknown sink is ignored.
    pub fn unsubscribe(&self, sink: SinkId) {
        self.shared.subscribers().retain(|_, sinks| {
            sinks.retain(|s| s.sink.id() != sink);
            !sinks.is_empty()
        });
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
mod tests {
    use std::time::Duration;

    use labchat_domain::{Message, MessageRecord, MessageText, Request, Role, Seq, Timestamp};

    use super::*;
    use crate::MockChatStore;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    fn user(id: &str, role: Role) -> User {
        User::new(UserId::parse(id).unwrap(), role)
    }

    fn row(room: RequestId, unread: u64) -> InboxRow {
        let last_message = Message::restore(MessageRecord {
            id: labchat_domain::MessageId::parse(&format!("{:024x}", 99)).unwrap(),
            request_id: room,
            seq: Some(Seq::FIRST),
            sender_id: UserId::parse("lab").unwrap(),
            sender_role: Role::Lab,
            text: Some(MessageText::parse("m", 10).unwrap()),
            created_at: Timestamp::from_unix_millis(1),
            client_message_id: None,
            delivered_to: vec![],
            read_by: vec![],
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        })
        .unwrap();
        InboxRow { last_message, unread }
    }

    struct Recorder(SinkId, Mutex<Vec<InboxRow>>);
    impl InboxSink for Recorder {
        fn id(&self) -> SinkId {
            self.0
        }
        fn deliver_inbox(&self, row: Arc<InboxRow>) {
            self.1.lock().unwrap().push((*row).clone());
        }
    }

    async fn settle(sinks: &[&Recorder], want: usize) {
        for _ in 0..200 {
            if sinks.iter().map(|s| s.1.lock().unwrap().len()).sum::<usize>() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Anything more would have arrived by now too.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[test]
    fn waiting_notices_coalesce_by_room_in_the_order_of_their_first_notice() {
        let u = |s: &str| UserId::parse(s).unwrap();
        let read = |room, user: &str| InboxNotice::Read { request_id: rid(room), user: u(user) };
        let notices = vec![
            InboxNotice::Posted { request_id: rid(1) },
            read(2, "a"),
            read(1, "b"),
            read(2, "a"),
            read(2, "c"),
            read(3, "a"),
            InboxNotice::Posted { request_id: rid(3) },
            InboxNotice::Posted { request_id: rid(1) },
        ];
        assert_eq!(
            coalesce(notices),
            vec![(rid(1), Who::Everyone), (rid(2), Who::Readers(vec![u("a"), u("c")])), (rid(3), Who::Everyone),]
        );
    }

    #[tokio::test]
    async fn notices_reach_only_the_users_who_may_act_on_the_room_and_a_read_only_its_reader() {
        let mut store = MockChatStore::new();
        store.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
        store.expect_inbox_rows().returning(|room, users| {
            let mut ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
            ids.sort_unstable();
            assert!(ids == ["lab", "t1"] || ids == ["t1"], "asked for {ids:?}");
            // A read (asked for its reader alone) brought t1's count down to 0.
            let t1 = if users.len() == 1 { 0 } else { 1 };
            Ok(users.iter().map(|u| row(room, if u.as_str() == "t1" { t1 } else { 2 })).collect())
        });
        let hub = InboxHub::new(Arc::new(store));
        let (t1, t1b, t2, lab) = (
            Arc::new(Recorder(SinkId(1), Mutex::default())),
            Arc::new(Recorder(SinkId(2), Mutex::default())),
            Arc::new(Recorder(SinkId(3), Mutex::default())),
            Arc::new(Recorder(SinkId(4), Mutex::default())),
        );
        hub.subscribe(&user("t1", Role::Teacher), t1.clone());
        hub.subscribe(&user("t1", Role::Teacher), t1.clone());
        hub.subscribe(&user("t1", Role::Teacher), t1b.clone());
        hub.subscribe(&user("t2", Role::Teacher), t2.clone());
        hub.subscribe(&user("lab", Role::Lab), lab.clone());
        assert_eq!(hub.subscription_count(), 4);

        hub.notice(InboxNotice::Posted { request_id: rid(1) });
        settle(&[&t1, &t1b, &t2, &lab], 3).await;
        assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 1)], "once, though subscribed twice");
        assert_eq!(*t1b.1.lock().unwrap(), [row(rid(1), 1)], "every connection of the user");
        assert_eq!(*lab.1.lock().unwrap(), [row(rid(1), 2)]);
        assert!(t2.1.lock().unwrap().is_empty(), "never another teacher's room");

        hub.unsubscribe(SinkId(2));
        hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
        settle(&[&t1, &t1b, &t2, &lab], 4).await;
        assert_eq!(t1.1.lock().unwrap().len(), 2, "the reader");
        assert_eq!(t1b.1.lock().unwrap().len(), 1, "unsubscribed");
        assert_eq!(lab.1.lock().unwrap().len(), 1, "others' counts did not change");
        assert!(t2.1.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_row_identical_to_the_last_one_sent_to_a_connection_is_not_sent_again() {
        // The store's rows as posts and reads change them: three posts read as one same row,
        // then a read changes the count, then a post in another room.
        let unread = Arc::new(Mutex::new(3_u64));
        let mut store = MockChatStore::new();
        store.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
        let counts = Arc::clone(&unread);
        store
            .expect_inbox_rows()
            .returning(move |room, users| Ok(users.iter().map(|_| row(room, *counts.lock().unwrap())).collect()));
        let hub = InboxHub::new(Arc::new(store));
        let t1 = Arc::new(Recorder(SinkId(1), Mutex::default()));
        hub.subscribe(&user("t1", Role::Teacher), t1.clone());
        for _ in 0..3 {
            hub.notice(InboxNotice::Posted { request_id: rid(1) });
        }
        settle(&[&t1], 1).await;
        assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 3)], "three notices, one same row: sent once");
        *unread.lock().unwrap() = 0;
        hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
        hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
        hub.notice(InboxNotice::Posted { request_id: rid(2) });
        settle(&[&t1], 3).await;
        assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 3), row(rid(1), 0), row(rid(2), 0)], "each change once");
        // A connection subscribed later was sent nothing yet: it gets the current row.
        let t1b = Arc::new(Recorder(SinkId(2), Mutex::default()));
        hub.subscribe(&user("t1", Role::Teacher), t1b.clone());
        hub.notice(InboxNotice::Posted { request_id: rid(1) });
        settle(&[&t1, &t1b], 4).await;
        assert_eq!(*t1b.1.lock().unwrap(), [row(rid(1), 0)]);
        assert_eq!(t1.1.lock().unwrap().len(), 3, "unchanged for the first connection");
    }
}
