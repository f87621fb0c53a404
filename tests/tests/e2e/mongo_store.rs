//! End to end on the MongoDB store: what a client was told is stored stays stored, across a
//! server restart and across a store outage, and per-room order holds with many rooms writing at
//! once (message inserts are batched by default).
//!
//! These tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`. Without it they
//! fail, saying so. Each server uses a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use labchat::app::{Settings, StoreSettings};
use labchat_store_mongo::MongoSettings;
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{TestServer, mongo_settings, settings, token};
use labchat_tests::mongo::{self, TcpProxy};
use serde_json::{Value, json};

async fn teacher(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "TEACHER")).await
}
async fn lab(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "LAB")).await
}
fn id_of(m: &Value) -> String {
    m["id"].as_str().unwrap().to_owned()
}
fn users(receipts: &Value) -> Vec<&str> {
    receipts.as_array().unwrap().iter().map(|r| r["userId"].as_str().unwrap()).collect()
}

/// Two clients chat and mark on one server; a server started later on the same database gives
/// a fresh client the same history, receipts (users and times) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_receipts_survive_a_restart() {
    let settings = mongo_settings("restart");
    let first = TestServer::start_with(settings.clone()).await;
    let rid = first.add_request("t1").await.to_hex();
    let mut t = teacher(&first, "t1").await;
    let mut l = lab(&first, "lab-1").await;
    t.join(&rid).await;
    l.join(&rid).await;
    let a = id_of(&t.post(&rid, "a: please check the microscopes").await);
    let b = id_of(&t.post(&rid, "b: and the slides").await);
    let c = id_of(&l.ok("message", json!({"requestId": rid, "message": "c: on it", "clientMessageId": "c-1"})).await);
    assert_eq!(l.ok("ackMessages", json!({"requestId": rid, "messages": [a, b]})).await["messages"], json!([a, b]));
    assert_eq!(l.ok("readMessages", json!({"requestId": rid, "messages": [a]})).await["messages"], json!([a]));
    assert_eq!(t.ok("readMessages", json!({"requestId": rid, "messages": [c]})).await["messages"], json!([c]));

    // What a fresh client sees before the restart.
    let mut before = teacher(&first, "t1").await.join(&rid).await;
    // The joining user's own unread fields are not history: set apart (they differ by user).
    let joined = before.as_object_mut().unwrap();
    let t1_unread = (joined.remove("unread").unwrap(), joined.remove("firstUnreadId").unwrap());
    assert_eq!(t1_unread, (json!(0), Value::Null), "t1 sent a and b and read c");
    // A join's page also lists the members present (a `history` page does not).
    assert!(before.as_object_mut().unwrap().remove("members").is_some_and(|m| m.is_array()));
    let before_presence = before.as_object_mut().unwrap();
    assert!(before_presence.remove("membersCount").is_some() && before_presence.remove("membersNext").is_some());
    let msgs = before["messages"].as_array().unwrap();
    assert_eq!(msgs.iter().map(id_of).collect::<Vec<_>>(), [a.clone(), b.clone(), c.clone()]);
    assert_eq!((users(&msgs[0]["deliveredTo"]), users(&msgs[0]["readBy"])), (vec!["lab-1"], vec!["lab-1"]));
    assert_eq!((users(&msgs[1]["deliveredTo"]), users(&msgs[1]["readBy"])), (vec!["lab-1"], vec![]));
    assert_eq!((users(&msgs[2]["deliveredTo"]), users(&msgs[2]["readBy"])), (vec!["t1"], vec!["t1"]));
    assert_eq!(msgs[2]["clientMessageId"], "c-1");
    for m in msgs {
        for r in m["deliveredTo"].as_array().unwrap().iter().chain(m["readBy"].as_array().unwrap()) {
            assert!(r["at"].as_str().unwrap().ends_with('Z'), "{r}");
        }
    }

    let took = first.stop().await;
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    drop((t, l));

    let second = TestServer::start_with(settings).await;
    let mut fresh = lab(&second, "lab-2").await;
    let mut after = fresh.join(&rid).await;
    let joined = after.as_object_mut().unwrap();
    let lab2_unread = (joined.remove("unread").unwrap(), joined.remove("firstUnreadId").unwrap());
    assert_eq!(lab2_unread, (json!(3), json!(a)), "a new reader has read nothing, from the first message on");
    let members = after.as_object_mut().unwrap().remove("members");
    assert_eq!(members, Some(json!([{"userId": "lab-2", "role": "LAB"}])), "presence does not outlive the process");
    let presence = after.as_object_mut().unwrap();
    assert_eq!((presence.remove("membersCount"), presence.remove("membersNext")), (Some(json!(1)), Some(json!(null))));
    assert_eq!(after, before, "the same history, with the same receipts and times, after a restart");
    let page = fresh.call("history", json!({"requestId": rid})).await;
    assert_eq!(page[0]["data"], before);
    // The restarted server goes on: a retry of a stored client message id is still a repeat, and
    // a new message is stored, delivered, and sorts after the old ones (ids carry milliseconds,
    // so a new process's ids follow the old process's even within the same second).
    let mut l = lab(&second, "lab-1").await;
    let retry = l.ok("message", json!({"requestId": rid, "message": "c: on it", "clientMessageId": "c-1"})).await;
    assert_eq!(id_of(&retry), c);
    let reused = l.err("message", json!({"requestId": rid, "message": "c again", "clientMessageId": "c-1"})).await;
    assert_eq!((&reused["code"], &reused["retryable"]), (&json!("CLIENT_MESSAGE_ID_REUSED"), &json!(false)));
    let d = id_of(&l.post(&rid, "d: done").await);
    assert_eq!(fresh.expect("message").await["id"], d.as_str());
    let last = teacher(&second, "t1").await.join(&rid).await;
    let ids: Vec<String> = last["messages"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, vec![a, b, c, d]);
}

/// Settings of a server whose store reaches the test MongoDB through `proxy`, with a 1 s store
/// timeout.
fn through_proxy(proxy: &TcpProxy, name: &str, batch_inserts: bool) -> (Settings, Duration) {
    let op_timeout = Duration::from_secs(1);
    let mongo = MongoSettings {
        uri: format!("mongodb://{}/?directConnection=true", proxy.addr()),
        op_timeout,
        batch_inserts,
        ..mongo::test_settings(name)
    };
    (Settings { store: StoreSettings::Mongo(mongo), ..settings() }, op_timeout)
}

/// Waits (bounded) until `/readyz` says the store answers again.
async fn wait_until_ready(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.get("/readyz").await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "the store is still not ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The final `ack` or `error` of each of `ids`, read from `client` (other frames are skipped).
async fn finals(client: &mut Client, ids: &[String]) -> HashMap<String, Value> {
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let f = client.recv().await;
        if let Some(id) = f["id"].as_str().filter(|id| ids.iter().any(|x| x == id))
            && (f["event"] == "ack" || f["event"] == "error")
        {
            got.insert(id.to_owned(), f);
        }
    }
    got
}

/// The store goes silent while clients stay connected: sends fail with a retryable
/// `UNAVAILABLE` within about the store timeout, the connections stay open, the next send after
/// the store is back succeeds and is delivered, and no acknowledged message is lost or doubled.
async fn store_outage(name: &str, batch_inserts: bool) {
    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let (settings, op_timeout) = through_proxy(&proxy, name, batch_inserts);
    let server = TestServer::start_with(settings).await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    l.join(&rid).await;
    let mut acked: Vec<Value> = Vec::new();
    for i in 0..3 {
        let m = t
            .ok(
                "message",
                json!({"requestId": rid, "message": format!("before {i}"), "clientMessageId": format!("before-{i}")}),
            )
            .await;
        assert_eq!(l.expect("message").await, m);
        acked.push(m);
    }

    // A burst in flight when the store goes silent (right after the first of it is answered):
    // each gets an ack or a retryable error.
    let burst: Vec<String> = (0..6).map(|i| format!("burst-{i}")).collect();
    for id in &burst {
        t.send(json!({"event": "message", "id": id, "data": {"requestId": rid, "message": id, "clientMessageId": id}}))
            .await;
    }
    let mut outcomes = finals(&mut t, &burst[..1]).await;
    proxy.freeze();
    outcomes.extend(finals(&mut t, &burst[1..]).await);
    let mut failed = Vec::new();
    for id in &burst {
        let f = &outcomes[id];
        if f["event"] == "ack" {
            acked.push(f["data"].clone());
        } else {
            assert_eq!(
                (f["data"]["code"].as_str(), &f["data"]["retryable"]),
                (Some("UNAVAILABLE"), &json!(true)),
                "{f}"
            );
            failed.push(id.clone());
        }
    }

    // While the store is silent: a send fails with UNAVAILABLE, retryable, within about the
    // store timeout, and the connection stays open and answers.
    let started = Instant::now();
    let e = t.err("message", json!({"requestId": rid, "message": "during", "clientMessageId": "during"})).await;
    let took = started.elapsed();
    assert_eq!(
        (e["code"].as_str(), &e["retryable"], e["event"].as_str()),
        (Some("UNAVAILABLE"), &json!(true), Some("message")),
        "{e}"
    );
    assert!(took < mongo::generous_bound(op_timeout), "the error took {took:?} (store timeout {op_timeout:?})");
    // A send without clientMessageId may have reached the store: repeating it could store it twice.
    let e = t.err("message", json!({"requestId": rid, "message": "no id"})).await;
    assert_eq!((e["code"].as_str(), &e["retryable"]), (Some("UNAVAILABLE"), &json!(false)), "{e}");
    t.send_text("not json").await;
    assert_eq!(t.recv().await["data"]["code"], "BAD_REQUEST", "the connection still answers");
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");

    // The store is back: the next send succeeds and is delivered.
    proxy.restore();
    wait_until_ready(&server).await;
    let next = t.ok("message", json!({"requestId": rid, "message": "during", "clientMessageId": "during"})).await;
    assert_eq!(next["message"], "during");
    acked.push(next.clone());
    // l may first get broadcasts of burst messages acked before the outage.
    let delivered = loop {
        let m = l.expect("message").await;
        if m["id"] == next["id"] {
            break m;
        }
    };
    assert_eq!(delivered, next);
    // Retries of what failed are stored once (or answered with what was stored after all).
    for id in &failed {
        let m = t.ok("message", json!({"requestId": rid, "message": id, "clientMessageId": id})).await;
        assert_eq!(m["clientMessageId"], id.as_str());
        acked.push(m);
    }

    // Every acknowledged message is in the history exactly once, and no client message id twice.
    let history = lab(&server, "lab-2").await.join(&rid).await;
    let stored = history["messages"].as_array().unwrap();
    for m in &acked {
        let copies = stored.iter().filter(|s| s["id"] == m["id"]).count();
        assert_eq!(copies, 1, "acknowledged message {m} is stored once; history: {history}");
    }
    let mut client_ids: Vec<&str> = stored.iter().filter_map(|s| s["clientMessageId"].as_str()).collect();
    let n = client_ids.len();
    client_ids.sort_unstable();
    client_ids.dedup();
    assert_eq!(client_ids.len(), n, "no client message id stored twice: {history}");
    assert_eq!(n, 3 + burst.len() + 1, "before, burst and during: {history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_gives_unavailable_and_loses_no_acknowledged_message() {
    store_outage("outage_batched", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_with_one_insert_per_message_is_the_same() {
    store_outage("outage_unbatched", false).await;
}

/// Many rooms post at once (so inserts share batches): in each room, the broadcasts come in
/// the order of the history, every sender's messages keep their order, and everything acked is
/// stored.
async fn rooms_keep_their_order(name: &str, batch_inserts: bool) {
    const ROOMS: usize = 8;
    const PER_SENDER: usize = 8;
    let mut s = mongo_settings(name);
    if let StoreSettings::Mongo(m) = &mut s.store {
        m.batch_inserts = batch_inserts;
    }
    let server = TestServer::start_with(s).await;
    let mut rooms = Vec::new();
    let mut observers = Vec::new();
    for _ in 0..ROOMS {
        let rid = server.add_request("t1").await.to_hex();
        let mut o = lab(&server, "observer").await;
        o.join(&rid).await;
        rooms.push(rid);
        observers.push(o);
    }
    let senders = rooms.iter().flat_map(|rid| {
        let server = &server;
        [("t1", "TEACHER"), ("lab-1", "LAB")].map(move |(user, role)| async move {
            let mut c = Client::connect(&server.url(), &token(user, role)).await;
            let mut sent = Vec::new();
            for i in 0..PER_SENDER {
                sent.push(id_of(&c.post(rid, &format!("{user} {i}")).await));
            }
            (rid.clone(), sent)
        })
    });
    let sent = tokio::time::timeout(WAIT * 4, join_all(senders)).await.expect("every sender finishes");
    for (rid, mut observer) in rooms.iter().zip(observers) {
        let history = lab(&server, "checker").await.join(rid).await;
        let stored: Vec<String> = history["messages"].as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(stored.len(), 2 * PER_SENDER, "room {rid}");
        let mut broadcast = Vec::new();
        for _ in 0..stored.len() {
            broadcast.push(id_of(&observer.expect("message").await));
        }
        assert_eq!(broadcast, stored, "room {rid}: broadcast order is history order");
        for (_, ids) in sent.iter().filter(|(r, _)| r == rid) {
            let positions: Vec<usize> = ids.iter().map(|id| stored.iter().position(|s| s == id).unwrap()).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "room {rid}: a sender's messages keep their order");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_at_once_keep_their_order_with_batched_inserts() {
    rooms_keep_their_order("order_batched", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_at_once_keep_their_order_with_one_insert_per_message() {
    rooms_keep_their_order("order_unbatched", false).await;
}
