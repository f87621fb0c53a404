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
    Cursor, HistoryLimit, HistoryQuery, Message, MessageId, MessageText, ReceiptKind, Role, Timestamp, UserId,
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
    Message {
        id: MessageId::parse("6751b6df1ad14eaa13a03313").unwrap(),
        request_id: rid(1),
        seq: None,
        sender_id: UserId::parse("t").unwrap(),
        sender_role: Role::Teacher,
        text: MessageText::parse("hello", 100).unwrap(),
        created_at: Timestamp::from_unix_millis(1),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
    }
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
    let stored = Message { seq: Some(labchat_domain::Seq::FIRST), ..m };
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
    let creator = |r: Option<labchat_domain::Request>| r.unwrap().created_by().as_str().to_owned();
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
        Message {
            id: ids.next(now),
            request_id: room,
            seq: None,
            sender_id: UserId::parse(sender).unwrap(),
            sender_role: if sender.starts_with("lab") { Role::Lab } else { Role::Teacher },
            text: MessageText::parse(text, 4000).unwrap(),
            created_at: now,
            client_message_id: client.map(|c| ClientMessageId::parse(c).unwrap()),
            delivered_to: vec![],
            read_by: vec![],
        }
    };

    // 1. Originals, all at once: 10 rooms x 10 messages, with client message ids.
    let originals: Vec<Message> =
        (0..100).map(|i| message(rooms[i % 10], "t", format!("original {i}"), Some(format!("c-{i}")))).collect();
    let results = join_all(originals.iter().map(|m| store.insert_message(m))).await;
    let mut originals = originals;
    for (m, r) in originals.iter_mut().zip(results) {
        match r.unwrap() {
            Inserted::New(n) => m.seq = Some(n),
            other => panic!("{}: {other:?}", m.text.as_str()),
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
            message(o.request_id, "t", format!("repeat of {}", o.text.as_str()), client)
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
        if m.id == taken.id && m.text == taken.text {
            assert!(matches!(r, Err(StoreError::Internal { .. })), "a taken id fails alone: {r:?}");
        } else if let Some(i) = repeats.iter().position(|x| x.id == m.id) {
            let original = originals.iter().step_by(7).nth(i).unwrap();
            assert_eq!(r.unwrap(), Inserted::Duplicate(original.clone()), "{}", m.text.as_str());
        } else {
            match r.unwrap() {
                Inserted::New(n) => stored_new.push(Message { seq: Some(n), ..(*m).clone() }),
                other => panic!("{}: {other:?}", m.text.as_str()),
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
