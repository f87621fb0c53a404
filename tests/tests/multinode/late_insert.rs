//! A post answered as failed because the store did not answer in time, but written by the store
//! afterwards, reaches the room's member on the other node live although nothing is posted after
//! it: the node that took the post reads it back and publishes it (labchat-core's
//! `chat/follow_up.rs`). Both nodes run with a quiet-room check of 60 s, so a delivery within
//! [`LIVE`] cannot come from that check.
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- late_insert::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::mongo::{self, TcpProxy};
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};

/// Far shorter than the quiet-room check of the nodes (60 s), longer than the first read-back
/// (2 s after the failure).
const LIVE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_answered_unavailable_but_stored_later_reaches_the_other_node_live() {
    // Node 0 reaches the store through a proxy that can hold what it sends.
    let proxy = TcpProxy::start(mongo::test_mongo_host()).await;
    let uri = format!("mongodb://{}/?directConnection=true", proxy.addr());
    let quiet = ["--backplane-check-interval", "60s"];
    let node0: Vec<&str> = quiet.iter().copied().chain(["--mongo-uri", &uri, "--store-timeout", "1s"]).collect();
    let cluster = Cluster::start_each("mn_late_insert", &[&node0, &quiet]).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut member = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    member.join(&room).await;
    let mut sender = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    sender.join(&room).await;
    // The room's last seq known to node 0's store (so an insert is one round trip), its pool warm.
    sender.post(&room, "before").await;
    let first = next_message(&mut member, &room).await;
    assert_eq!(first["message"], "before");

    // The insert reaches the store after node 0 gave up on it (1 s): the sender is told it failed.
    proxy.slow_down(Duration::from_millis(1_500));
    let data = json!({"requestId": room, "message": "late", "clientMessageId": "late-1"});
    let error = sender.err("message", data).await;
    assert_eq!(error["code"], "UNAVAILABLE", "{error}");
    proxy.slow_down(Duration::ZERO);

    let got = next_message(&mut member, &room).await;
    assert_eq!(got["message"], "late");
    assert_eq!(got["seq"], 2, "the store gave it seq 2: {got}");
    // Published once: no second copy follows.
    while let Some(frame) = member.try_recv(Duration::from_secs(1)).await {
        assert_ne!(frame["event"], "message", "a second copy: {frame}");
    }
}

/// The data of the next `message` of `room` on `member` within [`LIVE`].
async fn next_message(member: &mut Client, room: &str) -> Value {
    let deadline = tokio::time::Instant::now() + LIVE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = member.try_recv(left).await.unwrap_or_else(|| panic!("no message on node 1 within {LIVE:?}"));
        if frame["event"] == "message" && frame["data"]["requestId"] == room {
            return frame["data"].clone();
        }
    }
}
