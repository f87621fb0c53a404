//! Edits and deletes across three real nodes (Redis backplane, test MongoDB): each change
//! reaches every member on every node after the message it changes, and every member ends with
//! the room as the store holds it (new texts, tombstones, no old text).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};
use tokio::time::Instant;

const DELIVERY: Duration = Duration::from_secs(20);
const MESSAGES: usize = 6;

/// A member's view of the room, built only from live events.
#[derive(Default)]
struct View {
    /// Messages by id, as the events left them.
    messages: HashMap<String, Value>,
    /// Message ids in arrival order.
    order: Vec<String>,
    changes: usize,
}

impl View {
    fn apply(&mut self, frame: &Value, who: &str) {
        let data = &frame["data"];
        match frame["event"].as_str() {
            Some("message") => {
                let id = data["id"].as_str().unwrap().to_owned();
                self.order.push(id.clone());
                self.messages.insert(id, data.clone());
            }
            Some(event @ ("messageEdited" | "messageDeleted")) => {
                let id = data["messageId"].as_str().unwrap();
                let m = self.messages.get_mut(id).unwrap_or_else(|| panic!("{who}: {event} {data} before its message"));
                assert_eq!(m["seq"], data["seq"], "{who}: the change carries its message's seq");
                if event == "messageEdited" {
                    m["message"] = data["message"].clone();
                    m["editedAt"] = data["editedAt"].clone();
                } else {
                    let fields = m.as_object_mut().unwrap();
                    fields.remove("message");
                    fields.remove("editedAt");
                    m["deletedAt"] = data["deletedAt"].clone();
                    m["deletedBy"] = data["deletedBy"].clone();
                }
                self.changes += 1;
            }
            _ => {}
        }
    }
}

async fn until(client: &mut Client, view: &mut View, who: &str, done: impl Fn(&View) -> bool) {
    let deadline = Instant::now() + DELIVERY;
    while !done(view) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = client.try_recv(left).await.unwrap_or_else(|| panic!("{who}: not everything within {DELIVERY:?}"));
        view.apply(&frame, who);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_reach_every_node_after_their_message_and_match_the_store() {
    let cluster = Cluster::start("mn_edit_delete", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut members = Vec::new();
    for (node, user, role) in [(0, "t1", "TEACHER"), (1, "lab-1", "LAB"), (2, "lab-2", "LAB")] {
        let mut c = Client::connect(&cluster.nodes[node].url(), &token(user, role)).await;
        c.join(&room).await;
        members.push((format!("{user} on node {node}"), c, View::default()));
    }
    // The teacher posts and at once edits each message on node 0; lab-1 deletes two on node 1.
    let mut sender = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let m = sender.post(&room, &format!("draft {i}")).await;
        let id = m["id"].as_str().unwrap().to_owned();
        sender.ok("editMessage", json!({"requestId": room, "messageId": id, "message": format!("final {i}")})).await;
        ids.push(id);
    }
    let mut moderator = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    for id in [&ids[1], &ids[4]] {
        moderator.ok("deleteMessage", json!({"requestId": room, "messageId": id})).await;
    }
    let mut reader = Client::connect(&cluster.nodes[2].url(), &token("lab-9", "LAB")).await;
    let stored = reader.join(&room).await["messages"].clone();
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), MESSAGES);
    for (who, client, view) in &mut members {
        until(client, view, who, |v| v.order.len() >= MESSAGES && v.changes >= MESSAGES + 2).await;
        assert_eq!(view.order, ids, "{who}: messages in the room's order");
        for m in stored {
            let id = m["id"].as_str().unwrap();
            let live = &view.messages[id];
            for field in ["message", "editedAt", "deletedAt", "deletedBy", "seq"] {
                assert_eq!(live.get(field), m.get(field), "{who}: {field} of {id}");
            }
        }
    }
    let texts: Vec<&Value> = stored.iter().map(|m| &m["message"]).collect();
    let want: Vec<Value> =
        (0..MESSAGES).map(|i| if i == 1 || i == 4 { Value::Null } else { json!(format!("final {i}")) }).collect();
    assert_eq!(texts, want.iter().collect::<Vec<_>>());
    assert!(!json!(stored).to_string().contains("draft"), "an old text is stored: {stored:?}");
}

/// A teacher whose node is killed reconnects to another node with `joinRoom {after}`: the
/// receipts and the deletion made meanwhile on a third node are replayed after the history, as
/// the store holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_node_died_catches_up_the_changes_on_another_node() {
    let mut cluster = Cluster::start("mn_catch_up", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut teacher = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    teacher.join(&room).await;
    let (first, last) = (teacher.post(&room, "one").await, teacher.post(&room, "two").await);
    cluster.nodes[0].kill9().await;
    drop(teacher);

    let mut lab = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    lab.join(&room).await;
    lab.ok("readMessages", json!({"requestId": room, "messages": [first["id"], last["id"]]})).await;
    // A later instant than the reads' (changes are replayed in the order of their times).
    tokio::time::sleep(Duration::from_millis(20)).await;
    lab.ok("deleteMessage", json!({"requestId": room, "messageId": last["id"]})).await;

    let mut back = Client::connect(&cluster.nodes[2].url(), &token("t1", "TEACHER")).await;
    let frames = back.call("joinRoom", json!({"requestId": room, "after": last["id"]})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["messagesDelivered", "messageReads", "messageDeleted", "roomHistory", "ack"], "{frames:?}");
    assert_eq!(frames[3]["data"]["messages"], json!([]));
    assert_eq!(frames[3]["data"]["changesCut"], false);
    let stored = lab.call("history", json!({"requestId": room})).await;
    let stored = &stored[0]["data"]["messages"];
    for f in &frames[0..2] {
        assert_eq!(
            (&f["data"]["userId"], &f["data"]["messages"]),
            (&json!("lab-1"), &json!([first["id"], last["id"]]))
        );
    }
    assert_eq!(frames[0]["data"]["at"], stored[0]["deliveredTo"][0]["at"]);
    assert_eq!(frames[1]["data"]["at"], stored[0]["readBy"][0]["at"]);
    let deleted = &frames[2]["data"];
    assert_eq!(deleted["messageId"], last["id"]);
    assert_eq!((&deleted["deletedAt"], &deleted["deletedBy"]), (&stored[1]["deletedAt"], &stored[1]["deletedBy"]));
}
