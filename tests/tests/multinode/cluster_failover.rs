//! The backplane on a real Redis Cluster (three masters, three replicas) through its failovers:
//! two real `labchat` processes (`--redis-cluster`), rooms whose partition channels lie on every
//! master, a member of each room on the other node. After a `CLUSTER FAILOVER` with nothing
//! flowing, the first post of every room reaches its member; while posts flow, a master is
//! killed (`kill -9`) and its replica promoted, and every member gets every message once, in
//! order, with no gap; then a quiet post again. The nodes' quiet-room check is 60 s, so a
//! delivery within [`LIVE`] cannot come from it: it comes from the shard subscriptions, kept by
//! the node across the failovers (docs/deployment.md, "Past one Redis").
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- cluster_failover::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use labchat_broadcast_redis::Topology;
use labchat_tests::multinode::Cluster;
use labchat_tests::redis_cluster::RedisCluster;

use crate::chat::{Member, dense, post_many, seqs};

/// Far shorter than the nodes' quiet-room check (60 s).
const LIVE: Duration = Duration::from_secs(10);

/// Rooms per master of the cluster.
const ROOMS_PER_MASTER: usize = 2;

/// Posts per room while a master is killed.
const BUSY_POSTS: usize = 25;

/// The hash slot of a room's channel.
async fn slot(redis: &RedisCluster, room: &str) -> u16 {
    redis.slot_of(&Topology::Cluster { nodes: Vec::new() }.room_channel(room.parse().unwrap())).await
}

/// Requests of the teacher `t1` until each master owns the channels of [`ROOMS_PER_MASTER`]
/// rooms; returns them with their slots.
async fn rooms_on_every_master(cluster: &mut Cluster) -> Vec<(String, u16)> {
    let mut by_master: BTreeMap<u16, Vec<(String, u16)>> = BTreeMap::new();
    for _ in 0..300 {
        let room = cluster.add_request("t1").await.to_string();
        let slot = slot(cluster.redis_cluster(), &room).await;
        let master = cluster.redis_cluster().master_of_slot(slot).await;
        let rooms = by_master.entry(master).or_default();
        if rooms.len() < ROOMS_PER_MASTER {
            rooms.push((room, slot));
        }
        if by_master.len() == 3 && by_master.values().all(|r| r.len() == ROOMS_PER_MASTER) {
            return by_master.into_values().flatten().collect();
        }
    }
    panic!("300 requests did not put {ROOMS_PER_MASTER} rooms on each master: {by_master:?}");
}

/// Posts one message in every room from node 0; every member must get it within [`LIVE`].
async fn one_post_each(cluster: &Cluster, rooms: &[(String, u16)], members: &mut [Member], what: &str) {
    for (room, _) in rooms {
        post_many(cluster.nodes[0].url(), "lab-sender", "LAB", room.clone(), what.to_owned(), 1).await;
    }
    for (m, (room, slot)) in members.iter_mut().zip(rooms) {
        let n = m.messages.len() + 1;
        m.until(LIVE, &format!("{what}: room {room} (slot {slot})"), |m| m.messages.len() >= n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_every_master_stay_live_through_a_failover_and_a_master_killed_under_load() {
    let mut cluster =
        Cluster::start_on_redis_cluster("mn_cluster_failover", 2, &["--backplane-check-interval", "60s"]).await;
    let rooms = rooms_on_every_master(&mut cluster).await;
    let mut members = Vec::new();
    for (i, (room, _)) in rooms.iter().enumerate() {
        members.push(Member::join(&cluster.nodes[1].url(), &format!("lab-m{i}"), "LAB", room).await);
    }
    one_post_each(&cluster, &rooms, &mut members, "before").await;

    // A failover with nothing flowing, then one post per room.
    let (_, failed_over) = rooms[0];
    cluster.redis_cluster().failover(failed_over).await;
    one_post_each(&cluster, &rooms, &mut members, "after the failover").await;

    // A master killed while every room posts.
    let (_, killed) = rooms[rooms.len() - 1];
    let url = cluster.nodes[0].url();
    let posting = futures_util::future::join_all(
        rooms
            .iter()
            .map(|(room, _)| post_many(url.clone(), "lab-sender", "LAB", room.clone(), "busy".to_owned(), BUSY_POSTS)),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.redis_cluster().kill_master(killed).await
    };
    let (acks, _) = tokio::join!(posting, kill);
    assert!(acks.iter().all(|a| a.len() == BUSY_POSTS), "every post was acknowledged");
    let total = 2 + BUSY_POSTS;
    for (m, (room, slot)) in members.iter_mut().zip(&rooms) {
        let got = m.messages(total).await.to_vec();
        assert_eq!(seqs(&got), dense(total), "room {room} (slot {slot}): every message once, in order");
    }
    one_post_each(&cluster, &rooms, &mut members, "after the kill").await;
}
