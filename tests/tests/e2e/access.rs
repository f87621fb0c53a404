//! Access that is re-checked, end to end on the MongoDB store: when a request is reassigned or
//! deleted in the lab system's collection, a teacher who had joined its room stops receiving it
//! (within the re-check interval, or at once when a frame of hers for it is refused) and is told
//! so; `leaveRoom` always stops delivery; and a request whose creator is malformed is for lab
//! staff only, with no error that would tell it apart from a forbidden one.
//!
//! These tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`. Without it they
//! fail, saying so. Each server uses a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat::app::{Settings, StoreSettings};
use labchat_core::ChatStore;
use labchat_domain::RequestId;
use labchat_store_mongo::MongoSettings;
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{TestServer, mongo_settings, new_request_id, settings, token};
use labchat_tests::mongo::{self, TcpProxy, fresh_mongo_store};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits to be sure that nothing more comes.
const QUIET: Duration = Duration::from_millis(400);
/// The re-check interval of servers that test the periodic re-check.
const SHORT: Duration = Duration::from_millis(300);
/// The message of the `error` frame that tells a client it was removed from a room.
const REMOVED: &str = "you may no longer access this request; you were removed from its room";

fn settings_with_recheck(name: &str, every: Duration) -> Settings {
    let mut s = mongo_settings(name);
    s.ws.access_recheck_interval = every;
    s
}

async fn connect(server: &TestServer, user: &str, role: &str) -> Client {
    Client::connect(&server.url(), &token(user, role)).await
}

fn oid(id: RequestId) -> ObjectId {
    ObjectId::from_bytes(id.object_id().bytes())
}

/// The lab system's requests collection of the server's database.
fn requests(server: &TestServer) -> mongodb::Collection<Document> {
    let m = server.mongo.as_ref().expect("a MongoDB server");
    m.db.collection(&m.settings.requests_collection)
}

/// A request created by `t1`, and `t1` connected and joined to its room.
async fn teacher_in_new_room(server: &TestServer) -> (RequestId, String, Client) {
    let id = server.add_request("t1").await;
    let rid = id.to_hex();
    let mut t1 = connect(server, "t1", "TEACHER").await;
    t1.join(&rid).await;
    (id, rid, t1)
}

async fn reassign(server: &TestServer, id: RequestId, to: &str) {
    let field = server.mongo.as_ref().unwrap().settings.creator_field.clone();
    let done = requests(server).update_one(doc! {"_id": oid(id)}, doc! {"$set": {field: to}}).await.unwrap();
    assert_eq!(done.matched_count, 1);
}

async fn delete(server: &TestServer, id: RequestId) {
    assert_eq!(requests(server).delete_one(doc! {"_id": oid(id)}).await.unwrap().deleted_count, 1);
}

/// Reads frames until the removal notice for `rid`, skipping room events sent before it;
/// checks the notice's fields.
async fn expect_removal(client: &mut Client, rid: &str) {
    loop {
        let f = client.try_recv(WAIT).await.unwrap_or_else(|| panic!("no removal notice within {WAIT:?}"));
        if f["event"] == "message" || f["event"] == "messagesDelivered" || f["event"] == "messageReads" {
            continue;
        }
        assert_eq!(f["event"], "error", "{f}");
        let d = &f["data"];
        assert_eq!(
            (d["code"].as_str(), d["requestId"].as_str(), d["message"].as_str(), &d["retryable"]),
            (Some("FORBIDDEN"), Some(rid), Some(REMOVED), &json!(false)),
            "{f}"
        );
        assert!(f.get("id").is_none() && d.get("event").is_none(), "no frame of the client caused it: {f}");
        return;
    }
}

/// The request is reassigned to another teacher: within the re-check interval the teacher who
/// had joined is told and receives nothing more from the room; lab staff keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_request_ends_the_teachers_live_delivery() {
    let server = TestServer::start_with(settings_with_recheck("access_reassigned", SHORT)).await;
    let (id, rid, mut t1) = teacher_in_new_room(&server).await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&rid).await;
    let before = lab.post(&rid, "before").await;
    assert_eq!(t1.expect("message").await, before);

    reassign(&server, id, "t2").await;
    expect_removal(&mut t1, &rid).await;
    assert_eq!(server.broadcaster.subscription_count(), 1, "only the lab's subscription is left");

    lab.post(&rid, "after").await;
    t1.expect_silence(QUIET).await;
    assert_eq!(t1.err("history", json!({"requestId": rid})).await["code"], "FORBIDDEN");
    // The new creator may join and hears the room.
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    t2.join(&rid).await;
    let later = lab.post(&rid, "later").await;
    assert_eq!(t2.expect("message").await, later);
    t1.expect_silence(QUIET).await;
    server.stop().await;
}

/// The request is deleted: everyone who had joined its room is told and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_request_ends_everyones_live_delivery() {
    let server = TestServer::start_with(settings_with_recheck("access_deleted", SHORT)).await;
    let (id, rid, mut t1) = teacher_in_new_room(&server).await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&rid).await;

    delete(&server, id).await;
    expect_removal(&mut t1, &rid).await;
    expect_removal(&mut lab, &rid).await;
    assert_eq!(server.broadcaster.subscription_count(), 0);
    assert_eq!(lab.err("message", json!({"requestId": rid, "message": "x"})).await["code"], "FORBIDDEN");
    t1.expect_silence(QUIET).await;
    // Both connections are still open and answer.
    assert_eq!(t1.err("joinRoom", json!({"requestId": rid})).await["code"], "FORBIDDEN");
    server.stop().await;
}

/// With the default (long) interval: a teacher who lost access may still leave the room, which
/// is acknowledged and stops delivery at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_after_losing_access_is_acknowledged_and_stops_delivery() {
    let server = TestServer::start_with(mongo_settings("access_leave")).await;
    let (id, rid, mut t1) = teacher_in_new_room(&server).await;

    reassign(&server, id, "t2").await;
    assert_eq!(t1.ok("leaveRoom", json!({"requestId": rid})).await, json!({"requestId": rid}));
    assert_eq!(server.broadcaster.subscription_count(), 0);
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    t2.post(&rid, "for t2's eyes").await;
    t1.expect_silence(QUIET).await;
    server.stop().await;
}

/// With the default (long) interval: a frame of the teacher's that is refused for a room she
/// joined ends that subscription at once, and she is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_ends_the_subscription_at_once() {
    let server = TestServer::start_with(mongo_settings("access_write")).await;
    let (id, rid, mut t1) = teacher_in_new_room(&server).await;

    reassign(&server, id, "t2").await;
    // The new creator is allowed at once (a refusal is always confirmed in the store).
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    t2.join(&rid).await;
    let e = t1.err("message", json!({"requestId": rid, "message": "still mine?"})).await;
    assert_eq!((e["code"].as_str(), e["event"].as_str()), (Some("FORBIDDEN"), Some("message")), "{e}");
    expect_removal(&mut t1, &rid).await;
    assert_eq!(server.broadcaster.subscription_count(), 1, "only t2's subscription is left");

    t2.post(&rid, "t2 only").await;
    t1.expect_silence(QUIET).await;
    server.stop().await;
}

/// `labchat_store_op_seconds_count{op="find_request",outcome="unavailable"}` in the server's
/// `/metrics`: request lookups that failed because the store was unavailable, process-wide (0
/// before the first). Store outages take turns in the process ([`TcpProxy`]): while this test's
/// proxy lives, no other test makes a store unavailable.
async fn failed_lookups(server: &TestServer) -> f64 {
    let exchange = async {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    let text = tokio::time::timeout(WAIT, exchange).await.expect("GET /metrics: no answer");
    assert!(text.starts_with("HTTP/1.1 200"), "GET /metrics: {text}");
    text.lines()
        .filter(|l| l.starts_with("labchat_store_op_seconds_count{"))
        .filter(|l| l.contains("op=\"find_request\"") && l.contains("outcome=\"unavailable\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The store goes silent while a teacher is in a room: a re-check runs during the outage (its
/// lookup of the request, no longer cached, fails in the store), and she stays in the room;
/// once the store is back she still receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_removes_nobody() {
    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let op_timeout = Duration::from_secs(1);
    let store = MongoSettings {
        uri: format!("mongodb://{}/?directConnection=true", proxy.addr()),
        op_timeout,
        ..mongo::test_settings("access_outage")
    };
    let mut s = Settings { store: StoreSettings::Mongo(store), ..settings() };
    s.ws.access_recheck_interval = SHORT;
    let server = TestServer::start_with(s).await;
    let (_, rid, mut t1) = teacher_in_new_room(&server).await;

    let before = failed_lookups(&server).await;
    proxy.freeze();
    // Nothing but a re-check looks the request up now: wait (bounded) until one has failed in
    // the store, i.e. the cached request expired and a re-check ran into the outage.
    let deadline = tokio::time::Instant::now() + SHORT * 2 + mongo::generous_bound(op_timeout);
    while failed_lookups(&server).await <= before {
        assert!(tokio::time::Instant::now() < deadline, "no access re-check ran into the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // That failed re-check removed nobody, and told nobody anything.
    t1.expect_silence(QUIET).await;
    assert_eq!(server.broadcaster.subscription_count(), 1, "still in the room during the outage");
    proxy.restore();
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    while server.get("/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the store is still not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.broadcaster.subscription_count(), 1, "still in the room");
    let mut lab = connect(&server, "lab-1", "LAB").await;
    let m = lab.post(&rid, "after the outage").await;
    // A re-check that failed during the outage may answer late; skip nothing but the message.
    assert_eq!(t1.expect("message").await, m);
    server.stop().await;
}

/// Creator fields that are null, missing (`None`), a number or empty.
fn malformed_creators() -> Vec<(&'static str, Option<Bson>)> {
    vec![("null", Some(Bson::Null)), ("missing", None), ("a number", Some(Bson::Int64(42))), ("empty", Some("".into()))]
}

async fn insert_malformed(coll: &mongodb::Collection<Document>, field: &str, id: RequestId, creator: Option<Bson>) {
    let mut d = doc! {"_id": oid(id), "title": "Microscopes for lab 3"};
    if let Some(c) = creator {
        d.insert(field, c);
    }
    coll.insert_one(d).await.unwrap();
}

/// Store level: such a request is found, with no creator (not an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_finds_a_request_with_a_malformed_creator_without_one() {
    let (store, db) = fresh_mongo_store("access_malformed_store").await;
    let settings = labchat_store_mongo::MongoSettings::default();
    let coll = db.collection::<Document>(&settings.requests_collection);
    for (what, creator) in malformed_creators() {
        let id = new_request_id();
        insert_malformed(&coll, &settings.creator_field, id, creator).await;
        let found = store.find_request(id).await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let found = found.unwrap_or_else(|| panic!("{what}: not found"));
        assert_eq!((found.id(), found.created_by()), (id, None), "{what}");
    }
}

/// End to end: a teacher is refused exactly as for a missing request; lab staff may join and
/// post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_malformed_creator_is_for_lab_staff_only() {
    let server = TestServer::start_with(mongo_settings("access_malformed")).await;
    let field = server.mongo.as_ref().unwrap().settings.creator_field.clone();
    let mut t1 = connect(&server, "t1", "TEACHER").await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    let missing = t1.err("joinRoom", json!({"requestId": new_request_id().to_hex()})).await;
    for (what, creator) in malformed_creators() {
        let id = new_request_id();
        insert_malformed(&requests(&server), &field, id, creator).await;
        let rid = id.to_hex();
        let refused = t1.err("joinRoom", json!({"requestId": rid})).await;
        assert_eq!(
            (&refused["code"], &refused["message"], &refused["retryable"]),
            (&missing["code"], &missing["message"], &missing["retryable"]),
            "{what}: a teacher is refused as for a missing request: {refused}"
        );
        let history = lab.join(&rid).await;
        assert_eq!(history["messages"], json!([]), "{what}");
        let posted = lab.post(&rid, "lab staff may still act on it").await;
        assert_eq!(posted["senderId"], "lab-1", "{what}");
    }
    server.stop().await;
}
