//! The Redis Cluster harness ([`labchat_tests::redis_cluster`]) against the real thing: a
//! failover moves a slot to the old replica, a killed master's replica is promoted, the killed
//! server rejoins, and a key written before each survives it.

#![allow(clippy::unwrap_used)]

use labchat_tests::redis_cluster::{RedisCluster, query};

/// `SET key value` on `key`'s master, replicated to its replica before it returns.
async fn set(cluster: &RedisCluster, key: &str, value: &str) {
    let master = cluster.master_of_slot(cluster.slot_of(key).await).await;
    let ok: String = query(master, redis::cmd("SET").arg(key).arg(value)).await.unwrap();
    assert_eq!(ok, "OK", "SET {key} on {master}");
    let acked: i64 = query(master, redis::cmd("WAIT").arg(1).arg(1000)).await.unwrap();
    assert_eq!(acked, 1, "SET {key} on {master}: acknowledged by its replica");
}

/// `GET key` on `key`'s master.
async fn get(cluster: &RedisCluster, key: &str) -> Option<String> {
    let master = cluster.master_of_slot(cluster.slot_of(key).await).await;
    query(master, redis::cmd("GET").arg(key)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_fails_over_promotes_and_restarts() {
    let mut cluster = RedisCluster::start().await;
    let urls = cluster.urls();
    assert_eq!(urls.len(), 6);
    assert_eq!(cluster.urls_arg(), urls.join(","));

    let mut slots = std::collections::HashSet::new();
    for i in 0..16 {
        slots.insert(cluster.slot_of(&format!("labchat:shard:{{p{i}}}")).await);
    }
    assert_eq!(slots.len(), 16, "16 partition channels are on 16 slots");

    let key = "labchat:shard:{p3}";
    let slot = cluster.slot_of(key).await;
    set(&cluster, key, "before failover").await;
    let master = cluster.master_of_slot(slot).await;
    let replica = cluster.replica_of(master).await;
    assert_ne!(master, replica);

    cluster.failover(slot).await;
    assert_eq!(cluster.master_of_slot(slot).await, replica, "the old replica serves the slot");
    assert_eq!(cluster.replica_of(replica).await, master, "the old master is its replica");
    assert_eq!(get(&cluster, key).await.as_deref(), Some("before failover"));
    set(&cluster, key, "before kill").await;

    let killed = cluster.kill_master(slot).await;
    assert_eq!(killed, replica, "the killed server is the slot's master");
    assert_eq!(cluster.master_of_slot(slot).await, master, "its replica is promoted");
    assert_eq!(get(&cluster, key).await.as_deref(), Some("before kill"));
    let other = "labchat:shard:{p7}";
    let other_master = cluster.master_of_slot(cluster.slot_of(other).await).await;
    query::<String>(other_master, redis::cmd("SET").arg(other).arg("v")).await.unwrap();
    assert_eq!(get(&cluster, other).await.as_deref(), Some("v"));

    cluster.restart(killed).await;
    assert_eq!(cluster.replica_of(master).await, killed, "the restarted server is the new master's replica");
    set(&cluster, key, "after restart").await;
    assert_eq!(get(&cluster, key).await.as_deref(), Some("after restart"));
}
