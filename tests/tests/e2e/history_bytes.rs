//! History pages are bounded in bytes as well as in messages: a room whose messages are as large
//! as the protocol allows (4000 characters that JSON escapes to 6 bytes each) stays joinable, and
//! a client still reaches every message by paging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, settings, token};
use serde_json::{Value, json};

/// Messages posted to the poisoned room: the default history page size.
const POSTED: usize = 200;

/// A server whose rate limit lets one client post a whole page quickly.
async fn server() -> TestServer {
    let mut s = settings();
    s.ws.rate_per_second = 100_000.0;
    s.ws.rate_burst = 100_000.0;
    TestServer::start_with(s).await
}

/// The room of a new request, with [`POSTED`] messages of 4000 × U+0001 posted by a LAB user;
/// returns the room and the ids of the messages, oldest first.
async fn poisoned_room(server: &TestServer) -> (String, Vec<String>) {
    let rid = server.add_request("teacher-1").await.to_hex();
    let mut poster = Client::connect(&server.url(), &token("lab-poster", "LAB")).await;
    let text = "\u{1}".repeat(4000);
    let mut ids = Vec::with_capacity(POSTED);
    for _ in 0..POSTED {
        let stored = poster.post(&rid, &text).await;
        ids.push(stored["id"].as_str().unwrap().to_owned());
    }
    (rid, ids)
}

/// The largest frame the server may build for a reply.
fn reply_budget() -> usize {
    labchat_transport_ws::WsConfig::default().reply_budget()
}

/// Sends `event` with an id and returns the `roomHistory` data that precedes its `ack`, checking
/// the frame's size against the reply budget.
async fn page(c: &mut Client, event: &str, data: Value) -> Value {
    let frames = c.call(event, data).await;
    let last = frames.last().unwrap();
    assert_eq!(last["event"], "ack", "{event} failed: {last}");
    assert_eq!(frames.len(), 2, "roomHistory then ack: {:?}", frames.iter().map(|f| &f["event"]).collect::<Vec<_>>());
    let history = &frames[0];
    assert_eq!(history["event"], "roomHistory");
    // Re-serialized with the same escaping and no whitespace: the size of the frame as sent.
    let size = serde_json::to_string(history).unwrap().len();
    assert!(size <= reply_budget(), "a roomHistory of {size} bytes exceeds the budget of {}", reply_budget());
    history["data"].clone()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_room_of_huge_messages_stays_joinable_and_every_message_is_reachable_by_paging() {
    let server = server().await;
    let (rid, posted) = poisoned_room(&server).await;

    // A fresh client joins: a cut page of the newest messages, then the ack; the connection stays.
    let mut c = Client::connect(&server.url(), &token("lab-reader", "LAB")).await;
    let first = page(&mut c, "joinRoom", json!({"requestId": rid})).await;
    let mut got = ids_of(&first);
    assert!(!got.is_empty() && got.len() < POSTED, "a cut page holds some messages, got {}", got.len());
    assert_eq!(first["hasMore"], true, "a cut page says there is more");
    assert_eq!(got[..], posted[POSTED - got.len()..], "the latest page keeps the newest messages");
    assert_eq!(first["messages"][0]["message"].as_str().unwrap(), "\u{1}".repeat(4000), "texts are sent whole");

    // `history` with the default limit is cut the same way.
    let latest = page(&mut c, "history", json!({"requestId": rid})).await;
    assert_eq!((ids_of(&latest), &latest["hasMore"]), (got.clone(), &json!(true)));

    // Paging back with `before` reaches every message exactly once, in order.
    let mut more = true;
    for _ in 0..POSTED {
        if !more {
            break;
        }
        let older = page(&mut c, "history", json!({"requestId": rid, "before": got[0]})).await;
        let ids = ids_of(&older);
        assert!(!ids.is_empty(), "a page with hasMore is never empty");
        more = older["hasMore"] == true;
        got.splice(0..0, ids);
    }
    assert!(!more, "paging ended");
    assert_eq!(got, posted, "every message exactly once, oldest first");

    // The connection is still usable, and live events still reach it.
    let frames = c.call("message", json!({"requestId": rid, "message": "still here"})).await;
    let events: Vec<&Value> = frames.iter().map(|f| &f["event"]).collect();
    assert_eq!(events, [&json!("message"), &json!("ack")], "the broadcast, then the ack");
    drop(c);
    server.stop().await;
}

#[tokio::test]
async fn catching_up_with_join_after_pages_forward_through_huge_messages() {
    let server = server().await;
    let (rid, posted) = poisoned_room(&server).await;

    let mut c = Client::connect(&server.url(), &token("lab-reader", "LAB")).await;
    // After the first message: the oldest ones after it, cut before the newest.
    let mut got = vec![posted[0].clone()];
    let mut more = true;
    for _ in 0..POSTED {
        if !more {
            break;
        }
        let next = page(&mut c, "joinRoom", json!({"requestId": rid, "after": got.last().unwrap()})).await;
        let ids = ids_of(&next);
        assert!(!ids.is_empty(), "a page with hasMore is never empty");
        assert!(ids.len() < POSTED - 1 || got.len() > 1, "the first page is cut");
        more = next["hasMore"] == true;
        got.extend(ids);
    }
    assert!(!more, "paging ended");
    assert_eq!(got, posted, "every message exactly once, oldest first");
    c.post(&rid, "still here").await;
    drop(c);
    server.stop().await;
}

/// The inbox reply is bounded in bytes like a history page: with the outbound queue at 1 MiB
/// (a reply budget of 512 KiB), the default page of 50 rooms whose last messages are as large as
/// the protocol allows (about 24 KB each once escaped) is cut, says where to go on with `next`,
/// and the connection stays open; paging on lists every room exactly once, in the inbox order.
#[tokio::test]
async fn an_inbox_of_huge_messages_is_cut_to_the_reply_budget_and_pages_on() {
    const ROOMS: usize = 50;
    let mut s = settings();
    s.ws.rate_per_second = 100_000.0;
    s.ws.rate_burst = 100_000.0;
    s.ws.outbound_max_bytes = 1024 * 1024;
    let budget = s.ws.reply_budget();
    let server = TestServer::start_with(s).await;
    let mut poster = Client::connect(&server.url(), &token("lab-poster", "LAB")).await;
    let text = "\u{1}".repeat(4000);
    let mut rooms = Vec::with_capacity(ROOMS);
    for _ in 0..ROOMS {
        let rid = server.add_request("teacher-1").await.to_hex();
        poster.post(&rid, &text).await;
        rooms.push(rid);
    }
    // The inbox order: the latest activity first.
    rooms.reverse();

    let mut c = Client::connect(&server.url(), &token("lab-reader", "LAB")).await;
    let mut listed: Vec<String> = Vec::new();
    let mut before = Value::Null;
    let mut pages = 0;
    loop {
        let data = if before.is_null() { json!({}) } else { json!({"before": before}) };
        let frames = c.call("inbox", data).await;
        assert_eq!(frames.len(), 1, "one ack: {:?}", frames.iter().map(|f| &f["event"]).collect::<Vec<_>>());
        let ack = &frames[0];
        assert_eq!(ack["event"], "ack", "inbox failed: {ack}");
        let size = serde_json::to_string(ack).unwrap().len();
        assert!(size <= budget, "an inbox reply of {size} bytes exceeds the budget of {budget}");
        let rows = ack["data"]["rooms"].as_array().unwrap();
        assert!(!rows.is_empty(), "every page holds at least one room");
        assert_eq!(rows[0]["lastMessage"]["message"].as_str().unwrap(), text, "texts are sent whole");
        listed.extend(rows.iter().map(|r| r["requestId"].as_str().unwrap().to_owned()));
        pages += 1;
        before = ack["data"]["next"].clone();
        if before.is_null() {
            break;
        }
        assert!(pages < ROOMS, "paging never ended");
    }
    assert!(pages > 1, "the default page of {ROOMS} rooms does not fit {budget} bytes: it was cut");
    assert_eq!(listed, rooms, "every room once, in the inbox order");
}
