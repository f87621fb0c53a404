//! The Redis Cluster harness ([`labchat_tests::redis_cluster`]) against the real thing: its key
//! slots are the servers', a failover moves a slot to the old replica, a killed master's replica
//! is promoted, the killed server rejoins, and a key written before each survives it.

#![allow(clippy::unwrap_used)]

use labchat_tests::redis_cluster::{RedisCluster, query};

/// `SET key value` on `key`'s master, replicated to its replica before it returns.
async fn set(cluster: &RedisCluster, key: &str, value: &str) {
    let master = cluster.master_of_slot(RedisCluster::slot_of(key)).await;
    let ok: String = query(master, redis::cmd("SET").arg(key).arg(value)).await.unwrap();
    assert_eq!(ok, "OK", "SET {key} on {master}");
    let acked: i64 = query(master, redis::cmd("WAIT").arg(1).arg(1000)).await.unwrap();
    assert_eq!(acked, 1, "SET {key} on {master}: acknowledged by its replica");
}

/// `GET key` on `key`'s master.
async fn get(cluster: &RedisCluster, key: &str) -> Option<String> {
    let master = cluster.master_of_slot(RedisCluster::slot_of(key)).await;
    query(master, redis::cmd("GET").arg(key)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_computes_slots_fails_over_and_promotes() {
    let mut cluster = RedisCluster::start().await;
    let urls = cluster.urls();
    assert_eq!(urls.len(), 6);
    assert_eq!(cluster.urls_arg(), urls.join(","));

    let some_port = cluster.master_of_slot(0).await;
    let mut keys: Vec<String> = (0..16).map(|i| format!("labchat:part:{{{i}}}")).collect();
    keys.extend(
        ["", "foo", "{}", "{}x", "a{b}c", "foo{}{bar}", "foo{{bar}}zap", "{user1000}.following", "é{ü}"]
            .map(String::from),
    );
    for key in &keys {
        let keyslot: u16 = query(some_port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await.unwrap();
        assert_eq!(RedisCluster::slot_of(key), keyslot, "slot of {key:?}");
    }
    let parts: std::collections::HashSet<u16> = keys[..16].iter().map(|k| RedisCluster::slot_of(k)).collect();
    assert_eq!(parts.len(), 16, "the 16 partition keys are on 16 slots");

    let key = "labchat:part:{3}";
    let slot = RedisCluster::slot_of(key);
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
    let other = "labchat:part:{7}";
    query::<String>(cluster.master_of_slot(RedisCluster::slot_of(other)).await, redis::cmd("SET").arg(other).arg("v"))
        .await
        .unwrap();
    assert_eq!(get(&cluster, other).await.as_deref(), Some("v"));

    cluster.restart(killed).await;
    assert_eq!(cluster.replica_of(master).await, killed, "the restarted server is the new master's replica");
    set(&cluster, key, "after restart").await;
    assert_eq!(get(&cluster, key).await.as_deref(), Some("after restart"));
}
