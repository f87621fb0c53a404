//! A Redis fault healed (a restart with nobody posting or with 10 posts meanwhile, the
//! publishers' or the subscribers' connections cut, a 3 s `CLIENT PAUSE`), then ONE post: it
//! reaches the member on the other node live; so do the receipts and inbox updates made during
//! the outage, and an edit or a delete that is the first frame after the heal. Two real `labchat`
//! processes run with a quiet-room check of 60 s, so a delivery within 5 s cannot come from that
//! check (docs/deployment.md, "What a node failed to publish").
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- heal::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};

/// Far shorter than the quiet-room check of the nodes (60 s).
const LIVE: Duration = Duration::from_secs(5);

async fn cluster(name: &str) -> Cluster {
    Cluster::start_with(name, 2, &["--backplane-check-interval", "60s"]).await
}

/// Waits for the next `message` of the room on `member`, and returns its text.
async fn next_message(member: &mut Client, room: &str, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + LIVE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame: Value = member.try_recv(left).await.unwrap_or_else(|| panic!("{what}: not within {LIVE:?}"));
        if frame["event"] == "message" && frame["data"]["requestId"] == room {
            return frame["data"]["message"].as_str().unwrap().to_owned();
        }
    }
}

/// The data of the next `event` frame on `c` within [`LIVE`] (other frames are skipped).
async fn next_event(c: &mut Client, event: &str, what: &str) -> Value {
    let deadline = tokio::time::Instant::now() + LIVE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame: Value = c.try_recv(left).await.unwrap_or_else(|| panic!("{what}: no {event} within {LIVE:?}"));
        if frame["event"] == event {
            return frame["data"].clone();
        }
    }
}

/// One room, a sender on node 0 (joined) and a member on node 1 who already got one message
/// live.
async fn room_with_two_nodes(cluster: &Cluster) -> (String, Client, Client) {
    let (room, sender, member, _) = room_with_a_message(cluster).await;
    (room, sender, member)
}

/// As [`room_with_two_nodes`], also returning that message (the sender's ack).
async fn room_with_a_message(cluster: &Cluster) -> (String, Client, Client, Value) {
    let room = cluster.add_request("t1").await.to_string();
    let mut member = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    member.join(&room).await;
    let mut sender = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    sender.join(&room).await;
    let before = sender.post(&room, "before").await;
    assert_eq!(next_message(&mut member, &room, "the post before the fault").await, "before");
    (room, sender, member, before)
}

/// Kills Redis (`kill -9`) and waits until both nodes report the backplane down.
async fn kill_redis(cluster: &mut Cluster) {
    cluster.redis_mut().kill().await;
    for node in &cluster.nodes {
        node.wait_backplane(false, LIVE).await;
    }
}

async fn both_connected(cluster: &Cluster) {
    for node in &cluster.nodes {
        node.wait_backplane(true, LIVE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_quiet_redis_restart_the_first_post_reaches_the_other_node_live() {
    let mut cluster = cluster("mn_heal_restart").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    kill_redis(&mut cluster).await;
    cluster.redis_mut().restart().await;
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the restart").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_publishers_connections_are_cut_the_first_post_reaches_the_other_node_live() {
    let cluster = cluster("mn_heal_kill_normal").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    assert!(cluster.redis().kill_normal_clients().await.is_some_and(|n| n >= 2));
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the cut").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_subscribers_connections_are_cut_the_first_post_reaches_the_other_node_live() {
    let cluster = cluster("mn_heal_kill_pubsub").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    assert!(cluster.redis().kill_pubsub_clients().await.is_some_and(|n| n >= 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the cut").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_busy_redis_restart_the_outages_posts_receipts_and_inbox_updates_arrive_live() {
    let mut cluster = cluster("mn_heal_busy").await;
    let (room, mut sender, mut member, before) = room_with_a_message(&cluster).await;
    // The sender's phone, on node 1, listens to the inbox.
    let mut phone = Client::connect(&cluster.nodes[1].url(), &token("t1", "TEACHER")).await;
    phone.ok("subscribeInbox", json!({})).await;
    kill_redis(&mut cluster).await;
    for i in 1..=10 {
        sender.post(&room, &format!("busy {i}")).await;
    }
    member.ok("readMessages", json!({"requestId": room, "messages": [before["id"]]})).await;
    cluster.redis_mut().restart().await;
    both_connected(&cluster).await;
    for i in 1..=10 {
        assert_eq!(next_message(&mut member, &room, "a post of the outage").await, format!("busy {i}"));
    }
    let read = next_event(&mut sender, "messageReads", "the read of the outage").await;
    assert_eq!((read["userId"].clone(), read["messages"].clone()), (json!("lab-1"), json!([before["id"]])));
    loop {
        let update = next_event(&mut phone, "inboxUpdate", "the inbox update of the outage's last post").await;
        if update["lastMessage"]["message"] == "busy 10" {
            break;
        }
    }
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the restart").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_three_second_client_pause_the_first_post_reaches_the_other_node_live() {
    let cluster = cluster("mn_heal_pause").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    assert!(cluster.redis().pause(3000).await, "CLIENT PAUSE 3000");
    sender.post(&room, "during").await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    both_connected(&cluster).await;
    assert_eq!(next_message(&mut member, &room, "the post during the pause").await, "during");
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the pause").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_quiet_heal_an_edit_or_a_delete_as_the_first_frame_reaches_the_other_node_live() {
    let mut cluster = cluster("mn_heal_edit").await;
    let (room, mut sender, mut member, before) = room_with_a_message(&cluster).await;
    kill_redis(&mut cluster).await;
    cluster.redis_mut().restart().await;
    both_connected(&cluster).await;
    let id = before["id"].clone();
    sender.ok("editMessage", json!({"requestId": room, "messageId": id, "message": "edited"})).await;
    let edited = next_event(&mut member, "messageEdited", "the edit after the restart").await;
    assert_eq!((edited["messageId"].clone(), edited["message"].clone()), (id.clone(), json!("edited")), "{edited}");
    kill_redis(&mut cluster).await;
    cluster.redis_mut().restart().await;
    both_connected(&cluster).await;
    sender.ok("deleteMessage", json!({"requestId": room, "messageId": id})).await;
    let deleted = next_event(&mut member, "messageDeleted", "the delete after the restart").await;
    assert_eq!(deleted["messageId"], id, "{deleted}");
}
