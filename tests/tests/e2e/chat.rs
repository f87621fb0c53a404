//! Every client event's success and error paths, over real websockets with real JWTs, once on
//! the in-memory store (`memory::*`) and once on MongoDB (`mongodb::*`: the test MongoDB, a
//! fresh database per test).
//!
//! The MongoDB tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`. Without it
//! they fail, saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::SinkExt;
use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, new_request_id, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

labchat_tests::on_every_store! {
    two_clients_chat_and_see_history_on_rejoin,
    forbidden_and_missing_requests_look_the_same,
    bad_frames_get_bad_request_and_the_connection_stays_open,
    correlation_ids_are_echoed_and_frames_without_one_get_no_ack,
    the_resquest_id_alias_works_everywhere,
    a_retry_with_the_same_client_message_id_stores_and_broadcasts_nothing,
    receipts_touch_only_the_right_messages_and_announce_exactly_what_changed,
    leaving_stops_delivery_and_leaving_twice_is_harmless,
    sender_identity_comes_from_the_token_only,
}

async fn teacher(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "TEACHER")).await
}
async fn lab(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "LAB")).await
}
fn ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect()
}

async fn two_clients_chat_and_see_history_on_rejoin(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    t.join(&rid).await;
    l.join(&rid).await;

    let frames = t.call("message", json!({"requestId": rid, "message": "hello lab"})).await;
    // The sender's own connection gets the broadcast too, before the ack.
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0]["event"], "message");
    let stored = frames[1]["data"].clone();
    assert_eq!(frames[0]["data"], stored);
    assert_eq!(stored["senderId"], "t1");
    assert_eq!(stored["senderRole"], "TEACHER");
    assert_eq!(stored["requestId"], rid);
    assert_eq!(stored["message"], "hello lab");
    assert_eq!(stored["deliveredTo"], json!([]));
    assert_eq!(stored["readBy"], json!([]));
    assert_eq!(stored["id"].as_str().unwrap().len(), 24);
    let created = stored["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert!(stored.get("clientMessageId").is_none());
    assert_eq!(l.expect("message").await, stored);

    let reply = l.post(&rid, "hello teacher").await;
    assert_eq!(t.expect("message").await, reply);

    // A fresh connection that joins gets both, oldest first.
    let mut t2 = teacher(&server, "t1").await;
    let history = t2.join(&rid).await;
    assert_eq!(history["messages"], json!([stored, reply]));
    assert_eq!(history["hasMore"], false);
}

async fn forbidden_and_missing_requests_look_the_same(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let missing = new_request_id().to_hex();
    let mut other = teacher(&server, "t2").await;
    let mut denied = Vec::new();
    for r in [&rid, &missing] {
        for (event, data) in [
            ("joinRoom", json!({"requestId": r})),
            ("leaveRoom", json!({"requestId": r})),
            ("message", json!({"requestId": r, "message": "x"})),
            ("ackMessages", json!({"requestId": r, "messages": [r]})),
            ("readMessages", json!({"requestId": r, "messages": [r]})),
            ("history", json!({"requestId": r})),
        ] {
            let e = other.err(event, data).await;
            assert_eq!(e["code"], "FORBIDDEN", "{event} {e}");
            assert_eq!(e["event"], event);
            assert_eq!(e["retryable"], false);
            denied.push(e["message"].clone());
        }
    }
    assert!(denied.windows(2).all(|w| w[0] == w[1]), "no existence leak: {denied:?}");
    // A LAB user may act on any existing request, and a missing one is still forbidden.
    let mut l = lab(&server, "lab-9").await;
    l.join(&rid).await;
    assert_eq!(l.err("joinRoom", json!({"requestId": missing})).await["code"], "FORBIDDEN");
}

async fn bad_frames_get_bad_request_and_the_connection_stays_open(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut c = teacher(&server, "t1").await;
    let raw = [
        "not json",
        "[1,2]",
        "\"just a string\"",
        r#"{"event":"dance","data":{}}"#,
        r#"{"data":{}}"#,
        r#"{"event":"joinRoom"}"#,
        r#"{"event":"joinRoom","data":{"requestId":"nope"}}"#,
        &"[".repeat(10_000),
    ];
    for text in raw {
        c.send_text(text).await;
        let f = c.recv().await;
        assert_eq!((f["event"].as_str(), f["data"]["code"].as_str()), (Some("error"), Some("BAD_REQUEST")), "{text}");
        assert!(f.get("id").is_none());
    }
    // A number out of range makes the frame unreadable JSON, but its id and event are named.
    c.send_text(r#"{"event":"history","data":{"requestId":"x","limit":1e400},"id":"h-1"}"#).await;
    let f = c.recv().await;
    assert_eq!((f["data"]["code"].as_str(), f["id"].as_str()), (Some("BAD_REQUEST"), Some("h-1")), "{f}");
    assert_eq!(f["data"]["event"], "history", "{f}");
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let f = c.recv().await;
    assert_eq!(f["data"]["code"], "BAD_REQUEST");
    assert!(f["data"]["message"].as_str().unwrap().contains("binary"));

    let cases = [
        ("message", json!({"requestId": rid, "message": ""}), "must not be empty"),
        ("message", json!({"requestId": rid, "message": " \n "}), "must not be empty"),
        ("message", json!({"requestId": rid, "message": "x".repeat(4001)}), "at most 4000"),
        ("message", json!({"requestId": rid}), "data.message"),
        ("message", json!({"message": "hi"}), "requestId"),
        ("message", json!({"requestId": "6751b6df1ad14eaa13a0331Z", "message": "hi"}), "requestId"),
        ("message", json!({"requestId": rid, "message": 5}), "data.message"),
        ("message", json!({"requestId": rid, "message": "x", "clientMessageId": "c".repeat(65)}), "clientMessageId"),
        ("ackMessages", json!({"requestId": rid, "messages": []}), "1 to 500"),
        ("ackMessages", json!({"requestId": rid, "messages": vec![rid.clone(); 501]}), "1 to 500"),
        ("readMessages", json!({"requestId": rid, "messages": ["zz"]}), "messages[0]"),
        ("joinRoom", json!({"requestId": rid, "resquestId": new_request_id().to_hex()}), "disagree"),
    ];
    for (event, data, needle) in cases {
        let e = c.err(event, data.clone()).await;
        assert_eq!(e["code"], "BAD_REQUEST", "{event} {data}");
        assert_eq!(e["event"], event);
        assert!(e["message"].as_str().unwrap().contains(needle), "{event} {data}: {e}");
    }
    // Exactly 4000 characters (multi-byte) is fine, and the connection still works.
    let long = "é".repeat(4000);
    assert_eq!(c.post(&rid, &long).await["message"], long);
}

async fn correlation_ids_are_echoed_and_frames_without_one_get_no_ack(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut c = teacher(&server, "t1").await;
    c.send(json!({"event":"joinRoom","data":{"requestId":rid},"id":"join-1"})).await;
    let h = c.recv().await;
    assert_eq!((h["event"].as_str(), &h["id"]), (Some("roomHistory"), &json!("join-1")));
    assert_eq!(c.recv().await, json!({"event":"ack","data":{"requestId":rid},"id":"join-1"}));

    // Without an id: the broadcast only, no ack.
    c.emit("message", json!({"requestId": rid, "message": "no id"})).await;
    let m = c.recv().await;
    assert!(m["event"] == "message" && m.get("id").is_none(), "{m}");
    c.expect_silence(QUIET).await;

    // Integer ids, and errors carry the id and the requestId.
    c.send(json!({"event":"message","data":{"requestId":rid,"message":""},"id":77})).await;
    let e = c.recv().await;
    assert_eq!(e["id"], 77);
    assert_eq!(e["data"]["requestId"], rid);

    // An invalid id is itself a bad request, and not echoed.
    c.send(json!({"event":"leaveRoom","data":{"requestId":rid},"id":{"x":1}})).await;
    let e = c.recv().await;
    assert_eq!(e["data"]["code"], "BAD_REQUEST");
    assert!(e.get("id").is_none());
}

async fn the_resquest_id_alias_works_everywhere(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    let frames = l.call("joinRoom", json!({"resquestId": rid})).await;
    assert_eq!(frames[0]["data"]["requestId"], rid);
    let m = t.ok("message", json!({"resquestId": rid, "message": "alias"})).await;
    assert_eq!(l.expect("message").await, m);
    let mid = m["id"].as_str().unwrap();
    let acked = l.ok("ackMessages", json!({"resquestId": rid, "messages": [mid]})).await;
    assert_eq!(ids(&acked["messages"]), [mid]);
    let read = l.ok("readMessages", json!({"resquestId": rid, "messages": [mid]})).await;
    assert_eq!(read["requestId"], rid);
    let page = l.call("history", json!({"resquestId": rid})).await;
    assert_eq!(page[0]["event"], "roomHistory");
    l.ok("leaveRoom", json!({"resquestId": rid, "requestId": rid})).await;
}

async fn a_retry_with_the_same_client_message_id_stores_and_broadcasts_nothing(server: TestServer) {
    const CID: &str = "8f14e45f-ceea-467f-a0e6-4c1e2b3a5d70";
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    l.join(&rid).await;
    let first = t.ok("message", json!({"requestId": rid, "message": "once", "clientMessageId": CID})).await;
    assert_eq!(first["clientMessageId"], CID);
    assert_eq!(l.expect("message").await, first);
    let retry = t.ok("message", json!({"requestId": rid, "message": "once", "clientMessageId": CID})).await;
    assert_eq!(retry, first, "the retry returns the original message");
    // Without a correlation id the retry is still answered, to the sender only.
    t.emit("message", json!({"requestId": rid, "message": "once", "clientMessageId": CID})).await;
    assert_eq!(t.expect("message").await, first);
    l.expect_silence(QUIET).await;
    // The same id with another text (even one space more) is refused: nothing stored or sent.
    for text in ["another message", "once "] {
        let e = t.err("message", json!({"requestId": rid, "message": text, "clientMessageId": CID})).await;
        assert_eq!(
            (e["code"].as_str(), &e["retryable"], e["event"].as_str(), e["requestId"].as_str()),
            (Some("CLIENT_MESSAGE_ID_REUSED"), &json!(false), Some("message"), Some(rid.as_str())),
            "{e}"
        );
        assert!(e["message"].as_str().unwrap().contains("clientMessageId"), "{e}");
    }
    t.emit("message", json!({"requestId": rid, "message": "no id", "clientMessageId": CID})).await;
    assert_eq!(t.expect("error").await["code"], "CLIENT_MESSAGE_ID_REUSED");
    l.expect_silence(QUIET).await;
    // Another user with the same client id sends a new message.
    let other = l.ok("message", json!({"requestId": rid, "message": "mine", "clientMessageId": CID})).await;
    assert_ne!(other["id"], first["id"]);
    let history = l.call("history", json!({"requestId": rid})).await;
    let texts: Vec<&str> =
        history[0]["data"]["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["once", "mine"]);
}

async fn receipts_touch_only_the_right_messages_and_announce_exactly_what_changed(server: TestServer) {
    let r1 = server.add_request("t1").await.to_hex();
    let r2 = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    t.join(&r1).await;
    let a = t.post(&r1, "a").await["id"].as_str().unwrap().to_owned();
    let b = t.post(&r1, "b").await["id"].as_str().unwrap().to_owned();
    let other_room = t.post(&r2, "in r2").await["id"].as_str().unwrap().to_owned();
    let own = l.post(&r1, "lab's own").await["id"].as_str().unwrap().to_owned();
    // t's own broadcasts were read with the acks; the lab's message arrives; r2 is not joined.
    assert_eq!(t.expect("message").await["id"], own.as_str());
    t.expect_silence(QUIET).await;
    l.join(&r1).await;
    let unknown = "0123456789abcdef01234567";

    // Deliver: only a and b (not the other room's, not its own, not unknown).
    let frames = l.call("ackMessages", json!({"requestId": r1, "messages": [a, other_room, own, unknown, b, a]})).await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    let acked = &frames[1]["data"];
    assert_eq!(ids(&acked["messages"]), [a.clone(), b.clone()]);
    let d = t.expect("messagesDelivered").await;
    assert_eq!(d["userId"], "lab-1");
    assert_eq!(d["requestId"], r1);
    assert_eq!(ids(&d["messages"]), [a.clone(), b.clone()]);
    assert_eq!((frames[0]["event"].as_str(), &frames[0]["data"]), (Some("messagesDelivered"), &d));

    // Again: nothing new, nothing broadcast.
    assert_eq!(l.ok("ackMessages", json!({"requestId": r1, "messages": [a, b]})).await["messages"], json!([]));
    t.expect_silence(QUIET).await;

    // Read b: already delivered, so only a read announcement.
    let frames = l.call("readMessages", json!({"requestId": r1, "messages": [b]})).await;
    assert_eq!(ids(&frames[1]["data"]["messages"]), vec![b.clone()]);
    let r = t.expect("messageReads").await;
    assert_eq!((ids(&r["messages"]), r["userId"].as_str()), (vec![b.clone()], Some("lab-1")));
    assert_eq!((frames.len(), &frames[0]["data"]), (2, &r));

    // Teacher reads the lab's message without acking it first: delivered, then read.
    t.ok("readMessages", json!({"requestId": r1, "messages": [own]})).await;
    assert_eq!(ids(&l.expect("messagesDelivered").await["messages"]), vec![own.clone()]);
    assert_eq!(ids(&l.expect("messageReads").await["messages"]), vec![own.clone()]);

    // The other room's message is untouched.
    let r2_history = t.call("history", json!({"requestId": r2})).await;
    let msg = &r2_history[0]["data"]["messages"][0];
    assert_eq!((msg["id"].as_str(), &msg["deliveredTo"], &msg["readBy"]), (Some(&*other_room), &json!([]), &json!([])));

    // History shows who received and read what, with times.
    let h = l.call("history", json!({"requestId": r1})).await;
    let msgs = h[0]["data"]["messages"].as_array().unwrap().clone();
    let by_id = |id: &str| msgs.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(by_id(&a)["deliveredTo"][0]["userId"], "lab-1");
    assert_eq!(by_id(&a)["readBy"], json!([]));
    assert_eq!(by_id(&b)["readBy"][0]["userId"], "lab-1");
    assert!(by_id(&b)["readBy"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(by_id(&own)["readBy"][0]["userId"], "t1");
}

async fn leaving_stops_delivery_and_leaving_twice_is_harmless(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    l.join(&rid).await;
    l.join(&rid).await; // joining twice is harmless: one subscription
    t.post(&rid, "one").await;
    l.expect("message").await;
    l.expect_silence(QUIET).await;
    assert_eq!(l.ok("leaveRoom", json!({"requestId": rid})).await, json!({"requestId": rid}));
    l.ok("leaveRoom", json!({"requestId": rid})).await;
    t.post(&rid, "two").await;
    l.expect_silence(QUIET).await;
}

async fn sender_identity_comes_from_the_token_only(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let m =
        t.ok("message", json!({"requestId": rid, "message": "hi", "senderId": "lab-boss", "senderRole": "LAB"})).await;
    assert_eq!((m["senderId"].as_str(), m["senderRole"].as_str()), (Some("t1"), Some("TEACHER")));
}
