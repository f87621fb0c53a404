//! Two nodes (two RedisBroadcasters with distinct node ids) over one real redis-server and one
//! in-memory store: fan-out, gap fills from the store, receipts after their messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::RedisBroadcaster;
use labchat_core::{Broadcaster, ChatStore, Clock, SystemClock};
use labchat_domain::{RequestId, RoomEvent, Timestamp};
use labchat_memory::MemoryStore;
use support::flaky::failing_history;
use support::{Nodes, Recorder, Redis, message, read_receipt, room, settings};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_both_nodes_reach_every_sink_once_in_seq_order() {
    let Some(redis) = Redis::start().await else { return };
    // A long check interval: delivery here must come from pub/sub and the reorder buffer.
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    for i in 0..40u32 {
        let node = if i.is_multiple_of(2) { &nodes.a } else { &nodes.b };
        nodes.post(node, r).await;
    }
    on_a.expect_seqs("node a", 40, LIMIT).await;
    on_b.expect_seqs("node b", 40, LIMIT).await;
    // Own publications come back from Redis too: they must not be delivered a second time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_a.seqs().len(), 40);
    assert_eq!(on_b.seqs().len(), 40);
    // Another room's sink hears nothing of this room.
    let other = Recorder::new(3);
    nodes.b.subscribe(room(), other.clone()).await.unwrap();
    nodes.post(&nodes.a, r).await;
    on_b.expect_seqs("node b", 41, LIMIT).await;
    assert!(other.events().is_empty());
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_never_came_through_redis_is_filled_from_the_store_in_order() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    nodes.post(&nodes.a, r).await;
    // Message 2 is stored but its event is lost; message 3 shows the gap.
    nodes.store_only(r).await;
    nodes.post(&nodes.a, r).await;
    on_a.expect_seqs("node a", 3, LIMIT).await;
    on_b.expect_seqs("node b", 3, LIMIT).await;
    nodes.post(&nodes.b, r).await;
    on_a.expect_seqs("node a", 4, LIMIT).await;
    on_b.expect_seqs("node b", 4, LIMIT).await;
    nodes.shutdown();
}

/// Two nodes checking quiet rooms every 200 ms, and a room whose first message, posted on node
/// a, node b delivered.
async fn one_post_heard_on_b(redis: &Redis) -> (Nodes, RequestId, Arc<Recorder>) {
    let nodes = Nodes::start(redis, |s| s.check_interval = Duration::from_millis(200)).await;
    let r = room();
    let on_b = Recorder::new(2);
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    nodes.post(&nodes.a, r).await;
    on_b.expect_seqs("node b", 1, LIMIT).await;
    (nodes, r, on_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_last_message_of_a_quiet_room_is_filled_by_the_periodic_check() {
    let Some(redis) = Redis::start().await else { return };
    let (nodes, r, on_b) = one_post_heard_on_b(&redis).await;
    // No later message reveals this gap: only the quiet-room check can.
    nodes.store_only(r).await;
    on_b.expect_seqs("node b", 2, LIMIT).await;
    // The link's keep-alive PING (every check interval) keeps it up.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(nodes.a.backplane().unwrap().connected && nodes.b.backplane().unwrap().connected);
    }
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_written_long_after_its_stamp_is_filled_by_the_sweep() {
    let Some(redis) = Redis::start().await else { return };
    let (nodes, r, on_b) = one_post_heard_on_b(&redis).await;
    // Stamped an hour before the store wrote it (an insert run long after its caller gave up),
    // and never published: older than any quiet-room check looks, so only the sweep finds it.
    let mut late = message(r);
    late.created_at = Timestamp::from_unix_millis(SystemClock.now().unix_millis() - 3_600_000);
    nodes.store.insert_message(&late).await.unwrap();
    on_b.expect_seqs("node b", 2, LIMIT).await;
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_starts_after_the_stored_messages() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_millis(200)).await;
    let r = room();
    for _ in 0..5 {
        nodes.post(&nodes.a, r).await;
    }
    let on_b = Recorder::new(2);
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    nodes.post(&nodes.a, r).await;
    wait_len(&on_b, 1).await;
    // Messages 1..=5 are history (read by the joining client), not live events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_b.seqs(), vec![6]);
    nodes.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_never_delivered_before_the_message_it_names() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (on_a, on_b) = nodes.recorders(r).await;
    // Message 1's event is lost everywhere; a receipt naming it is published right away, on
    // both the node that stored it and through Redis.
    let first = nodes.store_only(r).await;
    nodes.a.publish(read_receipt(r, &[first.id])).await.unwrap();
    // Message 2 is published normally, then a receipt for 1 and 2 through the other node.
    let second = nodes.post(&nodes.a, r).await.id;
    nodes.b.publish(read_receipt(r, &[first.id, second])).await.unwrap();
    for (who, sink) in [("node a", &on_a), ("node b", &on_b)] {
        wait_len(sink, 4).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = sink.events();
        assert_eq!(events.len(), 4, "{who}: {events:?}");
        assert_eq!(sink.seqs(), [1, 2], "{who}");
        // Receipts from two nodes have no order between them; each comes after its messages.
        let mut seen = Vec::new();
        for event in &events {
            if let RoomEvent::MessagePosted(m) = event {
                seen.push(m.id);
            } else if let RoomEvent::Read { messages, .. } = event {
                assert!(messages.iter().all(|id| seen.contains(id)), "{who}: receipt before its messages: {events:?}");
            } else {
                panic!("{who}: unexpected {event:?}");
            }
        }
    }
    nodes.shutdown();
}

async fn wait_len(sink: &Recorder, n: usize) {
    support::wait_for(&format!("{n} events"), LIMIT, || async { sink.events().len() >= n }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_on_both_nodes_arrive_in_one_dense_order_everywhere() {
    let Some(redis) = Redis::start().await else { return };
    let nodes = std::sync::Arc::new(Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await);
    let r = room();
    let sinks = [Recorder::new(1), Recorder::new(2), Recorder::new(3), Recorder::new(4)];
    nodes.a.subscribe(r, sinks[0].clone()).await.unwrap();
    nodes.a.subscribe(r, sinks[1].clone()).await.unwrap();
    nodes.b.subscribe(r, sinks[2].clone()).await.unwrap();
    nodes.b.subscribe(r, sinks[3].clone()).await.unwrap();
    // Four posters, two per node, at once: publish calls reach each node out of seq order.
    let posters: Vec<_> = (0..4u32)
        .map(|i| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let node = if i.is_multiple_of(2) { &nodes.a } else { &nodes.b };
                    nodes.post(node, r).await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for p in posters {
        p.await.unwrap();
    }
    for (i, sink) in sinks.iter().enumerate() {
        sink.expect_seqs(&format!("sink {i}"), 200, LIMIT).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sinks.iter().all(|s| s.seqs().len() == 200), "no duplicate afterwards");
    nodes.shutdown();
}

/// A fill the quiet-room check asked for that failed is tried again at the next checks until
/// the store answers, even once the message's stamp has left the checks' look-back (the check
/// interval plus 30 s). Node b holds 3,000 rooms made before the room, so the sweep (25 rooms per
/// check, in id order) comes to it only after some 120 checks, 24 s at 200 ms: a delivery
/// within [`SOON`] of the store's recovery comes from the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fill_of_a_quiet_room_is_retried_after_its_message_left_the_look_back() {
    const SOON: Duration = Duration::from_secs(4);
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let flaky = failing_history(store.clone());
    let start = |id: &str, s: Arc<dyn ChatStore>| {
        let mut settings = settings(&redis, id);
        settings.check_interval = Duration::from_millis(200);
        RedisBroadcaster::start(settings, s).unwrap()
    };
    let nodes = Nodes { a: start("node-a", store.clone()), b: start("node-b", flaky.clone()), store };
    nodes.wait_connected(true).await;
    let others = Recorder::new(3);
    for _ in 0..3_000 {
        nodes.b.subscribe(room(), others.clone()).await.unwrap();
    }
    let r = room();
    let on_b = Recorder::new(2);
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    // Stored, never published, stamped 27 s ago: inside the look-back for about 3 s, during which
    // node b's checks find the room behind and fail to fill it; outside it when the store heals.
    flaky.hook().fail(true);
    let mut late = message(r);
    late.created_at = Timestamp::from_unix_millis(SystemClock.now().unix_millis() - 27_000);
    nodes.store.insert_message(&late).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(on_b.seqs().is_empty(), "nothing can be filled while the store fails");
    flaky.hook().fail(false);
    on_b.expect_seqs("node b, once the store answers again", 1, SOON).await;
    nodes.shutdown();
}
