//! A room's one order on the wire: every message carries its `seq` (1, 2, 3, … with no holes),
//! live events and history follow it, `history {after}` catches up in it, and a cursor that is
//! not a message of the room is a `BAD_REQUEST` — once on the in-memory store and once on MongoDB.
//!
//! The MongoDB tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, token};
use serde_json::{Value, json};

labchat_tests::on_every_store! {
    every_message_carries_a_dense_seq_live_in_acks_and_in_history,
    history_after_catches_up_in_seq_order_with_has_more,
    a_cursor_that_is_not_a_message_of_the_room_is_a_bad_request,
}

async fn lab(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "LAB")).await
}

fn seqs(messages: &Value) -> Vec<u64> {
    messages.as_array().unwrap().iter().map(|m| m["seq"].as_u64().expect("every message has a seq")).collect()
}

fn ids(messages: &Value) -> Vec<String> {
    messages.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

async fn every_message_carries_a_dense_seq_live_in_acks_and_in_history(server: TestServer) {
    let room = server.add_request("t1").await.to_hex();
    let other = server.add_request("t1").await.to_hex();
    let mut a = lab(&server, "lab-a").await;
    let mut b = lab(&server, "lab-b").await;
    let mut watcher = lab(&server, "lab-w").await;
    watcher.join(&room).await;

    // Two senders, interleaved, and a second room whose numbering is its own.
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(a.post(&room, &format!("a{i}")).await["seq"].as_u64().unwrap());
        acked.push(b.post(&room, &format!("b{i}")).await["seq"].as_u64().unwrap());
    }
    assert_eq!(a.post(&other, "elsewhere").await["seq"], 1, "each room counts from 1");
    assert_eq!(acked, (1..=10).collect::<Vec<_>>(), "acks carry the room's seqs, dense");

    let mut live = Vec::new();
    while live.len() < 10 {
        let f = watcher.expect("message").await;
        live.push(f["seq"].as_u64().unwrap());
    }
    assert_eq!(live, acked, "live events arrive in seq order");

    let history = lab(&server, "lab-late").await.join(&room).await;
    assert_eq!(seqs(&history["messages"]), acked, "history is the same order");

    // A repeated send gets the original back, with its seq, and takes no new one.
    let first = a.ok("message", json!({"requestId": room, "message": "once", "clientMessageId": "c-1"})).await;
    let again = a.ok("message", json!({"requestId": room, "message": "once", "clientMessageId": "c-1"})).await;
    assert_eq!((first["seq"].clone(), again["seq"].clone()), (json!(11), json!(11)));
    assert_eq!(a.post(&room, "next").await["seq"], 12, "no hole after a duplicate");
}

async fn history_after_catches_up_in_seq_order_with_has_more(server: TestServer) {
    let room = server.add_request("t1").await.to_hex();
    let mut a = lab(&server, "lab-a").await;
    let posted: Vec<Value> = {
        let mut v = Vec::new();
        for i in 0..7 {
            v.push(a.post(&room, &format!("m{i}")).await);
        }
        v
    };
    let all_ids: Vec<String> = posted.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();

    // From the second message on, three at a time: pages in order, hasMore until the end.
    let mut c = lab(&server, "lab-c").await;
    let mut after = all_ids[1].clone();
    let mut got = Vec::new();
    loop {
        let frames = c.call("history", json!({"requestId": room, "after": after, "limit": 3})).await;
        assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
        let page = frames.iter().find(|f| f["event"] == "roomHistory").unwrap()["data"].clone();
        let page_ids = ids(&page["messages"]);
        assert!(page_ids.len() <= 3);
        got.extend(page_ids.iter().cloned());
        if !page["hasMore"].as_bool().unwrap() {
            break;
        }
        after = page_ids.last().unwrap().clone();
    }
    assert_eq!(got, all_ids[2..].to_vec(), "every later message exactly once, in order");

    // After the last message: an empty page, nothing more.
    let frames = c.call("history", json!({"requestId": room, "after": all_ids[6]})).await;
    let page = &frames.iter().find(|f| f["event"] == "roomHistory").unwrap()["data"];
    assert_eq!((page["messages"].clone(), page["hasMore"].clone()), (json!([]), json!(false)));
}

async fn a_cursor_that_is_not_a_message_of_the_room_is_a_bad_request(server: TestServer) {
    let room = server.add_request("t1").await.to_hex();
    let other = server.add_request("t1").await.to_hex();
    let mut a = lab(&server, "lab-a").await;
    let mine = a.post(&room, "here").await["id"].as_str().unwrap().to_owned();
    let foreign = a.post(&other, "there").await["id"].as_str().unwrap().to_owned();
    let unknown = "0123456789abcdef01234567";

    for (field, id) in
        [("after", &foreign), ("after", &unknown.to_owned()), ("before", &foreign), ("before", &unknown.to_owned())]
    {
        let e = a.err("history", json!({"requestId": room, field: id})).await;
        let code = if field == "after" { "UNKNOWN_AFTER" } else { "BAD_REQUEST" };
        assert_eq!(e["code"], code, "{field} {id}: {e}");
        assert_eq!(e["message"], format!("field data.{field} must be the id of a message of this room"));
        assert_eq!(e["requestId"], room);
    }
    let e = a.err("history", json!({"requestId": room, "after": mine, "before": mine})).await;
    assert_eq!(e["code"], "BAD_REQUEST");
    assert_eq!(e["message"], "fields data.before and data.after exclude each other; send one of them");

    // joinRoom {after} with a foreign id: refused, and the connection did not join.
    let mut c = lab(&server, "lab-c").await;
    let e = c.err("joinRoom", json!({"requestId": room, "after": foreign})).await;
    assert_eq!(e["code"], "UNKNOWN_AFTER");
    assert_eq!(e["message"], "field data.after must be the id of a message of this room");
    a.post(&room, "not for c").await;
    c.expect_silence(std::time::Duration::from_millis(300)).await;

    // The same cursors inside the room work.
    assert_eq!(c.ok("history", json!({"requestId": room, "after": mine})).await["requestId"], room);
    assert_eq!(c.ok("joinRoom", json!({"requestId": room, "after": mine})).await["requestId"], room);
}
