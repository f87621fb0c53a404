//! `editMessage` and `deleteMessage` over real websockets with real JWTs, once on the in-memory
//! store (`memory::*`) and once on the test MongoDB (`mongodb::*`): every member hears the change
//! in the room's order, history, a join and the inbox show the new text or the tombstone and never
//! the old text, a delete lowers the unread count of those who had not read the message, and every
//! refused change is a clear error that changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat::app::Settings;
use labchat_tests::client::Client;
use labchat_tests::harness::{Backend, TestServer, token};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

labchat_tests::on_every_store! {
    an_edit_reaches_every_member_and_only_the_new_text_is_served,
    a_delete_leaves_a_tombstone_lowers_unread_and_a_retry_changes_nothing,
    refused_edits_and_deletes_say_why_and_change_nothing,
}

async fn teacher(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "TEACHER")).await
}
async fn lab(server: &TestServer, id: &str) -> Client {
    Client::connect(&server.url(), &token(id, "LAB")).await
}

/// Everything a fresh client of `user` can read about the room: its join, a history page and its
/// inbox, as one text.
async fn everything_served(server: &TestServer, user: &str, role: &str, rid: &str) -> String {
    let mut c = Client::connect(&server.url(), &token(user, role)).await;
    let join = c.join(rid).await;
    let history = c.call("history", json!({"requestId": rid, "limit": 100})).await;
    let history = json!(history);
    let inbox = c.ok("inbox", json!({})).await;
    format!("{join} {history} {inbox}")
}

async fn an_edit_reaches_every_member_and_only_the_new_text_is_served(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    t.join(&rid).await;
    l.join(&rid).await;
    // The sender's own copy of the broadcast comes before the ack, inside `post`.
    let sent = t.post(&rid, "results: 42 mg (typo)").await;
    l.expect("message").await;

    let frames =
        t.call("editMessage", json!({"requestId": rid, "messageId": sent["id"], "message": "results: 4.2 mg"})).await;
    // The editor's own connection hears the change too, before the ack.
    assert_eq!(frames.len(), 2, "{frames:?}");
    let edited = frames[1]["data"].clone();
    assert_eq!(frames[1]["event"], "ack");
    assert_eq!(edited["message"], "results: 4.2 mg");
    assert_eq!((&edited["id"], &edited["seq"], &edited["createdAt"]), (&sent["id"], &sent["seq"], &sent["createdAt"]));
    let edited_at = edited["editedAt"].as_str().expect("editedAt").to_owned();
    let event = json!({
        "requestId": rid, "messageId": sent["id"], "message": "results: 4.2 mg", "editedAt": edited_at, "seq": sent["seq"],
    });
    assert_eq!(frames[0], json!({"event": "messageEdited", "data": event}));
    assert_eq!(l.expect("messageEdited").await, event);

    // An edit does not change the unread count; the inbox row shows the new text.
    let served = everything_served(&server, "lab-1", "LAB", &rid).await;
    assert!(!served.contains("(typo)"), "the old text is served: {served}");
    assert!(served.contains("results: 4.2 mg") && served.contains(&edited_at), "{served}");
    let inbox = l.ok("inbox", json!({})).await;
    assert_eq!(inbox["rooms"][0]["unread"], 1, "{inbox}");
    assert_eq!(inbox["rooms"][0]["lastMessage"]["message"], "results: 4.2 mg");
}

async fn a_delete_leaves_a_tombstone_lowers_unread_and_a_retry_changes_nothing(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    t.join(&rid).await;
    l.join(&rid).await;
    let wrong = t.post(&rid, "the wrong result: positive").await;
    let kept = t.post(&rid, "kept").await;
    for _ in 0..2 {
        l.expect("message").await;
    }
    // The teacher read nothing of their own; the lab user read nothing: 2 unread for them.
    assert_eq!(l.ok("inbox", json!({})).await["rooms"][0]["unread"], 2);

    // A LAB user moderates: deletes the teacher's message.
    let frames = l.call("deleteMessage", json!({"requestId": rid, "messageId": wrong["id"]})).await;
    assert_eq!(frames.len(), 2, "the deleter's own connection hears it before the ack: {frames:?}");
    let tombstone = frames[1]["data"].clone();
    assert!(tombstone.get("message").is_none(), "the text is removed: {tombstone}");
    assert_eq!(tombstone["deletedBy"], "lab-1");
    assert_eq!((&tombstone["id"], &tombstone["seq"]), (&wrong["id"], &wrong["seq"]));
    let deleted_at = tombstone["deletedAt"].as_str().expect("deletedAt").to_owned();
    let event = json!({
        "requestId": rid, "messageId": wrong["id"], "deletedAt": deleted_at, "deletedBy": "lab-1", "seq": wrong["seq"],
    });
    assert_eq!(frames[0], json!({"event": "messageDeleted", "data": event}));
    assert_eq!(t.expect("messageDeleted").await, event);

    // The unread count drops for the user who had not read it.
    let inbox = l.ok("inbox", json!({})).await;
    assert_eq!(inbox["rooms"][0]["unread"], 1, "{inbox}");
    let mut fresh = lab(&server, "lab-1").await;
    let joined = fresh.join(&rid).await;
    assert_eq!(joined["unread"], 1, "{joined}");
    assert_eq!(joined["firstUnreadId"], kept["id"], "a tombstone is never the first unread");
    // seq stays dense: the tombstone keeps its place.
    let seqs: Vec<&Value> = joined["messages"].as_array().unwrap().iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [&json!(1), &json!(2)]);
    let served = everything_served(&server, "t1", "TEACHER", &rid).await;
    assert!(!served.contains("the wrong result"), "the old text is served: {served}");

    // Deleting again (a retry) answers with the tombstone and tells no one.
    let again = t.ok("deleteMessage", json!({"requestId": rid, "messageId": wrong["id"]})).await;
    assert_eq!(again, tombstone);
    l.expect_silence(QUIET).await;
    // The sender deletes their own message too.
    t.ok("deleteMessage", json!({"requestId": rid, "messageId": kept["id"]})).await;
    assert_eq!(l.expect("messageDeleted").await["messageId"], kept["id"]);
    assert_eq!(l.ok("inbox", json!({})).await["rooms"][0]["unread"], 0);
}

async fn refused_edits_and_deletes_say_why_and_change_nothing(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let other_room = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let mut l = lab(&server, "lab-1").await;
    let mut t2 = teacher(&server, "t2").await;
    t.join(&rid).await;
    l.join(&rid).await;
    let mine = t.post(&rid, "mine").await;
    let theirs = l.post(&rid, "theirs").await;
    let elsewhere = t.post(&other_room, "elsewhere").await;
    let refusals = [
        (
            "l",
            "editMessage",
            json!({"requestId": rid, "messageId": mine["id"], "message": "x"}),
            "FORBIDDEN",
            "only the sender may edit a message",
        ),
        (
            "t",
            "deleteMessage",
            json!({"requestId": rid, "messageId": theirs["id"]}),
            "FORBIDDEN",
            "only the sender or a LAB user may delete a message",
        ),
        (
            "t",
            "editMessage",
            json!({"requestId": rid, "messageId": elsewhere["id"], "message": "x"}),
            "BAD_REQUEST",
            "field data.messageId must be the id of a message of this room",
        ),
        (
            "t",
            "deleteMessage",
            json!({"requestId": rid, "messageId": "0123456789abcdef01234567"}),
            "BAD_REQUEST",
            "field data.messageId must be the id of a message of this room",
        ),
        (
            "t",
            "editMessage",
            json!({"requestId": rid, "messageId": mine["id"], "message": "   "}),
            "BAD_REQUEST",
            "field data.message: message must not be empty",
        ),
        (
            "t",
            "editMessage",
            json!({"requestId": rid, "messageId": mine["id"]}),
            "BAD_REQUEST",
            "missing field data.message",
        ),
        (
            "t",
            "deleteMessage",
            json!({"requestId": rid, "messageId": 7}),
            "BAD_REQUEST",
            "field data.messageId must be a 24-hex string",
        ),
        (
            "t2",
            "editMessage",
            json!({"requestId": rid, "messageId": mine["id"], "message": "x"}),
            "FORBIDDEN",
            "you may not access this request",
        ),
        (
            "t2",
            "deleteMessage",
            json!({"requestId": rid, "messageId": mine["id"]}),
            "FORBIDDEN",
            "you may not access this request",
        ),
    ];
    for (who, event, data, code, message) in refusals {
        let client = match who {
            "t" => &mut t,
            "l" => &mut l,
            _ => &mut t2,
        };
        let e = client.err(event, data.clone()).await;
        assert_eq!((e["code"].as_str(), e["message"].as_str()), (Some(code), Some(message)), "{event} {data}: {e}");
    }
    // A deleted message cannot be edited.
    t.ok("deleteMessage", json!({"requestId": rid, "messageId": mine["id"]})).await;
    let e = t.err("editMessage", json!({"requestId": rid, "messageId": mine["id"], "message": "back"})).await;
    assert_eq!((e["code"].as_str(), e["message"].as_str()), (Some("BAD_REQUEST"), Some("the message was deleted")));
    // Refusals left everything as it was, and the refused users in the room.
    let history = Client::connect(&server.url(), &token("lab-9", "LAB")).await.join(&rid).await;
    let texts: Vec<&Value> = history["messages"].as_array().unwrap().iter().map(|m| &m["message"]).collect();
    assert_eq!(texts, [&Value::Null, &json!("theirs")]);
    let next = t.post(&rid, "still here").await;
    loop {
        let m = l.recv().await;
        if m["event"] == "message" && m["data"]["id"] == next["id"] {
            break;
        }
    }
    let elsewhere_now = Client::connect(&server.url(), &token("lab-9", "LAB")).await.join(&other_room).await;
    assert_eq!(elsewhere_now["messages"][0]["message"], "elsewhere", "{elsewhere_now}");
}

/// Past the edit window, an edit is refused (a window of 1 ms here; the default is 15 min).
async fn past_the_window(backend: Backend, name: &str) {
    let mut settings: Settings = backend.settings(name);
    settings.ws.edit_window = Duration::from_millis(1);
    let server = TestServer::start_with(settings).await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = teacher(&server, "t1").await;
    let sent = t.post(&rid, "first").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = t.err("editMessage", json!({"requestId": rid, "messageId": sent["id"], "message": "late"})).await;
    assert_eq!(e["code"], "FORBIDDEN", "{e}");
    assert!(e["message"].as_str().unwrap().contains("edit window"), "{e}");
    // Deleting has no window.
    t.ok("deleteMessage", json!({"requestId": rid, "messageId": sent["id"]})).await;
}

#[tokio::test]
async fn memory_an_edit_past_the_window_is_refused() {
    past_the_window(Backend::Memory, "memory_an_edit_past_the_window_is_refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_an_edit_past_the_window_is_refused() {
    past_the_window(Backend::Mongo, "mongodb_an_edit_past_the_window_is_refused").await;
}
