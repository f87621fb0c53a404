//! The Redis URL forms docs/deployment.md ("Redis URL, AUTH and TLS") promises, on a real
//! redis-server: an ACL user with exactly the permissions of the `ACL SETUSER` line of the docs
//! (read from the docs, so they cannot drift) runs the backplane and the presence with no command
//! denied; a wrong password never connects; `rediss://` is refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::{PresenceSettings, RedisBroadcaster, RedisPresence};
use labchat_core::{Broadcaster, ChatStore, Presence};
use labchat_domain::{Role, User, UserId};
use support::{Nodes, Recorder, Redis, room, settings, wait_for};

const PASSWORD: &str = "a-long-password";

/// The `ACL SETUSER labchat …` line of docs/deployment.md.
fn documented_acl() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deployment.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let line = docs.lines().find(|l| l.starts_with("ACL SETUSER labchat ")).expect("the ACL line in the docs");
    line.split_whitespace().map(str::to_owned).collect()
}

async fn admin(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_the_documented_permissions_runs_the_backplane_and_the_presence() {
    let Some(redis) = Redis::start().await else { return };
    let mut admin = admin(&redis).await;
    let acl = documented_acl();
    assert!(acl.iter().any(|w| w == &format!(">{PASSWORD}")), "{acl:?}");
    let mut cmd = redis::cmd(&acl[0]);
    for word in &acl[1..] {
        cmd.arg(word);
    }
    let () = cmd.query_async(&mut admin).await.unwrap();
    let url = redis.url().replace("redis://", &format!("redis://labchat:{PASSWORD}@"));
    let nodes = Nodes::start(&redis, |s| {
        s.url = url.clone();
        s.check_interval = Duration::from_millis(300);
    })
    .await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    nodes.post(&nodes.a, r).await;
    nodes.post(&nodes.b, r).await;
    on_a.expect_seqs("node a", 2, Duration::from_secs(10)).await;
    on_b.expect_seqs("node b", 2, Duration::from_secs(10)).await;
    let presence = RedisPresence::start(
        &labchat_broadcast_redis::RedisSettings { url: url.clone(), ..settings(&redis, "node-a") },
        PresenceSettings { ttl: Duration::from_secs(2), refresh: Duration::from_millis(200) },
        nodes.a.clone(),
    )
    .unwrap();
    let lab = User::new(UserId::parse("lab-1").unwrap(), Role::Lab);
    assert!(presence.enter(r, &lab).await.unwrap());
    assert_eq!(presence.members(r, None, 10).await.unwrap().members.len(), 1);
    assert!(presence.may_type(r, lab.id()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(700)).await; // refreshes and quiet-room checks run
    assert!(presence.exit(r, lab.id()).await.unwrap());
    let denied: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query_async(&mut admin).await.unwrap();
    assert!(denied.is_empty(), "commands denied to the documented ACL user: {denied:?}");
    presence.shutdown();
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_never_connects_and_tls_urls_are_refused_at_start() {
    let Some(redis) = Redis::start().await else { return };
    let mut admin = admin(&redis).await;
    let () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg(PASSWORD).query_async(&mut admin).await.unwrap();
    let store = Arc::new(labchat_memory::MemoryStore::new()) as Arc<dyn ChatStore>;
    let start = |url: String| {
        let s = labchat_broadcast_redis::RedisSettings { url, ..settings(&redis, "auth") };
        RedisBroadcaster::start(s, store.clone())
    };
    let good = start(redis.url().replace("redis://", &format!("redis://:{PASSWORD}@"))).unwrap();
    let bad = start(redis.url().replace("redis://", "redis://:not-the-password@")).unwrap();
    wait_for("the right password to connect", Duration::from_secs(10), || async {
        good.backplane().unwrap().connected
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!bad.backplane().unwrap().connected, "{:?}", bad.backplane());
    let tls = start(redis.url().replace("redis://", "rediss://")).unwrap_err();
    assert!(tls.0.contains("TLS"), "{tls}");
    let r = room();
    good.subscribe(r, Recorder::new(1)).await.unwrap();
    good.shutdown();
    bad.shutdown();
}
