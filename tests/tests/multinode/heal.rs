//! A Redis fault healed with nobody posting, then ONE post: it reaches the member on the other
//! node live. Two real `labchat` processes run with a quiet-room check of 60 s, so a delivery
//! within 5 s cannot come from that check (docs/deployment.md, "What a node failed to publish").
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- heal::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::Value;

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

/// One room, a sender on node 0 and a member on node 1 who already got one message live.
async fn room_with_two_nodes(cluster: &Cluster) -> (String, Client, Client) {
    let room = cluster.add_request("t1").await.to_string();
    let mut member = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    member.join(&room).await;
    let mut sender = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    sender.post(&room, "before").await;
    assert_eq!(next_message(&mut member, &room, "the post before the fault").await, "before");
    (room, sender, member)
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
    cluster.redis.kill().await;
    for node in &cluster.nodes {
        node.wait_backplane(false, LIVE).await;
    }
    cluster.redis.restart().await;
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the restart").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_publishers_connections_are_cut_the_first_post_reaches_the_other_node_live() {
    let cluster = cluster("mn_heal_kill_normal").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    assert!(cluster.redis.kill_normal_clients().await.is_some_and(|n| n >= 2));
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the cut").await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_subscribers_connections_are_cut_the_first_post_reaches_the_other_node_live() {
    let cluster = cluster("mn_heal_kill_pubsub").await;
    let (room, mut sender, mut member) = room_with_two_nodes(&cluster).await;
    assert!(cluster.redis.kill_pubsub_clients().await.is_some_and(|n| n >= 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    both_connected(&cluster).await;
    sender.post(&room, "after").await;
    assert_eq!(next_message(&mut member, &room, "the first post after the cut").await, "after");
}
