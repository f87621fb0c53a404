//! The reorder buffer stays bounded while a gap stays open: node b's store holds every fill
//! (a gate on `history`) while node a posts, so node b holds what it receives ahead of the gap.
//! Past the room's bound, and past the node's (all rooms together), the room drops what it holds
//! and is re-read from the store; once the store answers, every sink has every message once, in
//! seq order. Read through a Prometheus recorder installed for this test binary alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::RedisBroadcaster;
use labchat_core::{Broadcaster, ChatStore, Hooked, StoreCall, StoreFuture, StoreHook};
use labchat_memory::MemoryStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::{Nodes, Recorder, Redis, room, settings, wait_for};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
const PER_ROOM: usize = 50;
const PER_NODE: usize = 80;

/// Holds every `history` read while closed.
struct Gate(watch::Sender<bool>);

impl StoreHook for Gate {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if call.op != "history" {
            return inner;
        }
        let mut closed = self.0.subscribe();
        Box::pin(async move {
            let _ = closed.wait_for(|closed| !closed).await;
            inner.await
        })
    }
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(handle: &PrometheusHandle, name: &str, labels: &[&str]) -> f64 {
    handle
        .render()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn held_on_b(handle: &PrometheusHandle) -> f64 {
    sample(handle, "labchat_backplane_reorder_held", &["node=\"node-b\""])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_held_open_keeps_the_buffer_bounded_and_every_sink_gets_every_message_once_in_order() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let Some(redis) = Redis::start().await else { return };
    let memory = Arc::new(MemoryStore::new());
    let gate = Gate(watch::Sender::new(false));
    let gated = Arc::new(Hooked::new(memory.clone() as Arc<dyn ChatStore>, gate));
    let start = |id: &str, store: Arc<dyn ChatStore>| {
        let mut s = settings(&redis, id);
        s.check_interval = Duration::from_secs(60);
        s.reorder_max_per_room = PER_ROOM;
        s.reorder_max_per_node = PER_NODE;
        RedisBroadcaster::start(s, store).unwrap()
    };
    let nodes = Nodes { a: start("node-a", memory.clone()), b: start("node-b", gated.clone()), store: memory.clone() };
    nodes.wait_connected(true).await;
    let (r1, r2) = (room(), room());
    let (a1, b1) = nodes.recorders(r1).await;
    let (a2, b2) = (Recorder::new(3), Recorder::new(4));
    nodes.a.subscribe(r2, a2.clone()).await.unwrap();
    nodes.b.subscribe(r2, b2.clone()).await.unwrap();

    // Seq 1 of each room never crosses Redis, and node b cannot read it while the gate is shut.
    gated.hook().0.send_replace(true);
    nodes.store_only(r1).await;
    nodes.store_only(r2).await;
    let mut most = 0.0_f64;
    // One room alone passes its own bound; then both together pass the node's.
    let posts: Vec<_> = std::iter::repeat_n(r1, 60).chain([r1, r2].into_iter().cycle().take(240)).collect();
    for r in &posts {
        nodes.post(&nodes.a, *r).await;
        most = most.max(held_on_b(&handle));
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while sample(&handle, "labchat_backplane_reorder_overflows_total", &["node=\"node-b\"", "bound=\"node\""]) < 1.0 {
        most = most.max(held_on_b(&handle));
        assert!(tokio::time::Instant::now() < deadline, "node b never passed the node's bound");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    most = most.max(held_on_b(&handle));
    assert!(
        sample(&handle, "labchat_backplane_reorder_overflows_total", &["node=\"node-b\"", "bound=\"room\""]) >= 1.0,
        "room r1 alone passed its bound"
    );
    // The bound, plus the one message that crosses it before the room drops what it holds.
    assert!(most <= (PER_NODE + 1) as f64, "node b held {most} messages (bound {PER_NODE})");
    assert!(most > 0.0, "node b held messages ahead of the gap");
    assert!(b1.seqs().is_empty() && b2.seqs().is_empty(), "nothing passes the gap while the store is held");

    gated.hook().0.send_replace(false);
    let n1 = posts.iter().filter(|r| **r == r1).count() as u64 + 1;
    let n2 = posts.iter().filter(|r| **r == r2).count() as u64 + 1;
    for (who, sink, n) in [("a r1", &a1, n1), ("b r1", &b1, n1), ("a r2", &a2, n2), ("b r2", &b2, n2)] {
        sink.expect_seqs(who, n, LIMIT).await;
    }
    wait_for("node b to hold nothing", LIMIT, || async { held_on_b(&handle) == 0.0 }).await;
    // A late copy of anything would be a duplicate: give stragglers time, then look again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b1.seqs(), (1..=n1).collect::<Vec<_>>());
    assert_eq!(b2.seqs(), (1..=n2).collect::<Vec<_>>());
    nodes.shutdown();
}
