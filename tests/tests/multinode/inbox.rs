//! Live inbox updates across nodes: real `labchat` processes (the debug binary) on one test
//! MongoDB database and one redis-server; a post and a read on one node reach the inbox
//! subscribers of another, and only those who may act on the room: with nodes writing envelope
//! version 2 (inbox notices on `labchat:inbox`), version 3 (on the rooms' audience channels), and
//! one of each (the last step of a rolling upgrade).
//!
//! Needs `LABCHAT_TEST_MONGO_URI`, the `labchat` binary and `redis-server`: run it with
//! `scripts/test.sh -p labchat-tests --test multinode -- inbox::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};

use crate::backplane_versions::{SECRET, SecretFile};

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
    post_and_read_across(Cluster::start("mn_inbox", 2).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_inbox_notices_on_audience_channels_and_with_both_kinds_of_node() {
    let secret = SecretFile::new("inbox", SECRET);
    let v3 = ["--backplane-version", "3", "--backplane-secret-file", secret.arg()];
    let v2 = ["--backplane-version", "2", "--backplane-secret-file", secret.arg()];
    post_and_read_across(Cluster::start_each("mn_inbox_v3", &[&v3, &v3]).await).await;
    // Node A (the subscribers') writes 3, node B (the actors') still writes 2, and the reverse.
    post_and_read_across(Cluster::start_each("mn_inbox_v3_v2", &[&v3, &v2]).await).await;
    post_and_read_across(Cluster::start_each("mn_inbox_v2_v3", &[&v2, &v3]).await).await;
}

/// t1 (two connections) and t2 subscribe on node A; the posts and reads are made on node B.
async fn post_and_read_across(cluster: Cluster) {
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
