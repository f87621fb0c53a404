//! The node's Redis subscriptions follow its local sinks, a node starts with Redis down, and
//! start() refuses what it cannot work with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::{RedisBroadcaster, RedisSettings};
use labchat_core::{Broadcaster, ChatStore, Hooked, RoomSink, SinkId};
use labchat_domain::RequestId;
use labchat_memory::MemoryStore;
use support::flaky::{FailHistory, failing_history};
use support::gate::Gate;
use support::{Nodes, Recorder, Redis, room, settings, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

/// How many clients are subscribed to the room's channel.
async fn subscribers(redis: &Redis, r: RequestId) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("labchat:room:{}", r.to_hex());
    let (_, n): (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut c).await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_subscribed_from_the_first_local_sink_until_the_last_leaves() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |_| {}).await;
    let r = room();
    assert_eq!(subscribers(&redis, r).await, 0);
    // subscribe() returns once Redis confirmed the subscription.
    nodes.a.subscribe(r, Recorder::new(1)).await.unwrap();
    assert_eq!(subscribers(&redis, r).await, 1);
    nodes.a.subscribe(r, Recorder::new(2)).await.unwrap();
    nodes.b.subscribe(r, Recorder::new(3)).await.unwrap();
    assert_eq!(subscribers(&redis, r).await, 2, "one subscription per node, not per sink");
    nodes.a.unsubscribe(r, SinkId(1)).await.unwrap();
    nodes.b.unsubscribe(r, SinkId(3)).await.unwrap();
    wait_for("node b to unsubscribe", LIMIT, || async { subscribers(&redis, r).await == 1 }).await;
    nodes.a.unsubscribe(r, SinkId(2)).await.unwrap();
    // Unknown sinks and rooms are ignored.
    nodes.a.unsubscribe(r, SinkId(2)).await.unwrap();
    nodes.a.unsubscribe(room(), SinkId(9)).await.unwrap();
    wait_for("node a to unsubscribe", LIMIT, || async { subscribers(&redis, r).await == 0 }).await;
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_redis_is_down_serves_locally_then_joins_the_backplane() {
    let Some(mut redis) = Redis::start().await else { return };
    redis.kill().await;
    let store = Arc::new(MemoryStore::new());
    let a = RedisBroadcaster::start(settings(&redis, "node-a"), store.clone() as Arc<dyn ChatStore>).unwrap();
    let status = a.backplane().unwrap();
    assert!(!status.connected, "{status:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = a.backplane().unwrap();
    assert!(!status.connected && status.detail.contains("redis"), "{status:?}");
    let r = room();
    let on_a = Recorder::new(1);
    a.subscribe(r, on_a.clone()).await.unwrap();
    let nodes = Nodes {
        store,
        a,
        b: RedisBroadcaster::start(settings(&redis, "node-b"), Arc::new(MemoryStore::new())).unwrap(),
    };
    nodes.post(&nodes.a, r).await;
    on_a.expect_seqs("node a, redis down", 1, LIMIT).await;
    redis.restart().await;
    wait_for("node a to connect", LIMIT, || async { nodes.a.backplane().unwrap().connected }).await;
    // The room asked for while Redis was down is subscribed at the connection.
    assert_eq!(subscribers(&redis, r).await, 1);
    // A third node, sharing the store, posts: node a hears it through Redis.
    let c = RedisBroadcaster::start(settings(&redis, "node-c"), nodes.store.clone() as Arc<dyn ChatStore>).unwrap();
    wait_for("node c to connect", LIMIT, || async { c.backplane().unwrap().connected }).await;
    nodes.post(&c, r).await;
    on_a.expect_seqs("node a", 2, LIMIT).await;
    c.shutdown();
    nodes.shutdown();
    // After shutdown the backplane reports down.
    wait_for("node a to report stopped", LIMIT, || async { !nodes.a.backplane().unwrap().connected }).await;
}

/// Two nodes over one store, node b behind a gate and reading the store through a hook that can
/// fail its history reads, the quiet-room check kept away (10 minutes) and an operation timeout
/// of 1 s.
async fn behind_a_gate(redis: &Redis, gate: &Gate) -> (Nodes, Arc<Hooked<FailHistory>>) {
    let store = Arc::new(MemoryStore::new());
    let hooked = failing_history(store.clone());
    let start = |id: &str, url: String, s: Arc<dyn ChatStore>| {
        let mut settings = settings(redis, id);
        settings.url = url;
        settings.op_timeout = Duration::from_secs(1);
        settings.check_interval = Duration::from_secs(600);
        RedisBroadcaster::start(settings, s).unwrap()
    };
    let nodes = Nodes {
        a: start("node-a", redis.url(), store.clone()),
        b: start("node-b", gate.url(), hooked.clone()),
        store: store.clone(),
    };
    nodes.wait_connected(true).await;
    (nodes, hooked)
}

/// Subscribes a recording sink (ids from `first`) to each of `n` new rooms on `node`, all at once.
async fn subscribe_all(node: &RedisBroadcaster, n: u64, first: u64) -> Vec<(RequestId, Arc<Recorder>)> {
    let rooms: Vec<(RequestId, Arc<Recorder>)> = (first..first + n).map(|i| (room(), Recorder::new(i))).collect();
    let results = futures_util::future::join_all(rooms.iter().map(|(r, sink)| node.subscribe(*r, sink.clone()))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    rooms
}

/// Slows each command of `node` to 100 ms and queues 30 UNSUBSCRIBEs (30 rooms subscribed, then
/// left): whatever the node asks Redis next waits about 3 s behind them.
async fn keep_the_link_busy(node: &RedisBroadcaster, gate: &Gate) {
    let others = subscribe_all(node, 30, 100).await;
    gate.slow(Duration::from_millis(100));
    for (r, sink) in &others {
        node.unsubscribe(*r, sink.id()).await.unwrap();
    }
}

/// Rooms asked for together while the link is busy are subscribed in one command: with each
/// command taking 100 ms to reach Redis, 30 rooms one SUBSCRIBE each would need 3 s, and all
/// are confirmed within `subscribe`'s wait (the 1 s operation timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_asked_for_together_are_subscribed_in_one_command() {
    let Some(redis) = Redis::start().await else { return };
    let gate = Gate::start(redis.port).await;
    let (nodes, _) = behind_a_gate(&redis, &gate).await;
    gate.slow(Duration::from_millis(100));
    let rooms = subscribe_all(&nodes.b, 30, 1).await;
    for (r, _) in &rooms {
        assert_eq!(subscribers(&redis, *r).await, 1, "every room confirmed when subscribe returned");
    }
    nodes.shutdown();
}

/// A room's subscription confirmed later than the operation timeout (its SUBSCRIBE waits in
/// turn behind other commands of the node, as in a join storm): `subscribe` returns and the
/// room starts from the store's latest while Redis does not deliver its channel to the node
/// yet. A message stored and published in that window reaches no subscriber there, and nothing
/// later shows it; the node fills the room once Redis confirms. Only that fill can deliver the
/// message within the limit (no gap to wait for, the quiet-room check 10 minutes away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_subscription_was_confirmed_after_the_timeout_is_filled_once_it_is() {
    let Some(redis) = Redis::start().await else { return };
    let gate = Gate::start(redis.port).await;
    let (nodes, _) = behind_a_gate(&redis, &gate).await;
    keep_the_link_busy(&nodes.b, &gate).await;
    let (r, on_b) = (room(), Recorder::new(1));
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    nodes.post(&nodes.a, r).await;
    assert_eq!(subscribers(&redis, r).await, 0, "published before node b's subscription was active");
    on_b.expect_seqs("node b, once Redis confirmed the room", 1, LIMIT).await;
    nodes.shutdown();
}

/// The same window when the first start of the room fails (its read of the store does) while a
/// second join of the room waits for it: the confirmation the first one awaited stays with the
/// room, so the second start, which succeeds, still fills the room once Redis confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_confirmation_outlives_a_start_that_failed() {
    let Some(redis) = Redis::start().await else { return };
    let gate = Gate::start(redis.port).await;
    let (nodes, hooked) = behind_a_gate(&redis, &gate).await;
    keep_the_link_busy(&nodes.b, &gate).await;
    let (r, first, second) = (room(), Recorder::new(1), Recorder::new(2));
    hooked.hook().fail_next(1);
    let (failed, joined) = tokio::join!(nodes.b.subscribe(r, first.clone()), nodes.b.subscribe(r, second.clone()));
    assert!(failed.is_err() && joined.is_ok(), "the first start fails, the second succeeds: {failed:?} {joined:?}");
    nodes.post(&nodes.a, r).await;
    assert_eq!(subscribers(&redis, r).await, 0, "published before node b's subscription was active");
    second.expect_seqs("node b, once Redis confirmed the room", 1, LIMIT).await;
    assert!(first.seqs().is_empty(), "the sink of the failed join was unsubscribed");
    nodes.shutdown();
}

#[tokio::test]
async fn start_refuses_a_malformed_url() {
    let store: Arc<dyn ChatStore> = Arc::new(MemoryStore::new());
    let settings = RedisSettings { url: "not a url".to_owned(), ..RedisSettings::default() };
    let e = RedisBroadcaster::start(settings, store).unwrap_err();
    assert!(e.to_string().contains("invalid redis url"), "{e}");
}

#[test]
fn start_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let store: Arc<dyn ChatStore> = Arc::new(MemoryStore::new());
    let e = RedisBroadcaster::start(RedisSettings::default(), store).unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}

#[test]
fn default_settings_are_the_documented_ones() {
    let s = RedisSettings::default();
    assert_eq!(s.url, "redis://127.0.0.1:6379/");
    assert_eq!(s.node_id, "labchat");
    assert_eq!(
        (s.gap_wait, s.check_interval, s.op_timeout),
        (Duration::from_millis(200), Duration::from_secs(5), Duration::from_secs(2))
    );
}
