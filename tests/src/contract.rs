//! The [`ChatStore`] contract as one suite of checks, run against every store.
//!
//! Each check is an async function generic over a [`StoreFixture`], which gives a fresh, empty
//! store and a way to add requests to it (requests belong to another system, so the port has no
//! method for that). A check panics when the store breaks the contract.
//!
//! Expected results come from the domain, not from any store: a small in-test model gives each
//! message its room's next seq, applies [`Message::mark`] and [`HistoryQuery::select`] to the
//! messages the check wrote, and the store must give back exactly that.
//!
//! [`for_each_contract_check!`](crate::for_each_contract_check) lists every check, so a test
//! file runs them all against one store with a single macro call (see
//! `tests/tests/e2e/store_contract.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use futures_util::future::join_all;
use labchat_core::{ChatStore, Inserted, Marked, MessageIdGenerator};
use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, HistoryPage, HistoryQuery, Message, MessageId, MessageRecord, MessageText,
    ObjectIdBytes, Receipt, ReceiptKind, Request, RequestId, Role, Seq, Timestamp, UserId,
};
use labchat_memory::MemoryStore;

/// How a request's creator is stored by the system that owns the requests.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Creator {
    /// A plain string user id.
    Text(String),
    /// An ObjectId; the creator is the user whose id is its 24 lowercase hex digits.
    ObjectId(ObjectIdBytes),
}

impl Creator {
    /// The user id a store must report for this creator.
    pub fn user_id(&self) -> UserId {
        let raw = match self {
            Self::Text(s) => s.clone(),
            Self::ObjectId(b) => b.to_hex(),
        };
        UserId::parse(raw).unwrap_or_else(|e| panic!("bad creator {self:?} in a test: {e}"))
    }
}

/// A fresh, empty store under test, and a way to add requests to it.
#[async_trait]
pub trait StoreFixture: Sync {
    /// The store (the same one on every call).
    fn store(&self) -> Arc<dyn ChatStore>;

    /// Adds a request as the system that owns requests would.
    async fn add_request(&self, id: RequestId, creator: Creator);

    /// Gives an existing request another creator, as the system that owns requests would.
    async fn reassign_request(&self, id: RequestId, creator: Creator);

    /// Deletes a request, as the system that owns requests would.
    async fn remove_request(&self, id: RequestId);
}

/// The contract's fixture for [`labchat_memory::MemoryStore`].
#[derive(Debug, Default)]
pub struct MemoryFixture {
    store: Arc<MemoryStore>,
}

impl MemoryFixture {
    /// A fixture with an empty memory store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StoreFixture for MemoryFixture {
    fn store(&self) -> Arc<dyn ChatStore> {
        self.store.clone()
    }

    async fn add_request(&self, id: RequestId, creator: Creator) {
        // The memory store holds only what the port promises: a creator is a user id.
        self.store.add_request(Request::new(id, creator.user_id()));
    }

    async fn reassign_request(&self, id: RequestId, creator: Creator) {
        self.store.add_request(Request::new(id, creator.user_id()));
    }

    async fn remove_request(&self, id: RequestId) {
        self.store.remove_request(id);
    }
}

/// Every check of the contract, as a list of names for a callback macro: `$m! { a, b, ... }`.
///
/// ```text
/// macro_rules! against_my_store { ($($check:ident),* $(,)?) => { $( /* a #[tokio::test] per check */ )* } }
/// labchat_tests::for_each_contract_check!(against_my_store);
/// ```
#[macro_export]
macro_rules! for_each_contract_check {
    ($m:ident) => {
        $m! {
            finds_a_request_with_a_string_creator,
            finds_a_request_with_an_object_id_creator,
            unknown_request_is_none,
            finds_many_requests_at_once_as_one_by_one,
            empty_room_gives_an_empty_page,
            history_is_oldest_first_and_limited,
            history_cursors_match_select,
            idempotent_insert_returns_the_original_with_receipts,
            same_client_id_from_another_sender_or_room_is_a_new_message,
            concurrent_idempotent_inserts_store_one_message,
            receipts_are_exact,
            read_implies_delivered,
            receipts_show_in_history_with_user_and_time,
            concurrent_marks_mark_once,
            ping_answers,
            seqs_are_dense_per_room,
            concurrent_inserts_into_one_room_are_dense,
            latest_since_gives_each_rooms_highest_seq_since_an_instant,
            latest_since_of_many_rooms_answers_as_room_by_room,
            a_duplicate_keeps_its_seq_and_leaves_no_hole,
            a_cursor_outside_the_room_is_reported,
            unread_counts_follow_posts_and_reads,
            own_posts_are_never_unread,
            inbox_pages_follow_activity_and_the_cursor,
            a_teacher_sees_only_their_own_requests,
            reassigned_and_deleted_requests_leave_the_inbox,
            recount_makes_missed_or_doubled_counts_exact,
            edits_and_deletions_keep_seq_and_receipts,
            a_deletion_is_unread_for_no_one,
            the_catch_up_reads_exactly_what_changed,
            reads_asked_together_answer_each_as_alone,
            posts_counted_together_count_as_alone,
        }
    };
}

mod catch_up;
pub use self::catch_up::the_catch_up_reads_exactly_what_changed;

mod edits;
pub use self::edits::{a_deletion_is_unread_for_no_one, edits_and_deletions_keep_seq_and_receipts};

mod inbox;
pub use self::inbox::{
    a_teacher_sees_only_their_own_requests, inbox_pages_follow_activity_and_the_cursor, own_posts_are_never_unread,
    reassigned_and_deleted_requests_leave_the_inbox, recount_makes_missed_or_doubled_counts_exact,
    unread_counts_follow_posts_and_reads,
};

mod together;
pub use self::together::{posts_counted_together_count_as_alone, reads_asked_together_answer_each_as_alone};

mod seq;
pub use self::seq::{
    a_cursor_outside_the_room_is_reported, a_duplicate_keeps_its_seq_and_leaves_no_hole,
    concurrent_inserts_into_one_room_are_dense, latest_since_gives_each_rooms_highest_seq_since_an_instant,
    latest_since_of_many_rooms_answers_as_room_by_room, seqs_are_dense_per_room,
};

// ---------------------------------------------------------------------------------------------
// Helpers.

const BASE_MILLIS: i64 = 1_733_000_000_000;

/// A request id for test number `n`.
pub fn rid(n: u32) -> RequestId {
    RequestId::parse(&format!("6751b6df{n:016x}")).unwrap_or_else(|e| panic!("{e}"))
}

/// A seq.
pub fn seq(n: u64) -> Seq {
    Seq::new(n).unwrap_or_else(|e| panic!("{e}"))
}

/// The seqs of some messages (a message without one is a failure).
pub fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq.unwrap_or_else(|| panic!("message {} has no seq", m.id)).get()).collect()
}

/// A user id.
pub fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn limit(n: usize) -> HistoryLimit {
    HistoryLimit::new(n).unwrap_or_else(|e| panic!("{e}"))
}

/// Makes messages with increasing ids and times, and marks with increasing times.
struct Gen {
    ids: MessageIdGenerator,
    clock: AtomicI64,
}

impl Gen {
    fn new() -> Self {
        Self { ids: MessageIdGenerator::with_random_bytes([0x1a, 0xb0, 0x0c]), clock: AtomicI64::new(0) }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(BASE_MILLIS + self.clock.fetch_add(7, Ordering::Relaxed))
    }

    fn message(&self, request: RequestId, sender: &str, text: &str, client: Option<&str>) -> Message {
        let now = self.now();
        Message::restore(MessageRecord {
            id: self.ids.next(now),
            request_id: request,
            seq: None,
            sender_id: uid(sender),
            sender_role: if sender.starts_with("lab") { Role::Lab } else { Role::Teacher },
            text: Some(MessageText::parse(text, MessageText::DEFAULT_MAX_CHARS).unwrap_or_else(|e| panic!("{e}"))),
            created_at: now,
            client_message_id: client.map(|c| ClientMessageId::parse(c).unwrap_or_else(|e| panic!("{e}"))),
            delivered_to: Vec::new(),
            read_by: Vec::new(),
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        })
        .unwrap()
    }
}

/// What the store should hold, by the domain's rules.
#[derive(Default)]
struct Model {
    messages: Vec<Message>,
}

impl Model {
    /// The room's messages in seq order.
    fn room(&self, request: RequestId) -> Vec<Message> {
        let mut room: Vec<Message> = self.messages.iter().filter(|m| m.request_id == request).cloned().collect();
        room.sort_by_key(|m| m.seq);
        room
    }

    /// Stores `m` as the room's next message; returns its seq.
    fn add(&mut self, mut m: Message) -> Seq {
        let count = self.messages.iter().filter(|x| x.request_id == m.request_id).count();
        let next = seq(u64::try_from(count).unwrap_or_else(|e| panic!("{e}")) + 1);
        m.seq = Some(next);
        self.messages.push(m);
        next
    }

    fn page(&self, request: RequestId, query: HistoryQuery) -> Option<HistoryPage> {
        query.select(&self.room(request))
    }

    fn mark(
        &mut self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Marked {
        let mut marked = Marked::default();
        for id in ids {
            if let Some(m) = self.messages.iter_mut().find(|m| m.id == *id) {
                let outcome = m.mark(request, user, kind, at);
                if outcome.delivered {
                    marked.delivered.push(*id);
                }
                if outcome.read {
                    marked.read.push(*id);
                }
            }
        }
        marked
    }
}

/// Inserts `m`, which must be stored as its room's next message (the model's seq).
async fn insert_new(store: &dyn ChatStore, model: &mut Model, m: Message) {
    let got = store.insert_message(&m).await.unwrap_or_else(|e| panic!("insert {:?}: {e:?}", m.id));
    if let Inserted::New(seq) = got {
        store.count_posted(&m, seq).await.unwrap_or_else(|e| panic!("count {:?}: {e:?}", m.id));
    }
    let id = m.id;
    let want = model.add(m);
    assert_eq!(got, Inserted::New(want), "inserting {id:?}");
}

/// A page the store must find (the cursor is a message of the room, or [`Cursor::Latest`]).
async fn history(store: &dyn ChatStore, request: RequestId, cursor: Cursor, n: usize) -> HistoryPage {
    history_at(store, request, cursor, n)
        .await
        .unwrap_or_else(|| panic!("history {cursor:?} limit {n}: the cursor was reported as not of the room"))
}

/// A page, or `None` when the store reports the cursor as not a message of the room.
async fn history_at(store: &dyn ChatStore, request: RequestId, cursor: Cursor, n: usize) -> Option<HistoryPage> {
    let query = HistoryQuery { cursor, limit: limit(n) };
    store.history(request, query).await.unwrap_or_else(|e| panic!("history {cursor:?} limit {n}: {e:?}"))
}

async fn mark(
    store: &dyn ChatStore,
    request: RequestId,
    user: &str,
    kind: ReceiptKind,
    ids: &[MessageId],
    at: Timestamp,
) -> Marked {
    store.mark(request, &uid(user), kind, ids, at).await.unwrap_or_else(|e| panic!("mark {kind:?} {ids:?}: {e:?}"))
}

/// Asserts the store's full history of the room equals the model's, receipts included.
async fn assert_room_matches(store: &dyn ChatStore, model: &Model, request: RequestId, what: &str) {
    let want = model.page(request, HistoryQuery { cursor: Cursor::Latest, limit: limit(HistoryLimit::MAX) });
    let got = history_at(store, request, Cursor::Latest, HistoryLimit::MAX).await;
    assert_eq!(got, want, "{what}: the room's whole history");
}

fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// The common start of a check: the store, an id/time generator, an empty model, and `rooms`
/// added as requests created by `creator`.
async fn open<F: StoreFixture>(f: &F, creator: &str, rooms: &[RequestId]) -> (Arc<dyn ChatStore>, Gen, Model) {
    for room in rooms {
        f.add_request(*room, Creator::Text(creator.to_owned())).await;
    }
    (f.store(), Gen::new(), Model::default())
}

/// A request whose creator is stored as a string is found with that creator.
pub async fn finds_a_request_with_a_string_creator<F: StoreFixture>(f: &F) {
    let store = f.store();
    for (n, creator) in [(1, "teacher-1"), (2, "6751B6DF1AD14EAA13A03313"), (3, "ünï cödé")] {
        let c = Creator::Text(creator.to_owned());
        f.add_request(rid(n), c.clone()).await;
        let found = store.find_request(rid(n)).await.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found, Some(Request::new(rid(n), c.user_id())), "creator {creator:?}");
    }
}

/// A request whose creator is stored as an ObjectId is found with its lowercase hex as creator.
pub async fn finds_a_request_with_an_object_id_creator<F: StoreFixture>(f: &F) {
    let store = f.store();
    let oid = ObjectIdBytes::parse("6751B6DF1AD14EAA13A033FF").unwrap_or_else(|e| panic!("{e}"));
    f.add_request(rid(1), Creator::ObjectId(oid)).await;
    let found = store.find_request(rid(1)).await.unwrap_or_else(|e| panic!("{e:?}"));
    let found = found.unwrap_or_else(|| panic!("the request is missing"));
    assert_eq!(found.created_by().map(UserId::as_str), Some("6751b6df1ad14eaa13a033ff"));
    assert_eq!(found.id(), rid(1));
}

/// `find_requests` finds many at once, each as `find_request` finds it (string and ObjectId
/// creators alike), leaves out the ids with no request, and answers no id with nothing.
pub async fn finds_many_requests_at_once_as_one_by_one<F: StoreFixture>(f: &F) {
    let store = f.store();
    let oid = ObjectIdBytes::parse("6751B6DF1AD14EAA13A033FF").unwrap_or_else(|e| panic!("{e}"));
    f.add_request(rid(1), Creator::Text("teacher-1".into())).await;
    f.add_request(rid(2), Creator::ObjectId(oid)).await;
    f.add_request(rid(3), Creator::Text("ünï cödé".into())).await;
    let ids = [rid(3), rid(9), rid(1), rid(2)];
    let mut found = store.find_requests(&ids).await.unwrap_or_else(|e| panic!("{e:?}"));
    found.sort_by_key(Request::id);
    let mut one_by_one = Vec::new();
    for id in ids {
        one_by_one.extend(store.find_request(id).await.unwrap_or_else(|e| panic!("{e:?}")));
    }
    one_by_one.sort_by_key(Request::id);
    assert_eq!(found, one_by_one, "the same requests as one lookup each, without the missing one");
    assert_eq!(found.len(), 3);
    let none = store.find_requests(&[]).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(none.is_empty(), "no id asked, no answer: {none:?}");
}

/// An id with no request gives `None`, not an error.
pub async fn unknown_request_is_none<F: StoreFixture>(f: &F) {
    let store = f.store();
    f.add_request(rid(1), Creator::Text("t".into())).await;
    assert_eq!(store.find_request(rid(2)).await.unwrap_or_else(|e| panic!("{e:?}")), None);
}

/// A room with no messages, or with no request at all, gives an empty page for the latest
/// messages, and reports a cursor (necessarily not one of its messages) as not of the room.
pub async fn empty_room_gives_an_empty_page<F: StoreFixture>(f: &F) {
    let store = f.store();
    let mk = Gen::new();
    f.add_request(rid(1), Creator::Text("t".into())).await;
    let elsewhere = mk.message(rid(3), "t", "in another room", None);
    store.insert_message(&elsewhere).await.unwrap_or_else(|e| panic!("{e:?}"));
    for room in [rid(1), rid(2)] {
        let page = history(&*store, room, Cursor::Latest, 50).await;
        assert_eq!(page, HistoryPage::default(), "{room:?} latest");
        for cursor in [Cursor::Before(elsewhere.id), Cursor::After(elsewhere.id)] {
            assert_eq!(history_at(&*store, room, cursor, 50).await, None, "{room:?} {cursor:?}");
        }
    }
}

/// Pages are oldest first in seq order (the order the messages were stored, whatever their ids),
/// at most `limit` long, and `has_more` tells whether older messages exist. Pages longer than a
/// driver batch work too.
pub async fn history_is_oldest_first_and_limited<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "t", &[room]).await;
    let mut made: Vec<Message> =
        (0..150).map(|i| mk.message(if i % 5 == 4 { rid(2) } else { room }, "t", &format!("m{i}"), None)).collect();
    // Insert out of id order (as ids made on several nodes may be): the store orders by seq.
    let (evens, odds): (Vec<_>, Vec<_>) = made.drain(..).enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, m) in odds.into_iter().rev().chain(evens) {
        insert_new(&*store, &mut model, m).await;
    }
    let all = model.room(room);
    assert_eq!(all.len(), 120);
    assert_eq!(seqs(&all), (1..=120).collect::<Vec<_>>());
    assert_ne!(
        ids(&all),
        {
            let mut sorted = ids(&all);
            sorted.sort();
            sorted
        },
        "ids and seqs disagree"
    );
    for (n, more) in [(1, true), (10, true), (101, true), (119, true), (120, false), (121, false), (500, false)] {
        let page = history(&*store, room, Cursor::Latest, n).await;
        let want = &all[all.len().saturating_sub(n)..];
        assert_eq!(ids(&page.messages), ids(want), "latest {n}");
        assert_eq!(page.has_more, more, "latest {n}: has_more");
        assert_eq!(page.messages, want, "latest {n}: contents");
    }
}

/// Every cursor, at every limit, gives exactly the page [`HistoryQuery::select`] picks from all
/// of the room's messages in seq order, receipts included; a cursor that is not a message of the
/// room (of another room, or unknown) is reported as such.
pub async fn history_cursors_match_select<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    let (store, mk, mut model) = open(f, "t", &[room, other]).await;
    let before_all = mk.message(other, "t", "older than the room", None);
    insert_new(&*store, &mut model, before_all.clone()).await;
    for i in 0..24 {
        let (request, sender) = if i % 6 == 5 { (other, "t") } else { (room, if i % 2 == 0 { "t" } else { "lab-1" }) };
        insert_new(&*store, &mut model, mk.message(request, sender, &format!("m{i}"), None)).await;
    }
    let after_all = mk.message(other, "t", "newer than the room", None);
    insert_new(&*store, &mut model, after_all.clone()).await;
    let unknown = mk.message(room, "t", "never stored", None).id;
    let all = model.room(room);
    // Some receipts, so pages carry them.
    let some = [all[1].id, all[4].id, all[7].id];
    let at = mk.now();
    let marked = mark(&*store, room, "lab-2", ReceiptKind::Read, &some, at).await;
    assert_eq!(marked, model.mark(room, &uid("lab-2"), ReceiptKind::Read, &some, at));

    let mut pivots = vec![before_all.id, after_all.id, unknown];
    pivots.extend([0, 1, 2, 9, all.len() - 2, all.len() - 1].map(|i| all[i].id));
    let mut cursors = vec![Cursor::Latest];
    for p in pivots {
        cursors.extend([Cursor::Before(p), Cursor::After(p)]);
    }
    for cursor in cursors {
        for n in [1, 2, 3, 7, all.len() - 1, all.len(), all.len() + 1, 100] {
            let want = model.page(room, HistoryQuery { cursor, limit: limit(n) });
            let got = history_at(&*store, room, cursor, n).await;
            assert_eq!(got, want, "{cursor:?} limit {n}");
        }
    }
}

/// Inserting again with the same idempotency key stores nothing and returns the original, with
/// its receipts as they are now.
pub async fn idempotent_insert_returns_the_original_with_receipts<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "t", &[room]).await;
    let original = mk.message(room, "t", "hello", Some("c-1"));
    insert_new(&*store, &mut model, original.clone()).await;
    let at = mk.now();
    mark(&*store, room, "lab-1", ReceiptKind::Read, &[original.id], at).await;
    model.mark(room, &uid("lab-1"), ReceiptKind::Read, &[original.id], at);
    let expected = model.room(room).remove(0);
    assert_eq!(expected.read_by().len(), 1);
    assert_eq!(expected.seq, Some(Seq::FIRST));

    let retry = mk.message(room, "t", "hello (sent again)", Some("c-1"));
    let got = store.insert_message(&retry).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got, Inserted::Duplicate(expected.clone()));
    // Once more, for a retry of the retry.
    let got = store.insert_message(&retry).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got, Inserted::Duplicate(expected));
    assert_room_matches(&*store, &model, room, "after retries").await;

    // Messages without a client id are never deduplicated.
    for text in ["same", "same"] {
        insert_new(&*store, &mut model, mk.message(room, "t", text, None)).await;
    }
    assert_room_matches(&*store, &model, room, "after plain messages").await;
}

/// The idempotency key is (room, sender, client id): the same client id from another sender, or
/// in another room, is a new message.
pub async fn same_client_id_from_another_sender_or_room_is_a_new_message<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    let (store, mk, mut model) = open(f, "t", &[room, other]).await;
    insert_new(&*store, &mut model, mk.message(room, "t", "a", Some("c-1"))).await;
    insert_new(&*store, &mut model, mk.message(room, "lab-1", "b", Some("c-1"))).await;
    insert_new(&*store, &mut model, mk.message(other, "t", "c", Some("c-1"))).await;
    insert_new(&*store, &mut model, mk.message(room, "t", "d", Some("c-2"))).await;
    // Keys that would collide if the parts were simply joined with a separator.
    insert_new(&*store, &mut model, mk.message(room, "t:x", "e", Some("y"))).await;
    insert_new(&*store, &mut model, mk.message(room, "t", "f", Some("x:y"))).await;
    assert_room_matches(&*store, &model, room, "room").await;
    assert_room_matches(&*store, &model, other, "other room").await;
}

/// Concurrent sends with one idempotency key store exactly one message: one call gets
/// [`Inserted::New`] with seq 1, every other one the same original.
pub async fn concurrent_idempotent_inserts_store_one_message<F: StoreFixture>(f: &F) {
    let store = f.store();
    let mk = Gen::new();
    let room = rid(1);
    f.add_request(room, Creator::Text("t".into())).await;
    let attempts: Vec<Message> = (0..10).map(|i| mk.message(room, "t", &format!("try {i}"), Some("same"))).collect();
    let results = join_all(attempts.iter().map(|m| store.insert_message(m))).await;
    let mut winner = None;
    let mut originals = Vec::new();
    for (m, r) in attempts.iter().zip(results) {
        match r.unwrap_or_else(|e| panic!("{e:?}")) {
            Inserted::New(n) => {
                assert!(winner.is_none(), "two inserts with one key were both new");
                assert_eq!(n, Seq::FIRST, "the room's first message");
                winner = Some(m.clone().with_seq(n));
            }
            Inserted::Duplicate(original) => originals.push(original),
        }
    }
    let winner = winner.unwrap_or_else(|| panic!("no insert was new"));
    assert_eq!(originals.len(), 9);
    assert!(originals.iter().all(|o| o == &winner), "every duplicate returns the one original");
    let page = history(&*store, room, Cursor::Latest, 100).await;
    assert_eq!(page.messages, vec![winner]);
}

/// Marking touches exactly the messages of the request not sent by the user, reports exactly
/// what was newly marked in the order asked, and never marks twice.
pub async fn receipts_are_exact<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    let (store, mk, mut model) = open(f, "t", &[room, other]).await;
    let a: Vec<Message> = (0..4).map(|i| mk.message(room, "t", &format!("a{i}"), None)).collect();
    let own = mk.message(room, "lab-1", "mine", None);
    let elsewhere = mk.message(other, "t", "other room", None);
    for m in a.iter().chain([&own, &elsewhere]) {
        insert_new(&*store, &mut model, m.clone()).await;
    }
    let other_before = history(&*store, other, Cursor::Latest, 100).await;
    let unknown = mk.message(room, "t", "never stored", None).id;
    let lab = uid("lab-1");

    let steps: Vec<(ReceiptKind, Vec<MessageId>, Marked)> = vec![
        // Deliver two of them, with ids the user may not mark mixed in.
        (
            ReceiptKind::Delivered,
            vec![a[2].id, own.id, elsewhere.id, unknown, a[0].id],
            Marked { delivered: vec![a[2].id, a[0].id], read: vec![] },
        ),
        // Again: nothing new.
        (ReceiptKind::Delivered, vec![a[2].id, a[0].id], Marked::default()),
        // Read, in an order that is not the id order: reads all, delivers the undelivered ones.
        (
            ReceiptKind::Read,
            vec![a[3].id, a[0].id, elsewhere.id, a[2].id, a[1].id, own.id],
            Marked { delivered: vec![a[3].id, a[1].id], read: vec![a[3].id, a[0].id, a[2].id, a[1].id] },
        ),
        // Read and deliver again: nothing new.
        (ReceiptKind::Read, vec![a[0].id, a[1].id, a[2].id, a[3].id], Marked::default()),
        (ReceiptKind::Delivered, vec![a[1].id, a[3].id], Marked::default()),
        // Nothing asked, nothing marked.
        (ReceiptKind::Read, vec![], Marked::default()),
    ];
    for (i, (kind, asked, want)) in steps.into_iter().enumerate() {
        let at = mk.now();
        let got = mark(&*store, room, lab.as_str(), kind, &asked, at).await;
        assert_eq!(got, want, "step {i}: {kind:?}");
        assert_eq!(model.mark(room, &lab, kind, &asked, at), want, "step {i}: the model agrees");
        assert_room_matches(&*store, &model, room, &format!("after step {i}")).await;
    }
    // The other request's message was never touched through this request.
    assert_eq!(history(&*store, other, Cursor::Latest, 100).await, other_before, "the other room is untouched");
    let page = history(&*store, room, Cursor::Latest, 100).await;
    let mine = page.messages.iter().find(|m| m.id == own.id).unwrap_or_else(|| panic!("own message missing"));
    assert!(mine.delivered_to().is_empty() && mine.read_by().is_empty(), "the sender's own message has no receipts");
    // Through its own request it can be marked; ids of this request are then ignored.
    let at = mk.now();
    let got = mark(&*store, other, "lab-1", ReceiptKind::Delivered, &[elsewhere.id, a[0].id], at).await;
    assert_eq!(got, Marked { delivered: vec![elsewhere.id], read: vec![] });
    model.mark(other, &lab, ReceiptKind::Delivered, &[elsewhere.id, a[0].id], at);
    assert_room_matches(&*store, &model, other, "other room after its own mark").await;
    assert_room_matches(&*store, &model, room, "room after the other room's mark").await;
}

/// Marking as read marks as delivered too, at the same time.
pub async fn read_implies_delivered<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "t", &[room]).await;
    let m = mk.message(room, "t", "read me", None);
    insert_new(&*store, &mut model, m.clone()).await;
    let at = mk.now();
    let got = mark(&*store, room, "lab-1", ReceiptKind::Read, &[m.id], at).await;
    assert_eq!(got, Marked { delivered: vec![m.id], read: vec![m.id] });
    let page = history(&*store, room, Cursor::Latest, 10).await;
    let receipt = [Receipt { user: uid("lab-1"), at }];
    assert_eq!((page.messages[0].delivered_to(), page.messages[0].read_by()), (&receipt[..], &receipt[..]));
}

/// Receipts appear in history with who and when, per user, oldest first.
pub async fn receipts_show_in_history_with_user_and_time<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "creator", &[room]).await;
    let m1 = mk.message(room, "creator", "one", None);
    let m2 = mk.message(room, "lab-9", "two", None);
    insert_new(&*store, &mut model, m1.clone()).await;
    insert_new(&*store, &mut model, m2.clone()).await;
    let t = |ms: i64| Timestamp::from_unix_millis(BASE_MILLIS + 1_000_000 + ms);
    let plan = [
        ("lab-9", ReceiptKind::Delivered, vec![m1.id, m2.id], t(10)),
        ("lab-1", ReceiptKind::Delivered, vec![m1.id, m2.id], t(20)),
        ("creator", ReceiptKind::Read, vec![m2.id], t(30)),
        ("lab-1", ReceiptKind::Read, vec![m1.id], t(40)),
    ];
    for (user, kind, asked, at) in plan {
        mark(&*store, room, user, kind, &asked, at).await;
        model.mark(room, &uid(user), kind, &asked, at);
    }
    let page = history(&*store, room, Cursor::Latest, 10).await;
    let r = |user: &str, at| Receipt { user: uid(user), at };
    assert_eq!(page.messages[0].delivered_to(), vec![r("lab-9", t(10)), r("lab-1", t(20))]);
    assert_eq!(page.messages[0].read_by(), vec![r("lab-1", t(40))]);
    assert_eq!(page.messages[1].delivered_to(), vec![r("lab-1", t(20)), r("creator", t(30))]);
    assert_eq!(page.messages[1].read_by(), vec![r("creator", t(30))]);
    assert_room_matches(&*store, &model, room, "after marks").await;
}

/// Concurrent identical marks mark each receipt once: across all results, every id is reported
/// newly marked exactly once per kind.
pub async fn concurrent_marks_mark_once<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "t", &[room]).await;
    let msgs: Vec<Message> = (0..6).map(|i| mk.message(room, "t", &format!("m{i}"), None)).collect();
    for m in &msgs {
        insert_new(&*store, &mut model, m.clone()).await;
    }
    let asked = ids(&msgs);
    let at = mk.now();
    let user = uid("lab-1");
    let results = join_all((0..6).map(|i| {
        let kind = if i % 2 == 0 { ReceiptKind::Read } else { ReceiptKind::Delivered };
        store.mark(room, &user, kind, &asked, at)
    }))
    .await;
    let (mut delivered, mut read) = (Vec::new(), Vec::new());
    for r in results {
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        delivered.extend(r.delivered);
        read.extend(r.read);
    }
    delivered.sort();
    read.sort();
    assert_eq!(delivered, asked, "each message newly delivered exactly once");
    assert_eq!(read, asked, "each message newly read exactly once");
    model.mark(room, &user, ReceiptKind::Read, &asked, at);
    assert_room_matches(&*store, &model, room, "after concurrent marks").await;
}

/// The store answers a ping.
pub async fn ping_answers<F: StoreFixture>(f: &F) {
    f.store().ping().await.unwrap_or_else(|e| panic!("{e:?}"));
}
