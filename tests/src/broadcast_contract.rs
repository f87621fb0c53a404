//! The [`Broadcaster`] contract as one suite of checks, run against every broadcaster: the
//! in-process [`LocalBroadcaster`] and the [`RedisBroadcaster`] on the test Redis server.
//!
//! Each check is an async function of a [`BroadcastFixture`]: a fresh broadcaster, and the store
//! its messages come from (the use cases store a message, or mark a receipt, before they publish
//! it; the Redis broadcaster reads what it misses from that store). A check panics when the
//! broadcaster breaks a promise of the port's documentation, which the check's own documentation
//! quotes. Rooms are fresh ones of each check, so checks share the Redis server.
//!
//! [`for_each_broadcast_check!`](crate::for_each_broadcast_check) lists every check, so a test
//! file runs them all against one broadcaster with a single macro call (see
//! `tests/tests/e2e/broadcast_contract.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_broadcast_redis::{RedisBroadcaster, RedisSettings};
use labchat_core::{
    Broadcaster, ChatStore, InboxListener, InboxNotice, Inserted, MessageIdGenerator, Published, RoomSink, SinkId,
};
use labchat_domain::{Message, MessageText, NewMessage, ReceiptKind, RequestId, Role, RoomEvent, Timestamp};
use labchat_memory::{LocalBroadcaster, MemoryStore};

use crate::contract::uid;
use crate::harness::new_request_id;
use crate::redis::{fresh_node_id, test_redis_url};

/// How long an event may take to arrive.
const WAIT: Duration = Duration::from_secs(5);
/// How long nothing more must arrive, after what was expected did.
const QUIET: Duration = Duration::from_millis(300);

/// Every check of the contract, as a list of names for a callback macro: `$m! { a, b, ... }`.
#[macro_export]
macro_rules! for_each_broadcast_check {
    ($m:ident) => {
        $m! {
            a_room_s_subscribers_get_its_events_and_no_other_room_s,
            subscribing_twice_is_the_same_as_once,
            every_subscriber_gets_the_room_s_events_in_the_order_of_publish,
            an_unsubscribed_sink_hears_nothing_more_of_that_room,
            unsubscribing_an_unknown_sink_or_room_is_ignored,
            a_sink_subscribed_again_hears_again_once,
            inbox_notices_reach_the_listener_once_in_publish_order,
            a_later_inbox_listener_replaces_the_first,
        }
    };
}

/// A broadcaster under test and the store behind it.
pub struct BroadcastFixture {
    broadcaster: Arc<dyn Broadcaster>,
    store: Arc<MemoryStore>,
    ids: MessageIdGenerator,
    clock: AtomicU64,
}

impl std::fmt::Debug for BroadcastFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastFixture").field("backplane", &self.broadcaster.backplane()).finish_non_exhaustive()
    }
}

impl BroadcastFixture {
    fn with(broadcaster: Arc<dyn Broadcaster>, store: Arc<MemoryStore>) -> Self {
        let ids = MessageIdGenerator::with_random_bytes([0xbc, 0xa5, 0x70]);
        Self { broadcaster, store, ids, clock: AtomicU64::new(0) }
    }

    /// A [`LocalBroadcaster`].
    pub fn memory() -> Self {
        Self::with(Arc::new(LocalBroadcaster::new()), Arc::new(MemoryStore::new()))
    }

    /// A [`RedisBroadcaster`] on the test Redis server, once it is connected there.
    ///
    /// # Panics
    ///
    /// When `LABCHAT_TEST_REDIS_URL` is not set, or the broadcaster does not connect within 10 s.
    pub async fn redis() -> Self {
        let store = Arc::new(MemoryStore::new());
        let settings =
            RedisSettings { url: test_redis_url(), node_id: fresh_node_id("contract"), ..RedisSettings::default() };
        let node = RedisBroadcaster::start(settings, store.clone() as Arc<dyn ChatStore>)
            .unwrap_or_else(|e| panic!("start the redis broadcaster: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !node.backplane().is_some_and(|b| b.connected) {
            assert!(tokio::time::Instant::now() < deadline, "not connected to the test Redis: {:?}", node.backplane());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self::with(node, store)
    }

    fn now(&self) -> Timestamp {
        let tick = i64::try_from(self.clock.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX);
        Timestamp::from_unix_millis(1_733_000_000_000 + tick)
    }

    /// Stores a message of `sender` (a TEACHER) in `room`, then publishes it, as the use cases
    /// do; returns its event.
    async fn post(&self, room: RequestId, sender: &str, text: &str) -> RoomEvent {
        let now = self.now();
        let message = Message::new(NewMessage {
            id: self.ids.next(now),
            request_id: room,
            sender_id: uid(sender),
            sender_role: Role::Teacher,
            text: MessageText::parse(text, MessageText::DEFAULT_MAX_CHARS).unwrap_or_else(|e| panic!("{e}")),
            created_at: now,
            client_message_id: None,
        });
        let message = match self.store.insert_message(&message).await {
            Ok(Inserted::New(seq)) => message.with_seq(seq),
            other => panic!("storing a message: {other:?}"),
        };
        self.publish(RoomEvent::MessagePosted(message)).await
    }

    /// Marks the messages of `posted` for `user`, then publishes the receipt, as the use cases do.
    async fn mark(&self, room: RequestId, user: &str, kind: ReceiptKind, posted: &[&RoomEvent]) -> RoomEvent {
        let ids: Vec<_> = posted.iter().filter_map(|e| message_id(e)).collect();
        let at = self.now();
        let marked = self.store.mark(room, &uid(user), kind, &ids, at).await.unwrap_or_else(|e| panic!("mark: {e}"));
        let (request_id, user_id) = (room, uid(user));
        let event = match kind {
            ReceiptKind::Delivered => RoomEvent::Delivered { request_id, user_id, messages: marked.delivered, at },
            ReceiptKind::Read => RoomEvent::Read { request_id, user_id, messages: marked.read, at },
        };
        self.publish(event).await
    }

    async fn publish(&self, event: RoomEvent) -> RoomEvent {
        self.broadcaster.publish(event.clone()).await.unwrap_or_else(|e| panic!("publish {event:?}: {e}"));
        event
    }

    async fn subscribe(&self, room: RequestId, sink: &Arc<Sink>) {
        let dyn_sink: Arc<dyn RoomSink> = sink.clone();
        self.broadcaster.subscribe(room, dyn_sink).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
    }

    async fn unsubscribe(&self, room: RequestId, sink: SinkId) {
        self.broadcaster.unsubscribe(room, sink).await.unwrap_or_else(|e| panic!("unsubscribe: {e}"));
    }
}

fn message_id(event: &RoomEvent) -> Option<labchat_domain::MessageId> {
    if let RoomEvent::MessagePosted(m) = event { Some(m.id) } else { None }
}

/// Polls `check` every 10 ms until it holds, for at most [`WAIT`].
async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A subscriber that records what it is given.
struct Sink {
    id: SinkId,
    events: Mutex<Vec<RoomEvent>>,
}

impl Sink {
    fn new(id: u64) -> Arc<Self> {
        Arc::new(Self { id: SinkId(id), events: Mutex::default() })
    }

    fn events(&self) -> Vec<RoomEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until it got as many events as `want`, then for [`QUIET`], and checks it got
    /// exactly `want`.
    async fn expect(&self, who: &str, want: &[RoomEvent]) {
        wait_until(&format!("{who} gets {} events", want.len()), || self.events().len() >= want.len()).await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(self.events(), want, "{who}: exactly these events, in this order");
    }
}

impl RoomSink for Sink {
    fn id(&self) -> SinkId {
        self.id
    }

    fn deliver(&self, event: Arc<Published>) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event.event().clone());
    }
}

/// An inbox listener that records the notices of some rooms (the test Redis server carries
/// the notices of every broadcaster on it).
struct Notices {
    rooms: Vec<RequestId>,
    got: Mutex<Vec<InboxNotice>>,
}

impl Notices {
    fn of(rooms: &[RequestId]) -> Arc<Self> {
        Arc::new(Self { rooms: rooms.to_vec(), got: Mutex::default() })
    }

    fn got(&self) -> Vec<InboxNotice> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl InboxListener for Notices {
    fn notice(&self, notice: InboxNotice) {
        let room = match &notice {
            InboxNotice::Posted { request_id } | InboxNotice::Read { request_id, .. } => *request_id,
        };
        if self.rooms.contains(&room) {
            self.got.lock().unwrap_or_else(|p| p.into_inner()).push(notice);
        }
    }
}

fn typing(room: RequestId, user: &str) -> RoomEvent {
    RoomEvent::Typing { request_id: room, user_id: uid(user), role: Role::Lab }
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// "Delivers the event to every sink subscribed to its room": both sinks of a room get its
/// message; a sink of another room gets nothing of it.
pub async fn a_room_s_subscribers_get_its_events_and_no_other_room_s(f: &BroadcastFixture) {
    let (room, other) = (new_request_id(), new_request_id());
    let (a, b, c) = (Sink::new(1), Sink::new(2), Sink::new(3));
    f.subscribe(room, &a).await;
    f.subscribe(room, &b).await;
    f.subscribe(other, &c).await;
    let posted = f.post(room, "teacher-1", "hello").await;
    a.expect("a", std::slice::from_ref(&posted)).await;
    b.expect("b", std::slice::from_ref(&posted)).await;
    assert_eq!(c.events(), [], "a sink of another room");
}

/// "Subscribing twice is the same as once": one delivery per event.
pub async fn subscribing_twice_is_the_same_as_once(f: &BroadcastFixture) {
    let room = new_request_id();
    let a = Sink::new(1);
    f.subscribe(room, &a).await;
    f.subscribe(room, &a).await;
    let first = f.post(room, "teacher-1", "once").await;
    let typed = f.publish(typing(room, "lab-1")).await;
    a.expect("a", &[first, typed]).await;
}

/// "All subscribers of a room get the room's events in one same order: the order of the
/// `publish` calls for that room": messages, receipts and presence events of two rooms,
/// published interleaved.
pub async fn every_subscriber_gets_the_room_s_events_in_the_order_of_publish(f: &BroadcastFixture) {
    let rooms = [new_request_id(), new_request_id()];
    let sinks = [[Sink::new(1), Sink::new(2)], [Sink::new(3), Sink::new(4)]];
    for (room, pair) in rooms.iter().zip(&sinks) {
        for sink in pair {
            f.subscribe(*room, sink).await;
        }
    }
    let mut want: [Vec<RoomEvent>; 2] = [Vec::new(), Vec::new()];
    for (i, room) in rooms.iter().enumerate() {
        let joined = RoomEvent::MemberJoined { request_id: *room, user_id: uid("lab-1"), role: Role::Lab };
        want[i].push(f.publish(joined).await);
    }
    for round in 0..3 {
        for (i, room) in rooms.iter().enumerate() {
            let m1 = f.post(*room, "teacher-1", &format!("first of round {round}")).await;
            let m2 = f.post(*room, "teacher-1", &format!("second of round {round}")).await;
            let delivered = f.mark(*room, "lab-1", ReceiptKind::Delivered, &[&m1, &m2]).await;
            let typed = f.publish(typing(*room, "lab-1")).await;
            let read = f.mark(*room, "lab-1", ReceiptKind::Read, &[&m1]).await;
            want[i].extend([m1, m2, delivered, typed, read]);
        }
    }
    for (i, room) in rooms.iter().enumerate() {
        let left = RoomEvent::MemberLeft { request_id: *room, user_id: uid("lab-1") };
        want[i].push(f.publish(left).await);
    }
    for (i, pair) in sinks.iter().enumerate() {
        for (j, sink) in pair.iter().enumerate() {
            sink.expect(&format!("sink {j} of room {i}"), &want[i]).await;
        }
    }
}

/// "No event published after [unsubscribe] returns reaches the sink through this room": the
/// other sink of the room still hears, and so does the same sink in another room.
pub async fn an_unsubscribed_sink_hears_nothing_more_of_that_room(f: &BroadcastFixture) {
    let (room, other) = (new_request_id(), new_request_id());
    let (a, b) = (Sink::new(1), Sink::new(2));
    f.subscribe(room, &a).await;
    f.subscribe(room, &b).await;
    f.subscribe(other, &a).await;
    let before = f.post(room, "teacher-1", "before").await;
    wait_until("a gets the first message", || a.events().len() == 1).await;
    f.unsubscribe(room, a.id).await;
    let after = f.post(room, "teacher-1", "after").await;
    let typed = f.publish(typing(room, "lab-1")).await;
    let elsewhere = f.post(other, "teacher-1", "in the other room").await;
    b.expect("b", &[before.clone(), after, typed]).await;
    a.expect("a", &[before, elsewhere]).await;
}

/// "Unknown sinks and rooms are ignored": unsubscribing them succeeds and changes nothing.
pub async fn unsubscribing_an_unknown_sink_or_room_is_ignored(f: &BroadcastFixture) {
    let room = new_request_id();
    let a = Sink::new(1);
    f.unsubscribe(new_request_id(), SinkId(99)).await;
    f.subscribe(room, &a).await;
    f.unsubscribe(room, SinkId(99)).await;
    f.unsubscribe(new_request_id(), a.id).await;
    let posted = f.post(room, "teacher-1", "still here").await;
    a.expect("a", &[posted]).await;
}

/// A sink that left a room and subscribes again hears the room's new events, once each.
pub async fn a_sink_subscribed_again_hears_again_once(f: &BroadcastFixture) {
    let room = new_request_id();
    let (a, b) = (Sink::new(1), Sink::new(2));
    f.subscribe(room, &b).await;
    f.subscribe(room, &a).await;
    f.unsubscribe(room, a.id).await;
    let missed = f.post(room, "teacher-1", "while away").await;
    wait_until("b gets the message", || b.events().len() == 1).await;
    f.subscribe(room, &a).await;
    let back = f.post(room, "teacher-1", "after coming back").await;
    a.expect("a", std::slice::from_ref(&back)).await;
    b.expect("b", &[missed, back]).await;
}

/// "The notice of every event published through this broadcaster that changes inbox rows (a
/// posted message, messages read), whichever room it is in and whoever joined it ... Each
/// notice reaches the listener once ... in the order of their `publish` calls": no sink is
/// subscribed; receipts of delivery and typing make no notice.
pub async fn inbox_notices_reach_the_listener_once_in_publish_order(f: &BroadcastFixture) {
    let (room, other) = (new_request_id(), new_request_id());
    let listener = Notices::of(&[room, other]);
    f.broadcaster.listen_inbox(listener.clone());
    let m1 = f.post(room, "teacher-1", "one").await;
    f.mark(room, "lab-1", ReceiptKind::Delivered, &[&m1]).await;
    f.publish(typing(room, "lab-1")).await;
    f.mark(room, "lab-1", ReceiptKind::Read, &[&m1]).await;
    f.post(other, "teacher-2", "two").await;
    f.post(room, "teacher-1", "three").await;
    let want = [
        InboxNotice::Posted { request_id: room },
        InboxNotice::Read { request_id: room, user: uid("lab-1") },
        InboxNotice::Posted { request_id: other },
        InboxNotice::Posted { request_id: room },
    ];
    wait_until("every notice", || listener.got().len() >= want.len()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(listener.got(), want, "each notice once, in the order of the publish calls");
}

/// "A later call replaces the listener": the first one hears nothing more.
pub async fn a_later_inbox_listener_replaces_the_first(f: &BroadcastFixture) {
    let room = new_request_id();
    let (first, second) = (Notices::of(&[room]), Notices::of(&[room]));
    f.broadcaster.listen_inbox(first.clone());
    f.broadcaster.listen_inbox(second.clone());
    f.post(room, "teacher-1", "for the second").await;
    wait_until("the second listener's notice", || second.got().len() == 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(second.got(), [InboxNotice::Posted { request_id: room }]);
    assert_eq!(first.got(), [], "the replaced listener");
}
