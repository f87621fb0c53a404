//! The `ChatStore` contract, run against every store: each check of
//! `labchat_tests::contract` once on `labchat_memory::MemoryStore` and twice on `MongoStore` over the
//! test MongoDB (a fresh database per test, so they run in parallel): with message inserts
//! batched (the default) and with one insert per message. Plus the MongoDB store's
//! own failure behaviour: an unreachable or silent server gives `StoreError::Unavailable` in
//! bounded time.
//!
//! The MongoDB tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`. Without it
//! they fail, saying so.

// A test file: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use labchat_core::{ChatStore, StoreError};
use labchat_domain::{
    Cursor, HistoryLimit, HistoryQuery, Message, MessageId, MessageRecord, MessageText, ReceiptKind, Role, Timestamp,
    UserId,
};
use labchat_store_mongo::{MongoSettings, MongoStore};
use labchat_tests::contract::{self, MemoryFixture, rid};
use labchat_tests::mongo::{self, MongoFixture, TcpProxy};

macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod on_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    contract::$check(&MemoryFixture::new()).await;
                }
            )*
        }

        mod on_mongodb {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fixture = MongoFixture::new(stringify!($check)).await;
                    contract::$check(&fixture).await;
                }
            )*
        }

        /// The same on MongoDB with one insert per message (no group commit).
        mod on_mongodb_unbatched {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let name = concat!("unbatched_", stringify!($check));
                    let fixture = MongoFixture::with(name, |s| s.batch_inserts = false).await;
                    contract::$check(&fixture).await;
                }
            )*
        }
    };
}

labchat_tests::for_each_contract_check!(contract_tests);

const SHORT: Duration = Duration::from_millis(500);

fn assert_unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>, started: Instant) {
    let elapsed = started.elapsed();
    match r {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("{what}: expected StoreError::Unavailable, got {other:?}"),
    }
    assert!(elapsed < mongo::generous_bound(SHORT), "{what}: took {elapsed:?}");
}

fn sample_message() -> Message {
    message_at("6751b6df1ad14eaa13a03313", 1)
}

/// A message of teacher `t` in room 1 with the id `id`, created at `at` ms.
fn message_at(id: &str, at: i64) -> Message {
    Message::restore(MessageRecord {
        id: MessageId::parse(id).unwrap(),
        request_id: rid(1),
        seq: None,
        sender_id: UserId::parse("t").unwrap(),
        sender_role: Role::Teacher,
        text: Some(MessageText::parse("hello", 100).unwrap()),
        created_at: Timestamp::from_unix_millis(at),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_connect_to_a_closed_port_is_unavailable_in_bounded_time() {
    let port = mongo::closed_port().await;
    let settings =
        MongoSettings { uri: format!("mongodb://127.0.0.1:{port}"), op_timeout: SHORT, ..MongoSettings::default() };
    let started = Instant::now();
    let r = MongoStore::connect(settings).await;
    assert_unavailable("connect", r, started);
}

/// A store whose server stops answering (connections stay open, nothing comes back) fails
/// every operation with `Unavailable` within about the operation timeout, and so does one whose
/// server is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_silent_or_gone_server_is_unavailable_in_bounded_time() {
    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let settings = MongoSettings {
        uri: format!("mongodb://{}/?directConnection=true", proxy.addr()),
        op_timeout: SHORT,
        ..mongo::test_settings("silent_server")
    };
    let store = MongoStore::connect(settings).await.unwrap();
    store.ping().await.unwrap();
    proxy.freeze();
    every_operation_is_unavailable(&store, "silent server").await;
    // Close the proxy and every connection through it: the server is gone.
    drop(proxy);
    every_operation_is_unavailable(&store, "gone server").await;
}

/// A store behind a [`TcpProxy`] (operation timeout [`SHORT`]), with room 1 of teacher `t`
/// holding [`sample_message`], stored and counted.
async fn one_message_behind_a_proxy(name: &str) -> (TcpProxy, MongoFixture, std::sync::Arc<dyn ChatStore>) {
    use labchat_core::Inserted;
    use labchat_tests::contract::Creator;

    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let fixture = MongoFixture::with(name, |s| {
        s.uri = format!("mongodb://{}/?directConnection=true", proxy.addr());
        s.op_timeout = SHORT;
    })
    .await;
    contract::StoreFixture::add_request(&fixture, rid(1), Creator::Text("t".into())).await;
    let store = contract::StoreFixture::store(&fixture);
    let m = sample_message();
    let Inserted::New(seq) = store.insert_message(&m).await.unwrap() else { panic!("the message is new") };
    store.count_posted(&m, seq).await.unwrap();
    (proxy, fixture, store)
}

/// The coalesced reads (a request, an unread count, a history cursor) fail together while the
/// server is silent, each caller within the bound, and after the server is back and nothing
/// has happened since, the first read of each kind is answered, right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_coalesced_reads_after_a_quiet_heal_answer_the_first_caller() {
    use futures_util::future::join_all;

    let (proxy, _fixture, store) = one_message_behind_a_proxy("coalesced_quiet_heal").await;
    let m = sample_message();
    let lab = UserId::parse("lab-1").unwrap();
    let before = HistoryQuery { cursor: Cursor::Before(m.id), limit: HistoryLimit::DEFAULT };

    proxy.freeze();
    // Many at once, so that they share reads, and every one fails in bounded time.
    let started = Instant::now();
    let requests = join_all((0..20).map(|_| store.find_request(rid(1)))).await;
    let counts = join_all((0..20).map(|_| store.unread_count(rid(1), &lab))).await;
    let pages = join_all((0..20).map(|_| store.history(rid(1), before))).await;
    let took = started.elapsed();
    for r in requests {
        assert!(r.as_ref().is_err_and(StoreError::is_retryable), "{r:?}");
    }
    for r in counts {
        assert!(r.as_ref().is_err_and(StoreError::is_retryable), "{r:?}");
    }
    for r in pages {
        assert!(r.as_ref().is_err_and(StoreError::is_retryable), "{r:?}");
    }
    assert!(took < 3 * mongo::generous_bound(2 * SHORT), "three rounds of failures took {took:?}");

    // Back, and quiet for a while: nothing is asked until the first read of each kind.
    proxy.restore();
    tokio::time::sleep(4 * SHORT).await;
    let found =
        store.find_request(rid(1)).await.unwrap().unwrap_or_else(|| panic!("the request, not found after the heal"));
    assert_eq!(found.created_by().map(UserId::as_str), Some("t"));
    assert_eq!(store.unread_count(rid(1), &lab).await.unwrap(), 1, "the first count after the heal");
    let page =
        store.history(rid(1), before).await.unwrap().unwrap_or_else(|| panic!("the cursor, not found after the heal"));
    assert!(page.messages.is_empty(), "nothing before the room's first message: {page:?}");
}

/// Counts after posts (written together) fail while the server is silent, each caller within
/// the bound, and none is written; after the server is back and nothing has happened since, the
/// first count is answered and counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_counts_after_a_quiet_heal_answer_the_first_caller() {
    use futures_util::future::join_all;
    use labchat_core::Inserted;
    use mongodb::bson::{Document, doc};

    let (proxy, fixture, store) = one_message_behind_a_proxy("counts_quiet_heal").await;
    let second = message_at("6751b6df1ad14eaa13a03314", 2);
    let Inserted::New(s2) = store.insert_message(&second).await.unwrap() else { panic!("the second is new") };
    let lab = UserId::parse("lab-1").unwrap();

    proxy.freeze();
    let started = Instant::now();
    for r in join_all((0..5).map(|_| store.count_posted(&second, s2))).await {
        assert!(r.as_ref().is_err_and(StoreError::is_retryable), "{r:?}");
    }
    assert!(started.elapsed() < 2 * mongo::generous_bound(SHORT), "took {:?}", started.elapsed());

    proxy.restore();
    tokio::time::sleep(4 * SHORT).await;
    assert_eq!(store.unread_count(rid(1), &lab).await.unwrap(), 1, "nothing counted while silent");
    store.count_posted(&second, s2).await.unwrap_or_else(|e| panic!("the first count after the heal: {e:?}"));
    assert_eq!(store.unread_count(rid(1), &lab).await.unwrap(), 2, "the room's summary at the second message");
    let seen = fixture.database().collection::<Document>(labchat_store_mongo::SEEN_COLLECTION);
    let key = format!("{}:t", rid(1).to_hex());
    let counter = seen.find_one(doc! {"_id": &key}).await.unwrap().unwrap_or_else(|| panic!("no counter {key}"));
    assert_eq!(
        counter.get_i64("seen").or_else(|_| counter.get_i32("seen").map(i64::from)),
        Ok(2),
        "t's two posts, once each"
    );
}

async fn every_operation_is_unavailable(store: &MongoStore, phase: &str) {
    let m = sample_message();
    let query = HistoryQuery { cursor: Cursor::Latest, limit: HistoryLimit::DEFAULT };
    let user = UserId::parse("lab-1").unwrap();
    let started = Instant::now();
    assert_unavailable(&format!("{phase}: ping"), store.ping().await, started);
    let started = Instant::now();
    assert_unavailable(&format!("{phase}: find_request"), store.find_request(rid(1)).await, started);
    let started = Instant::now();
    assert_unavailable(&format!("{phase}: insert_message"), store.insert_message(&m).await, started);
    let started = Instant::now();
    assert_unavailable(&format!("{phase}: history"), store.history(rid(1), query).await, started);
    let started = Instant::now();
    let r = store.mark(rid(1), &user, ReceiptKind::Read, &[m.id], Timestamp::from_unix_millis(2)).await;
    assert_unavailable(&format!("{phase}: mark"), r, started);
}

/// Reconnecting to a database that already has labchat's indexes works (index creation is
/// idempotent), and sees the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_connecting_twice_to_one_database_is_fine() {
    let settings = mongo::test_settings("connect_twice");
    let first = MongoStore::connect(settings.clone()).await.unwrap();
    let m = sample_message();
    first.insert_message(&m).await.unwrap();
    let second = MongoStore::connect(settings).await.unwrap();
    let page = second.history(rid(1), HistoryQuery { cursor: Cursor::Latest, limit: HistoryLimit::DEFAULT }).await;
    let stored = m.with_seq(labchat_domain::Seq::FIRST);
    assert_eq!(page.unwrap().unwrap().messages, vec![stored]);
}

/// The creator field is configurable, and a dotted path reaches into a sub-document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_creator_field_may_be_a_dotted_path() {
    use mongodb::bson::{doc, oid::ObjectId};
    let settings = MongoSettings {
        requests_collection: "labRequests".into(),
        creator_field: "owner.id".into(),
        ..mongo::test_settings("dotted_creator")
    };
    let store = MongoStore::connect(settings.clone()).await.unwrap();
    let db = mongodb::Client::with_uri_str(&settings.uri).await.unwrap().database(&settings.database);
    let teacher = ObjectId::parse_str("6751b6df1ad14eaa13a033ff").unwrap();
    let requests = db.collection::<mongodb::bson::Document>("labRequests");
    requests
        .insert_one(doc! {"_id": ObjectId::from_bytes(rid(1).object_id().bytes()), "owner": {"id": teacher}})
        .await
        .unwrap();
    requests
        .insert_one(doc! {"_id": ObjectId::from_bytes(rid(2).object_id().bytes()), "owner": {"id": "t-2"}})
        .await
        .unwrap();
    let creator = |r: Option<labchat_domain::Request>| r.unwrap().created_by().unwrap().as_str().to_owned();
    assert_eq!(creator(store.find_request(rid(1)).await.unwrap()), "6751b6df1ad14eaa13a033ff");
    assert_eq!(creator(store.find_request(rid(2)).await.unwrap()), "t-2");
}

/// With group commit, many concurrent inserts share batches, and each caller gets its own
/// answer: new messages are stored, repeats of stored client message ids get their original, and
/// a message whose id is already taken fails alone (`Internal`) without failing its batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_batched_inserts_answer_each_caller_alone() {
    use futures_util::future::join_all;
    use labchat_core::{Inserted, MessageIdGenerator};
    use labchat_domain::{ClientMessageId, RequestId};
    use labchat_tests::contract::{Creator, StoreFixture};

    let fixture = MongoFixture::new("batched_each_caller").await;
    assert!(fixture.settings().batch_inserts, "batching is on by default");
    let store = fixture.store();
    let rooms: Vec<RequestId> = (1..=10).map(rid).collect();
    for r in &rooms {
        fixture.add_request(*r, Creator::Text("t".into())).await;
    }
    let ids = MessageIdGenerator::new();
    let mut clock = 1_733_000_000_000_i64;
    let mut message = |room: RequestId, sender: &str, text: String, client: Option<String>| {
        clock += 1;
        let now = Timestamp::from_unix_millis(clock);
        Message::restore(MessageRecord {
            id: ids.next(now),
            request_id: room,
            seq: None,
            sender_id: UserId::parse(sender).unwrap(),
            sender_role: if sender.starts_with("lab") { Role::Lab } else { Role::Teacher },
            text: Some(MessageText::parse(text, 4000).unwrap()),
            created_at: now,
            client_message_id: client.map(|c| ClientMessageId::parse(c).unwrap()),
            delivered_to: vec![],
            read_by: vec![],
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        })
        .unwrap()
    };

    // 1. Originals, all at once: 10 rooms x 10 messages, with client message ids.
    let originals: Vec<Message> =
        (0..100).map(|i| message(rooms[i % 10], "t", format!("original {i}"), Some(format!("c-{i}")))).collect();
    let results = join_all(originals.iter().map(|m| store.insert_message(m))).await;
    let mut originals = originals;
    for (m, r) in originals.iter_mut().zip(results) {
        match r.unwrap() {
            Inserted::New(n) => m.seq = Some(n),
            other => panic!("{}: {other:?}", m.text().map(MessageText::as_str).unwrap_or_default()),
        }
    }

    // 2. All at once again: new messages, repeats of originals (new ids, same client ids) and
    // one message reusing an original's id.
    let new: Vec<Message> = (0..100).map(|i| message(rooms[i % 10], "lab-1", format!("new {i}"), None)).collect();
    let repeats: Vec<Message> = originals
        .iter()
        .step_by(7)
        .map(|o| {
            let client = o.client_message_id.as_ref().map(|c| c.as_str().to_owned());
            message(
                o.request_id,
                "t",
                format!("repeat of {}", o.text().map(MessageText::as_str).unwrap_or_default()),
                client,
            )
        })
        .collect();
    let mut taken = message(rooms[0], "t", "reuses an id".into(), None);
    taken.id = originals[3].id;
    let mut all: Vec<&Message> = Vec::new();
    for i in 0..new.len().max(repeats.len()) {
        all.extend(new.get(i));
        all.extend(repeats.get(i));
        if i == 5 {
            all.push(&taken);
        }
    }
    let results = join_all(all.iter().map(|m| store.insert_message(m))).await;
    let mut stored_new = Vec::new();
    for (m, r) in all.iter().zip(results) {
        if m.id == taken.id && m.text() == taken.text() {
            assert!(matches!(r, Err(StoreError::Internal { .. })), "a taken id fails alone: {r:?}");
        } else if let Some(i) = repeats.iter().position(|x| x.id == m.id) {
            let original = originals.iter().step_by(7).nth(i).unwrap();
            assert_eq!(
                r.unwrap(),
                Inserted::Duplicate(original.clone()),
                "{}",
                m.text().map(MessageText::as_str).unwrap_or_default()
            );
        } else {
            match r.unwrap() {
                Inserted::New(n) => stored_new.push((*m).clone().with_seq(n)),
                other => panic!("{}: {other:?}", m.text().map(MessageText::as_str).unwrap_or_default()),
            }
        }
    }

    // Every room holds exactly its originals (seqs 1..=10, as the originals came first) and new
    // messages (11..=20), in seq order, each with the seq its insert returned.
    let query = HistoryQuery { cursor: Cursor::Latest, limit: HistoryLimit::DEFAULT };
    for r in &rooms {
        let mut want: Vec<Message> =
            originals.iter().chain(&stored_new).filter(|m| m.request_id == *r).cloned().collect();
        want.sort_by_key(|m| m.seq);
        let page = store.history(*r, query).await.unwrap().unwrap();
        assert_eq!(page.messages, want, "room {r}");
        let got: Vec<u64> = page.messages.iter().filter_map(|m| m.seq).map(|s| s.get()).collect();
        assert_eq!(got, (1..=20).collect::<Vec<_>>(), "room {r}: seqs");
    }
}

/// Messages for the seq tests below: increasing ids and times, from "t".
struct Posts {
    ids: labchat_core::MessageIdGenerator,
    clock: std::sync::atomic::AtomicI64,
}

impl Posts {
    fn new() -> Self {
        Self {
            ids: labchat_core::MessageIdGenerator::new(),
            clock: std::sync::atomic::AtomicI64::new(1_733_000_000_000),
        }
    }

    fn message(&self, room: labchat_domain::RequestId, text: &str, client: Option<&str>) -> Message {
        let now = Timestamp::from_unix_millis(self.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Message::restore(MessageRecord {
            id: self.ids.next(now),
            request_id: room,
            seq: None,
            sender_id: UserId::parse("t").unwrap(),
            sender_role: Role::Teacher,
            text: Some(MessageText::parse(text, 4000).unwrap()),
            created_at: now,
            client_message_id: client.map(|c| labchat_domain::ClientMessageId::parse(c).unwrap()),
            delivered_to: vec![],
            read_by: vec![],
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        })
        .unwrap()
    }
}

async fn new_seq(store: &MongoStore, m: &Message) -> u64 {
    match store.insert_message(m).await {
        Ok(labchat_core::Inserted::New(n)) => {
            store.count_posted(m, n).await.unwrap();
            n.get()
        }
        other => panic!("insert {}: {other:?}", m.text().map(MessageText::as_str).unwrap_or_default()),
    }
}

async fn whole_room(store: &MongoStore, room: labchat_domain::RequestId) -> Vec<Message> {
    let limit = HistoryLimit::new(HistoryLimit::MAX).unwrap();
    let page = store.history(room, HistoryQuery { cursor: Cursor::Latest, limit }).await.unwrap().unwrap();
    assert!(!page.has_more);
    page.messages
}

/// A store whose idea of a room's next seq is stale (another store on the same database posted
/// in between) still gives its message the next free seq, batched or not: the unique seq index
/// refuses the taken seq, and the store reloads the room's highest seq and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_store_behind_another_takes_the_next_free_seq() {
    for batched in [true, false] {
        let fixture = MongoFixture::with(&format!("stale_seq_{batched}"), |s| s.batch_inserts = batched).await;
        let a = MongoStore::connect(fixture.settings().clone()).await.unwrap();
        let b = MongoStore::connect(fixture.settings().clone()).await.unwrap();
        let posts = Posts::new();
        let room = rid(1);
        let sent: Vec<Message> = (1..=6).map(|i| posts.message(room, &format!("m{i}"), None)).collect();
        // a, b, a, b, a, b: every insert after the first two finds its store one seq behind.
        for (i, m) in sent.iter().enumerate() {
            let store = if i % 2 == 0 { &a } else { &b };
            let want = u64::try_from(i).unwrap() + 1;
            assert_eq!(
                new_seq(store, m).await,
                want,
                "batched {batched}: {}",
                m.text().map(MessageText::as_str).unwrap_or_default()
            );
        }
        for store in [&a, &b] {
            let got: Vec<(MessageId, Option<u64>)> =
                whole_room(store, room).await.iter().map(|m| (m.id, m.seq.map(|s| s.get()))).collect();
            let want: Vec<(MessageId, Option<u64>)> = sent.iter().zip(1..).map(|(m, n)| (m.id, Some(n))).collect();
            assert_eq!(got, want, "batched {batched}");
        }
    }
}

/// Three stores on one database (two batching, one not), each with four tasks of 25 sends, all
/// into one room at once: the seqs are 1..=300, each once, and history lists every message in
/// that order with the seq its insert returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_stores_on_one_database_share_one_dense_order() {
    use futures_util::future::join_all;
    const TASKS: usize = 4;
    const EACH: usize = 25;
    let fixture = MongoFixture::new("shared_order").await;
    let settings = fixture.settings().clone();
    let stores = [
        std::sync::Arc::new(MongoStore::connect(settings.clone()).await.unwrap()),
        std::sync::Arc::new(MongoStore::connect(settings.clone()).await.unwrap()),
        std::sync::Arc::new(MongoStore::connect(MongoSettings { batch_inserts: false, ..settings }).await.unwrap()),
    ];
    let posts = Posts::new();
    let room = rid(1);
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..TASKS {
            let messages: Vec<Message> =
                (0..EACH).map(|i| posts.message(room, &format!("store {s} task {t} message {i}"), None)).collect();
            let store = std::sync::Arc::clone(store);
            tasks.push(async move {
                let mut got = Vec::with_capacity(EACH);
                for m in messages {
                    got.push((m.id, new_seq(&store, &m).await));
                }
                got
            });
        }
    }
    let mut stored: Vec<(MessageId, u64)> = join_all(tasks).await.into_iter().flatten().collect();
    stored.sort_by_key(|(_, n)| *n);
    let total = u64::try_from(stores.len() * TASKS * EACH).unwrap();
    assert_eq!(stored.iter().map(|(_, n)| *n).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    for store in &stores {
        let listed: Vec<(MessageId, u64)> =
            whole_room(store, room).await.iter().map(|m| (m.id, m.seq.unwrap().get())).collect();
        assert_eq!(listed, stored, "history in seq order, with the seqs the inserts returned");
    }
}

/// Messages stored before seqs existed (no `seq` field) get seqs at start-up, per room, in their
/// old order: 1..=n, whatever order they were written in, also after a start-up that stopped
/// midway. New posts continue at n + 1, repeats of old sends still find their original, and
/// connecting again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_messages_stored_before_seqs_get_them_in_their_old_order() {
    use labchat_domain::RequestId;
    use mongodb::IndexModel;
    use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
    use mongodb::options::IndexOptions;

    let settings = mongo::test_settings("old_messages");
    let db = mongo::database(&settings).await;
    let messages = db.collection::<Document>(labchat_store_mongo::MESSAGES_COLLECTION);
    // The collection as an older labchat left it: its indexes, and documents without `seq`.
    let index = |keys: Document, name: &str, unique: bool| {
        let options = IndexOptions::builder().name(name.to_owned()).unique(unique.then_some(true)).build();
        IndexModel::builder().keys(keys).options(options).build()
    };
    messages
        .create_indexes([
            index(doc! {"requestId": 1, "order": -1}, "requestId_1_order_-1", false),
            index(doc! {"idem": 1}, "idem_1", true),
        ])
        .await
        .unwrap();
    let posts = Posts::new();
    let (room, other) = (rid(1), rid(2));
    let old: Vec<Message> = (0..8)
        .map(|i| {
            let r = if i % 3 == 2 { other } else { room };
            posts.message(r, &format!("old {i}"), (i == 3).then_some("c-old"))
        })
        .collect();
    let old_doc = |m: &Message| {
        let mut d = doc! {
            "_id": ObjectId::from_bytes(m.id.object_id().bytes()),
            "order": m.id.to_hex(),
            "requestId": m.request_id.to_hex(),
            "senderId": m.sender_id.as_str(),
            "senderRole": m.sender_role.as_str(),
            "text": m.text().map(MessageText::as_str).unwrap_or_default(),
            "createdAt": DateTime::from_millis(m.created_at.unix_millis()),
            "idem": m.id.to_hex(),
        };
        if let Some(c) = &m.client_message_id {
            d.insert("clientMessageId", c.as_str());
            d.insert("idem", format!("{}:1:t:{}", m.request_id.to_hex(), c.as_str()));
        }
        d
    };
    // Written newest first, so the order of writing is not the order of the room.
    messages.insert_many(old.iter().rev().map(old_doc)).await.unwrap();
    // A start-up that stopped midway had given the room's first message its seq already.
    let first = doc! {"_id": ObjectId::from_bytes(old[0].id.object_id().bytes())};
    messages.update_one(first, doc! {"$set": {"seq": 1_i64}}).await.unwrap();

    let expect = |r: RequestId| -> Vec<(MessageId, Option<u64>)> {
        old.iter().filter(|m| m.request_id == r).zip(1..).map(|(m, n)| (m.id, Some(n))).collect()
    };
    let listed = |page: Vec<Message>| -> Vec<(MessageId, Option<u64>)> {
        page.iter().map(|m| (m.id, m.seq.map(|s| s.get()))).collect()
    };
    let store = MongoStore::connect(settings.clone()).await.unwrap();
    for r in [room, other] {
        assert_eq!(listed(whole_room(&store, r).await), expect(r), "room {r}");
    }
    let without = messages.count_documents(doc! {"seq": {"$exists": false}}).await.unwrap();
    assert_eq!(without, 0, "every message has a seq");

    // New posts continue the room's order; a repeat of an old send finds its original.
    let in_room = u64::try_from(expect(room).len()).unwrap();
    assert_eq!(new_seq(&store, &posts.message(room, "new", None)).await, in_room + 1);
    match store.insert_message(&posts.message(room, "old 3, again", Some("c-old"))).await.unwrap() {
        labchat_core::Inserted::Duplicate(o) => assert_eq!((o.id, o.seq.map(|s| s.get())), (old[3].id, Some(3))),
        other => panic!("a repeat of an old send: {other:?}"),
    }

    // Connecting again (the migration runs again) changes nothing.
    let before = whole_room(&store, room).await;
    let again = MongoStore::connect(settings).await.unwrap();
    assert_eq!(whole_room(&again, room).await, before);
    let in_other = u64::try_from(expect(other).len()).unwrap();
    assert_eq!(new_seq(&again, &posts.message(other, "new elsewhere", None)).await, in_other + 1);
}

/// An insert that times out (the server went silent) leaves no hole: whatever it stored or not,
/// the room's seqs stay 1..=n once the server answers again, and the next post takes n + 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_timed_out_insert_leaves_no_hole() {
    for batched in [true, false] {
        let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
        let settings = MongoSettings {
            uri: format!("mongodb://{}/?directConnection=true", proxy.addr()),
            op_timeout: SHORT,
            batch_inserts: batched,
            ..mongo::test_settings(&format!("timeout_no_hole_{batched}"))
        };
        let store = MongoStore::connect(settings).await.unwrap();
        let posts = Posts::new();
        let room = rid(1);
        assert_eq!(new_seq(&store, &posts.message(room, "before", None)).await, 1);
        proxy.freeze();
        let lost = store.insert_message(&posts.message(room, "during", None)).await;
        assert!(matches!(lost, Err(StoreError::Unavailable { .. })), "batched {batched}: {lost:?}");
        proxy.restore();
        // The driver reconnects; a first call may still meet a connection closed by the restore.
        let mut after = None;
        for _ in 0..5 {
            match store.insert_message(&posts.message(room, "after", Some("after"))).await {
                Ok(labchat_core::Inserted::New(n)) => after = Some(n.get()),
                Ok(labchat_core::Inserted::Duplicate(o)) => after = o.seq.map(|s| s.get()),
                Err(e) => {
                    assert!(e.is_retryable(), "{e:?}");
                    continue;
                }
            }
            break;
        }
        let after = after.unwrap_or_else(|| panic!("batched {batched}: no insert succeeded after the restore"));
        let got: Vec<u64> = whole_room(&store, room).await.iter().map(|m| m.seq.unwrap().get()).collect();
        assert_eq!(got, (1..=after).collect::<Vec<_>>(), "batched {batched}: dense, the last post last");
    }
}

/// A batched insert whose time runs out while its batch is in flight is answered with what the
/// store did, not with a timeout: a message the store stores is never answered as failed (it
/// would sit in the room's history, with its seq, announced to no one). The store is slow (what
/// a node sends reaches it 1.4 s late, the operation timeout is 2 s): `a`'s batch takes 1.4 s,
/// `b` queues behind it and its own batch takes 1.4 s more, so `b` waits about 2.7 s in all,
/// past its 2 s, while each batch stays within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_batched_insert_in_flight_at_its_deadline_gets_its_batchs_answer() {
    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let op_timeout = Duration::from_secs(2);
    let settings = MongoSettings {
        uri: format!("mongodb://{}/?directConnection=true", proxy.addr()),
        op_timeout,
        batch_inserts: true,
        ..mongo::test_settings("in_flight_at_deadline")
    };
    let store = std::sync::Arc::new(MongoStore::connect(settings).await.unwrap());
    let posts = Posts::new();
    let (first, second) = (rid(1), rid(2));
    // Both rooms' last seqs known to the store (so an insert is one round trip), its pool warm.
    assert_eq!(new_seq(&store, &posts.message(first, "warm", None)).await, 1);
    assert_eq!(new_seq(&store, &posts.message(second, "warm", None)).await, 1);

    proxy.slow_down(Duration::from_millis(1400));
    let a = tokio::spawn({
        let (store, m) = (std::sync::Arc::clone(&store), posts.message(first, "a", None));
        async move { store.insert_message(&m).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = posts.message(second, "b", None);
    let started = Instant::now();
    let answer = store.insert_message(&b).await;
    let waited = started.elapsed();
    proxy.slow_down(Duration::ZERO);

    assert!(matches!(a.await.unwrap(), Ok(labchat_core::Inserted::New(s)) if s.get() == 2));
    // b's batch is stored, whatever b was answered (a batch in flight runs to its end).
    let deadline = Instant::now() + mongo::generous_bound(op_timeout);
    let stored = loop {
        let room: Vec<(MessageId, u64)> =
            whole_room(&store, second).await.iter().map(|m| (m.id, m.seq.unwrap().get())).collect();
        if room.iter().any(|(id, _)| *id == b.id) || Instant::now() > deadline {
            break room;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored.last(), Some(&(b.id, 2)), "b is stored, second in its room");
    match answer {
        Ok(labchat_core::Inserted::New(seq)) => assert_eq!(seq.get(), 2),
        other => panic!("b was stored, yet answered {other:?} after {waited:?}"),
    }
    assert!(waited > op_timeout, "b waited {waited:?}, within its own time: the case was not made");
}

/// A batch holding many repeats of earlier sends (as after a reconnect storm) answers every one
/// with its original and still stores its new messages, densely after the originals: refused
/// repeats are settled one by one and never count as lost seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_batch_of_many_repeats_still_stores_its_new_messages() {
    use futures_util::future::join_all;
    let fixture = MongoFixture::new("many_repeats").await;
    let store = MongoStore::connect(fixture.settings().clone()).await.unwrap();
    let posts = Posts::new();
    let room = rid(1);
    let originals: Vec<Message> =
        (0..100).map(|i| posts.message(room, &format!("original {i}"), Some(&format!("c-{i}")))).collect();
    for (m, n) in originals.iter().zip(1..) {
        assert_eq!(new_seq(&store, m).await, n);
    }
    let mut all: Vec<Message> =
        (0..100).map(|i| posts.message(room, &format!("repeat {i}"), Some(&format!("c-{i}")))).collect();
    all.extend((0..10).map(|i| posts.message(room, &format!("new {i}"), None)));
    let results = join_all(all.iter().map(|m| store.insert_message(m))).await;
    let mut new = Vec::new();
    for (i, (m, r)) in all.iter().zip(results).enumerate() {
        match r {
            Ok(labchat_core::Inserted::Duplicate(o)) if i < 100 => {
                assert_eq!((o.id, o.seq.map(|s| s.get())), (originals[i].id, u64::try_from(i + 1).ok()));
            }
            Ok(labchat_core::Inserted::New(n)) if i >= 100 => new.push(n.get()),
            other => panic!("{}: {other:?}", m.text().map(MessageText::as_str).unwrap_or_default()),
        }
    }
    new.sort_unstable();
    assert_eq!(new, (101..=110).collect::<Vec<_>>());
}

/// A TEACHER's inbox lists exactly the rooms the access rule (`Request::authorize`) lets her
/// act on, whatever the creator field holds: an array naming her (at the top level, inside a
/// dotted path's sub-document, or as an array of sub-documents) is no creator to the rule, so
/// it is no room of hers in the inbox either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_inbox_lists_exactly_the_rooms_the_access_rule_allows() {
    use labchat_domain::{InboxQuery, RequestId, User};
    use mongodb::bson::{Bson, Document, doc, oid::ObjectId};

    for field in ["createdBy", "owner.id"] {
        let settings = MongoSettings {
            creator_field: field.into(),
            ..mongo::test_settings(&format!("inbox_rule_{}", field.replace('.', "_")))
        };
        let store = MongoStore::connect(settings.clone()).await.unwrap();
        let db = mongo::database(&settings).await;
        let requests = db.collection::<Document>(&settings.requests_collection);
        let creators: Vec<Bson> = vec![
            Bson::String("teacher-2".into()),
            Bson::Array(vec![Bson::String("teacher-2".into())]),
            Bson::Array(vec![Bson::String("teacher-9".into()), Bson::String("teacher-2".into())]),
            Bson::String("teacher-9".into()),
        ];
        let posts = Posts::new();
        let mut rooms: Vec<RequestId> = Vec::new();
        for (i, creator) in creators.iter().enumerate() {
            let room = rid(100 + u32::try_from(i).unwrap());
            let value = match field {
                "createdBy" => doc! {"createdBy": creator.clone()},
                _ => doc! {"owner": {"id": creator.clone()}},
            };
            let mut request = doc! {"_id": ObjectId::from_bytes(room.object_id().bytes())};
            request.extend(value);
            requests.insert_one(request).await.unwrap();
            rooms.push(room);
        }
        if field == "owner.id" {
            // An array of sub-documents: the path reaches "teacher-2" only through the array.
            let room = rid(120);
            let id = ObjectId::from_bytes(room.object_id().bytes());
            requests.insert_one(doc! {"_id": id, "owner": [{"id": "teacher-2"}]}).await.unwrap();
            rooms.push(room);
        }
        for room in &rooms {
            new_seq(&store, &posts.message(*room, "hello", None)).await;
        }
        let teacher = User::new(UserId::parse("teacher-2").unwrap(), Role::Teacher);
        let mut allowed = Vec::new();
        for room in &rooms {
            let request = store.find_request(*room).await.unwrap().unwrap();
            if request.authorize(&teacher).is_ok() {
                allowed.push(*room);
            }
        }
        assert_eq!(allowed, vec![rooms[0]], "{field}: the rule allows the plain string creator alone");
        let page = store.inbox(&teacher, InboxQuery::default()).await.unwrap();
        let listed: Vec<RequestId> = page.rows.iter().map(|r| r.request_id()).collect();
        assert_eq!(listed, allowed, "{field}: the inbox lists exactly what the rule allows");
        assert_eq!(page.next, None);
    }
}

/// `first_unread` is a lookup by seq, not a scan from the room's start: the user's counter keeps
/// the seq up to which everything is read (moved by each answer, only over seqs without a hole),
/// and the next answer starts there. Shown by removing the read receipts of the messages below
/// that seq behind the store's back: a scan from the start would find them unread again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_first_unread_starts_from_the_seq_read_up_to() {
    use labchat_store_mongo::RECEIPTS_COLLECTION;
    use mongodb::bson::{Document, doc};

    let fixture = MongoFixture::new("first_unread_lookup").await;
    let room = rid(1);
    contract::StoreFixture::add_request(&fixture, room, contract::Creator::Text("t".into())).await;
    let store = contract::StoreFixture::store(&fixture);
    let posts = Posts::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = posts.message(room, &format!("m{i}"), None);
        let labchat_core::Inserted::New(seq) = store.insert_message(&m).await.unwrap() else { panic!("a duplicate") };
        store.count_posted(&m, seq).await.unwrap();
        ids.push(m.id);
    }
    let lab = UserId::parse("lab").unwrap();
    let at = Timestamp::from_unix_millis(1_733_000_100_000);
    let read = |n: std::ops::Range<usize>| {
        let (store, ids, lab) = (&store, &ids, &lab);
        async move {
            let marked = store.mark(room, lab, ReceiptKind::Read, &ids[n], at).await.unwrap();
            store.count_read(room, lab, u64::try_from(marked.read.len()).unwrap()).await.unwrap();
        }
    };
    // Read out of order: the second and third, not the first.
    read(1..3).await;
    assert_eq!(store.first_unread(room, &lab).await.unwrap(), Some(ids[0]));
    read(0..1).await;
    assert_eq!(store.first_unread(room, &lab).await.unwrap(), Some(ids[3]), "the first three are read");
    let receipts = fixture.database().collection::<Document>(RECEIPTS_COLLECTION);
    let removed = receipts.delete_many(doc! {"requestId": room.to_hex(), "kind": "read"}).await.unwrap();
    assert_eq!(removed.deleted_count, 3);
    assert_eq!(store.first_unread(room, &lab).await.unwrap(), Some(ids[3]), "looked up from seq 4, not scanned from 1");
    read(3..6).await;
    assert_eq!(store.first_unread(room, &lab).await.unwrap(), None, "everything after seq 3 is read");
    // The sender's own messages never were unread, and their lookup moves past them too.
    assert_eq!(store.first_unread(room, &UserId::parse("t").unwrap()).await.unwrap(), None);
}
