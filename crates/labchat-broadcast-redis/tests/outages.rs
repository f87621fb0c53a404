//! Redis failing under two nodes: pub/sub connections killed by the server while publishing, and
//! the server killed and restarted mid-traffic. Nothing is lost, nothing is delivered twice,
//! publish never fails, and the backplane's state follows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use labchat_broadcast_redis::RedisBroadcaster;
use labchat_core::Broadcaster;
use support::{Nodes, Recorder, Redis, room};

/// Records whether a node's backplane was seen down, then up again after that.
struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(bool, bool)>,
}

impl Watch {
    fn start(node: Arc<RedisBroadcaster>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut down, mut up_after) = (false, false);
            while !flag.load(Ordering::Relaxed) {
                let connected = node.backplane().unwrap().connected;
                if !connected {
                    down = true;
                } else if down {
                    up_after = true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (down, up_after)
        });
        Self { stop, task }
    }

    async fn finish(self) -> (bool, bool) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_connections_killed_while_publishing_lose_nothing_and_duplicate_nothing() {
    let Some(redis) = Redis::start().await else { return };
    // No quiet-room check during the test: node b hears node a only through Redis, its gap
    // fills and its catch-up after each reconnection.
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    let watch = Watch::start(nodes.b.clone());
    let killing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (killing, url_port) = (killing.clone(), redis.port);
        tokio::spawn(async move {
            let client = redis::Client::open(format!("redis://127.0.0.1:{url_port}/")).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let mut killed = 0;
            while killing.load(Ordering::Relaxed) {
                killed += redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async::<i64>(&mut c)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            killed
        })
    };
    for _ in 0..200 {
        nodes.post(&nodes.a, r).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    killing.store(false, Ordering::Relaxed);
    let killed = killer.await.unwrap();
    assert!(killed > 0, "the server killed no pub/sub connection");
    on_a.expect_seqs("node a", 200, Duration::from_secs(15)).await;
    on_b.expect_seqs("node b", 200, Duration::from_secs(15)).await;
    nodes.wait_connected(true).await;
    assert_eq!(watch.finish().await, (true, true), "backplane seen down, then up again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_a.seqs().len(), 200, "no duplicate afterwards");
    assert_eq!(on_b.seqs().len(), 200, "no duplicate afterwards");
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_traffic_every_node_catches_up_in_order() {
    let Some(mut redis) = Redis::start().await else { return };
    // No quiet-room check during the test: the catch-up comes from the reconnection itself.
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    let watch = Watch::start(nodes.b.clone());
    let mut posted = 0u64;
    let mut post = async |n: u64| {
        for _ in 0..n {
            let node = if posted.is_multiple_of(2) { &nodes.a } else { &nodes.b };
            // publish() never fails, with Redis up or down.
            nodes.post(node, r).await;
            posted += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    };
    post(30).await;
    redis.kill().await;
    post(40).await;
    nodes.wait_connected(false).await;
    // Each node's own posts revealed the other's as gaps, filled from the store. The outage's
    // last post (seq 70) is node b's: nothing node a posts later reveals it, so node a holds it
    // only if its last fill read the store after node b's insert (the reconnection's catch-up
    // below brings it in any case).
    support::wait_for("node a to receive 69 messages", Duration::from_secs(10), || async { on_a.seqs().len() >= 69 })
        .await;
    let held = on_a.seqs();
    assert!(held == (1..=69).collect::<Vec<_>>() || held == (1..=70).collect::<Vec<_>>(), "node a: {held:?}");
    on_b.expect_seqs("node b", 70, Duration::from_secs(10)).await;
    // Local members still get their own node's posts live while Redis is down.
    let m = nodes.post(&nodes.a, r).await;
    support::wait_for("a local post to arrive while redis is down", Duration::from_secs(10), || async {
        on_a.events().iter().any(|e| matches!(e, labchat_domain::RoomEvent::MessagePosted(x) if x.id == m.id))
    })
    .await;
    assert!(!nodes.a.backplane().unwrap().connected);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(on_b.seqs().len(), 70, "node b cannot know of node a's last post while redis is down");
    redis.restart().await;
    // Only the catch-up after reconnecting can bring each node the other's posts of the outage
    // (the last of them, `m`, is node a's: nothing posted later on node b reveals it).
    on_a.expect_seqs("node a", 71, Duration::from_secs(10)).await;
    on_b.expect_seqs("node b", 71, Duration::from_secs(10)).await;
    nodes.wait_connected(true).await;
    // Then live again through Redis, from node a only.
    for _ in 0..29 {
        nodes.post(&nodes.a, r).await;
    }
    on_a.expect_seqs("node a", 100, Duration::from_secs(10)).await;
    on_b.expect_seqs("node b", 100, Duration::from_secs(10)).await;
    assert_eq!(watch.finish().await, (true, true), "backplane seen down, then up again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_a.seqs().len(), 100, "no duplicate afterwards");
    assert_eq!(on_b.seqs().len(), 100, "no duplicate afterwards");
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_detected_by_the_keep_alive() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| {
        s.check_interval = Duration::from_millis(200);
        s.op_timeout = Duration::from_millis(300);
    })
    .await;
    let r = room();
    let on_b = Recorder::new(2);
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    redis.signal("STOP").await;
    // The connections stay open, the server is silent: only the keep-alive PING notices.
    let stopped = async {
        nodes.wait_connected(false).await;
        // publish() does not wait for the silent server either.
        nodes.post(&nodes.a, r).await;
    };
    let resumed = tokio::time::timeout(Duration::from_secs(10), stopped).await;
    redis.signal("CONT").await;
    resumed.expect("the silent server was noticed");
    nodes.wait_connected(true).await;
    on_b.expect_seqs("node b", 1, Duration::from_secs(10)).await;
    nodes.shutdown();
}
