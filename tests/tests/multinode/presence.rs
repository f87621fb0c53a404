//! Presence and typing across nodes: real `labchat` processes (the debug binary) on one test
//! MongoDB database and one redis-server (`labchat_tests::multinode`).
//!
//! Needs `LABCHAT_TEST_MONGO_URI`, the `labchat` binary and `redis-server`: run it with
//! `scripts/test.sh -p labchat-tests --test multinode -- presence::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long an event may take to cross nodes.
const DELIVERY: Duration = Duration::from_secs(20);
/// The contract: a dead node's members are announced gone within this.
const DEAD_NODE: Duration = Duration::from_secs(30);

async fn connect(url: &str, user: &str, role: &str) -> Client {
    Client::connect(url, &token(user, role)).await.seeing_presence()
}

fn members(history: &Value) -> Vec<String> {
    let mut m: Vec<String> =
        history["members"].as_array().unwrap().iter().map(|m| m["userId"].as_str().unwrap().to_owned()).collect();
    m.sort();
    m
}

/// The next frame of `c` within `wait`, which must be `event`; returns its data.
async fn next(c: &mut Client, event: &str, wait: Duration, cluster: &Cluster) -> Value {
    let Some(frame) = c.try_recv(wait).await else {
        panic!("no {event} within {wait:?}; logs:\n{}", cluster.logs());
    };
    assert_eq!(frame["event"], event, "{frame}");
    frame["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_are_seen_on_another_node() {
    let cluster = Cluster::start("mn_presence", 2).await;
    let room = cluster.add_request("t1").await.to_hex();
    let (url0, url1) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let mut t = connect(&url0, "t1", "TEACHER").await;
    assert_eq!(members(&t.join(&room).await), ["t1"]);
    let mut lab_a = connect(&url1, "lab-1", "LAB").await;
    assert_eq!(members(&lab_a.join(&room).await), ["lab-1", "t1"], "members of every node");
    assert_eq!(
        next(&mut t, "memberJoined", DELIVERY, &cluster).await,
        json!({"requestId": room, "userId": "lab-1", "role": "LAB"})
    );

    // lab-1's second tab, on t's node: no second memberJoined (the typing that follows is the
    // next frame t receives).
    let mut lab_b = connect(&url0, "lab-1", "LAB").await;
    lab_b.join(&room).await;
    lab_a.ok("typing", json!({"requestId": room})).await;
    assert_eq!(
        next(&mut t, "typing", DELIVERY, &cluster).await,
        json!({"requestId": room, "userId": "lab-1", "role": "LAB"})
    );
    // The typist's other tab, on t's node, got nothing of it.
    let frames = lab_b.call("history", json!({"requestId": room})).await;
    assert_eq!(frames.len(), 2, "lab-1's other tab: {frames:?}");

    // t types on node 0: lab-1 hears it on node 1, once (the second is throttled across nodes).
    t.ok("typing", json!({"requestId": room})).await;
    let mut t_other = connect(&url1, "t1", "TEACHER").await;
    t_other.ok("typing", json!({"requestId": room})).await;
    assert_eq!(next(&mut lab_a, "typing", DELIVERY, &cluster).await["userId"], "t1");
    assert!(lab_a.try_recv(Duration::from_millis(500)).await.is_none(), "a second typing within 2 s crossed");

    // lab-1 leaves on node 1 (still there on node 0), then closes on node 0: one memberLeft.
    lab_a.ok("leaveRoom", json!({"requestId": room})).await;
    lab_b.ws.close(None).await.unwrap();
    assert_eq!(next(&mut t, "memberLeft", DELIVERY, &cluster).await, json!({"requestId": room, "userId": "lab-1"}));
    assert!(t.try_recv(Duration::from_secs(1)).await.is_none(), "one memberLeft only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_of_a_node_killed_with_kill_9_are_announced_gone_on_another_node() {
    let mut cluster = Cluster::start("mn_presence_kill", 2).await;
    let room = cluster.add_request("t1").await.to_hex();
    let (url0, url1) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let mut t = connect(&url0, "t1", "TEACHER").await;
    t.join(&room).await;
    let mut lab = connect(&url1, "lab-1", "LAB").await;
    lab.join(&room).await;
    assert_eq!(next(&mut t, "memberJoined", DELIVERY, &cluster).await["userId"], "lab-1");

    let killed = Instant::now();
    cluster.nodes[1].kill9().await;
    drop(lab);
    let left = next(&mut t, "memberLeft", DEAD_NODE, &cluster).await;
    assert_eq!(left, json!({"requestId": room, "userId": "lab-1"}));
    let took = killed.elapsed();
    assert!(took < DEAD_NODE, "memberLeft after {took:?}");
    // Gone from the members too, and announced once.
    let mut t2 = connect(&url0, "t1", "TEACHER").await;
    assert_eq!(members(&t2.join(&room).await), ["t1"]);
    assert!(t.try_recv(Duration::from_secs(6)).await.is_none(), "memberLeft once: a later sweep says nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_joins_leaves_posts_and_typing_still_work_from_the_node_s_own_view() {
    let mut cluster = Cluster::start("mn_presence_redis_down", 2).await;
    let room = cluster.add_request("t1").await.to_hex();
    let url0 = cluster.nodes[0].url();
    let mut t = connect(&url0, "t1", "TEACHER").await;
    t.join(&room).await;
    cluster.redis_mut().kill().await;
    cluster.nodes[0].wait_backplane(false, DELIVERY).await;

    let mut lab = connect(&url0, "lab-1", "LAB").await;
    assert_eq!(members(&lab.join(&room).await), ["lab-1", "t1"], "the members of this node");
    assert_eq!(next(&mut t, "memberJoined", DELIVERY, &cluster).await["userId"], "lab-1");
    lab.ok("typing", json!({"requestId": room})).await;
    assert_eq!(next(&mut t, "typing", DELIVERY, &cluster).await["userId"], "lab-1");
    let posted = lab.post(&room, "stored without redis").await;
    assert_eq!(next(&mut t, "message", DELIVERY, &cluster).await["id"], posted["id"]);
    lab.ok("leaveRoom", json!({"requestId": room})).await;
    assert_eq!(next(&mut t, "memberLeft", DELIVERY, &cluster).await["userId"], "lab-1");
    cluster.redis_mut().restart().await;
}
