//! Live inbox updates across nodes: real `labchat` processes (the debug binary) on one test
//! MongoDB database and one redis-server; a post and a read on one node reach the inbox
//! subscribers of another, and only those who may act on the room.
//!
//! Needs `LABCHAT_TEST_MONGO_URI`, the `labchat` binary and `redis-server`: run it with
//! `scripts/test.sh -p labchat-tests --test multinode -- inbox::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};

/// How long an update may take to cross nodes.
const DELIVERY: Duration = Duration::from_secs(10);
/// How long to listen for an update that must not come.
const QUIET: Duration = Duration::from_millis(500);

/// The next `inboxUpdate` of `c` within [`DELIVERY`] (other frames are skipped).
async fn next_update(c: &mut Client, what: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = c.try_recv(left).await.unwrap_or_else(|| panic!("{what}: no inboxUpdate within {DELIVERY:?}"));
        if frame["event"] == "inboxUpdate" {
            return frame["data"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_and_a_read_on_one_node_update_the_inbox_on_another() {
    let cluster = Cluster::start("mn_inbox", 2).await;
    let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let room = cluster.add_request("t1").await.to_hex();
    let other = cluster.add_request("t2").await.to_hex();

    // t1's phone listens on node A; t2 listens on node A too; everyone else acts on node B.
    let mut phone = Client::connect(&a, &token("t1", "TEACHER")).await;
    let mut t2 = Client::connect(&a, &token("t2", "TEACHER")).await;
    phone.ok("subscribeInbox", json!({})).await;
    t2.ok("subscribeInbox", json!({})).await;
    let mut laptop = Client::connect(&b, &token("t1", "TEACHER")).await;
    let mut lab = Client::connect(&b, &token("lab-1", "LAB")).await;

    let posted = lab.post(&room, "the samples are ready").await;
    let update = next_update(&mut phone, "a post on the other node").await;
    assert_eq!(
        update,
        json!({"requestId": room, "lastMessage": posted, "unread": 1, "lastActivityAt": posted["createdAt"]}),
        "{}",
        cluster.logs()
    );

    laptop.ok("readMessages", json!({"requestId": room, "messages": [posted["id"]]})).await;
    let update = next_update(&mut phone, "a read on the other node").await;
    assert_eq!((update["requestId"].clone(), update["unread"].clone()), (json!(room), json!(0)));
    assert_eq!(update["lastMessage"]["readBy"][0]["userId"], "t1");

    // t2 heard nothing of t1's room, and hears of its own.
    let theirs = lab.post(&other, "and yours").await;
    let update = next_update(&mut t2, "a post in t2's room").await;
    assert_eq!(
        (update["requestId"].clone(), update["lastMessage"]["id"].clone()),
        (json!(other), theirs["id"].clone())
    );
    phone.expect_silence(QUIET).await;
    t2.expect_silence(QUIET).await;
}
