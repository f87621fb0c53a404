//! The scale workload of labchat-bench, small: 2,000 connections over three real nodes (380
//! rooms of 5 and one room of 100 spread over the nodes), messages flowing, and `kill -9` of one
//! node; its clients reconnect to the others with full-jitter backoff and catch up with
//! `joinRoom {after}`. Every client's `seq`s are checked against the store's last `seq` of its
//! room: no gap, no duplicate, and every client back. No timing is asserted (the figures come
//! from `scripts/scale.sh`).
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- scale::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_bench::{ScaleOptions, Target, scale};
use labchat_tests::harness::SECRET;
use labchat_tests::multinode::Cluster;

const SMALL_ROOMS: usize = 380;
const BIG_MEMBERS: usize = 100;
const VICTIM: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_its_clients_come_back_elsewhere_with_no_gap_and_no_duplicate() {
    let cluster = Cluster::start("mn_scale", 3).await;
    let mut rooms = Vec::with_capacity(SMALL_ROOMS + 1);
    for _ in 0..=SMALL_ROOMS {
        rooms.push(cluster.add_request("t-scale").await.to_string());
    }
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let mut target =
        Target::new(urls[0].clone(), SECRET.to_vec(), 0).unwrap().with_more_urls(urls[1..].to_vec()).unwrap();
    target.rooms = rooms;
    let pid = cluster.nodes[VICTIM].pid().expect("the node runs");
    let kill = Box::pin(async move {
        let status = tokio::process::Command::new("kill").args(["-9", &pid.to_string()]).status().await;
        assert!(status.is_ok_and(|s| s.success()), "kill -9 {pid}");
    });
    let opts = ScaleOptions {
        small_rooms: SMALL_ROOMS,
        small_members: 5,
        big_members: BIG_MEMBERS,
        shard: 0,
        shards: 1,
        concurrency: 32,
        sources: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        traffic_at: None,
        idle: Duration::ZERO,
        fanout_messages: 10,
        fanout_every: Duration::from_millis(200),
        rate: 50.0,
        steady: Duration::from_secs(3),
        victim: Some((VICTIM, kill)),
        storm_timeout: Duration::from_secs(60),
        open_timeout: Duration::from_secs(60),
        settle: Duration::from_secs(2),
        room_offset: 0,
    };
    let r = scale(&target, opts).await.unwrap();
    let report = serde_json::to_string_pretty(&r).unwrap();
    assert_eq!(r.connections, 2_000, "{report}");
    assert_eq!(r.opened, 2_000, "every connection opened and joined: {report}");
    assert!(r.lost >= 600, "about a third of the clients were on the killed node: {report}");
    assert_eq!(r.back, r.lost, "every client of the killed node came back: {report}");
    assert_eq!(r.rooms_checked, SMALL_ROOMS + 1, "every room's last seq read from the store: {report}");
    assert!(r.posted > 0 && r.fanout_messages > 0, "messages flowed: {report}");
    assert_eq!(r.not_caught_up_at_end, 0, "every client joined and caught up at the end: {report}");
    assert_eq!(r.gaps, 0, "no client misses a message the store holds: {report}");
    assert_eq!(r.duplicates, 0, "no client gets a message twice: {report}");
    assert_eq!(r.fanout_missing, 0, "every fan-out message reached every member of the large room: {report}");
}
