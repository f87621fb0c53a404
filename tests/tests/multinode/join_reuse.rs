//! Joins on one node reuse a room's history page (one store read for a burst of joins), and a
//! reused page is never stale: what another node posted or marked between two joins reaches the
//! later joiner once, in its page or live, never missing and never twice (two real nodes, Redis
//! backplane, test MongoDB).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::{Cluster, metric};
use serde_json::{Value, json};

const REUSES: &str = "labchat_join_history_reuses_total";
const DELIVERY: Duration = Duration::from_secs(20);

/// The frames of a `joinRoom`.
async fn join(client: &mut Client, room: &str) -> Vec<Value> {
    let frames = client.call("joinRoom", json!({"requestId": room})).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
    frames
}

/// Adds the live frames up to the message `until`, posted after the join: every earlier event of
/// the room, duplicates included, arrived before it.
async fn read_until(client: &mut Client, frames: &mut Vec<Value>, until: &str) {
    while !frames.iter().any(|f| f["event"] == "message" && f["data"]["message"] == until) {
        frames.push(client.try_recv(DELIVERY).await.unwrap_or_else(|| panic!("no {until:?} within {DELIVERY:?}")));
    }
}

/// The page of a join's frames.
fn page(frames: &[Value]) -> &Vec<Value> {
    let history = frames.iter().find(|f| f["event"] == "roomHistory").unwrap();
    history["data"]["messages"].as_array().unwrap()
}

/// How many times message `id` reached the client: in the page and live.
fn copies(frames: &[Value], id: &Value) -> usize {
    let live = frames.iter().filter(|f| f["event"] == "message" && f["data"]["id"] == *id).count();
    live + page(frames).iter().filter(|m| m["id"] == *id).count()
}

/// Whether the client knows `user` read message `id`: in the page or from a live receipt.
fn knows_read(frames: &[Value], id: &Value, user: &str) -> bool {
    let in_page = page(frames)
        .iter()
        .any(|m| m["id"] == *id && m["readBy"].as_array().is_some_and(|r| r.iter().any(|x| x["userId"] == user)));
    let live = frames.iter().any(|f| {
        f["event"] == "messageReads"
            && f["data"]["userId"] == user
            && f["data"]["messages"].as_array().is_some_and(|ids| ids.contains(id))
    });
    in_page || live
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_page_never_misses_nor_repeats_what_another_node_posted_or_marked() {
    // A long lifetime: whether a page is reused depends on the room's events only.
    let cluster = Cluster::start_with("mn_join_reuse", 2, &["--join-reuse", "10m"]).await;
    let room = cluster.add_request("t1").await.to_string();
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut teacher = Client::connect(&n1.url(), &token("t1", "TEACHER")).await;
    teacher.join(&room).await;
    let mut lab9 = Client::connect(&n1.url(), &token("lab-9", "LAB")).await;
    lab9.join(&room).await;
    let one = teacher.post(&room, "one").await;

    // Two joins on node 0 with nothing of the room in between: the second reuses the page.
    let mut a = Client::connect(&n0.url(), &token("lab-1", "LAB")).await;
    let page_a = a.join(&room).await;
    let mut b = Client::connect(&n0.url(), &token("lab-2", "LAB")).await;
    assert_eq!(b.join(&room).await["messages"], page_a["messages"]);
    assert_eq!(metric(n0.addr(), REUSES).await, 1.0, "{}", cluster.logs());

    // Node 1 posts and marks; both reach node 0 (a sees them) before the next join there.
    let two = lab9.post(&room, "two").await;
    lab9.ok("readMessages", json!({"requestId": room, "messages": [one["id"]]})).await;
    let (mut saw_two, mut saw_read) = (false, false);
    while !(saw_two && saw_read) {
        let f = a.try_recv(DELIVERY).await.expect("node 1's message and receipt reach a member on node 0");
        saw_two |= f["event"] == "message" && f["data"]["id"] == two["id"];
        saw_read |= f["event"] == "messageReads" && f["data"]["userId"] == "lab-9";
    }
    let mut c = Client::connect(&n0.url(), &token("lab-3", "LAB")).await;
    let mut frames = join(&mut c, &room).await;
    teacher.post(&room, "after c").await;
    read_until(&mut c, &mut frames, "after c").await;
    assert_eq!(metric(n0.addr(), REUSES).await, 1.0, "the page read before node 1's changes is not reused");
    assert_eq!(copies(&frames, &two["id"]), 1, "{frames:?}");
    assert!(knows_read(&frames, &one["id"], "lab-9"), "{frames:?}");
    let mut reader = Client::connect(&n1.url(), &token("lab-8", "LAB")).await;
    let stored = reader.call("history", json!({"requestId": room})).await;
    assert_eq!(page(&frames)[..], page(&stored)[..2], "c's page is the room as stored before its join");

    // A race: node 1 posts and marks right before a join on node 0, which may reuse the page of
    // a join made after "after c" reached node 0; either way each change arrives, the message once.
    let mut d = Client::connect(&n0.url(), &token("lab-4", "LAB")).await;
    d.join(&room).await;
    let three = lab9.post(&room, "three").await;
    teacher.ok("readMessages", json!({"requestId": room, "messages": [two["id"]]})).await;
    let mut e = Client::connect(&n0.url(), &token("lab-5", "LAB")).await;
    let mut frames = join(&mut e, &room).await;
    teacher.post(&room, "after e").await;
    read_until(&mut e, &mut frames, "after e").await;
    assert_eq!(copies(&frames, &three["id"]), 1, "{frames:?}");
    assert_eq!(copies(&frames, &two["id"]), 1, "{frames:?}");
    assert!(knows_read(&frames, &two["id"], "t1"), "{frames:?}");
}
