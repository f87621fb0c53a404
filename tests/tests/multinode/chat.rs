//! Several nodes, one chat: three real `labchat` processes (the debug binary) on one test MongoDB
//! database and one redis-server, clients spread over the nodes (docs/deployment.md).
//!
//! Needs `LABCHAT_TEST_MONGO_URI`, the `labchat` binary and `redis-server`: run it with
//! `scripts/test.sh -p labchat-tests --test multinode -- chat::` (which builds and starts what it needs).
//! Each test starts its own redis-server (so it may kill it) and its own nodes, one test at a time,
//! and stops them all when it ends, passed or failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::token;
use labchat_tests::multinode::{Cluster, http_get, labchat_binary};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long a client may wait for the events it expects (gap fills and reconnects included).
const DELIVERY: Duration = Duration::from_secs(20);

/// A client that joined a room, recording what it receives.
pub(crate) struct Member {
    pub(crate) client: Client,
    room: String,
    /// Every `message` event of the room, in arrival order.
    pub(crate) messages: Vec<Value>,
    /// Every event of the room (messages and receipts), in arrival order.
    events: Vec<Value>,
}

impl Member {
    pub(crate) async fn join(url: &str, user: &str, role: &str, room: &str) -> Self {
        let mut client = Client::connect(url, &token(user, role)).await;
        let history = client.join(room).await;
        assert_eq!(history["messages"], json!([]), "{user} joins an empty room");
        Self { client, room: room.to_owned(), messages: Vec::new(), events: Vec::new() }
    }

    /// Receives until `done(self)` holds; panics after `wait`.
    pub(crate) async fn until(&mut self, wait: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + wait;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(frame) = self.client.try_recv(left).await else {
                panic!(
                    "{what}: not within {wait:?}; received {} messages: {:?}",
                    self.messages.len(),
                    seqs(&self.messages)
                );
            };
            self.record(frame);
        }
    }

    fn record(&mut self, frame: Value) {
        if frame["data"]["requestId"] != self.room.as_str() {
            return;
        }
        if frame["event"] == "message" {
            self.messages.push(frame["data"].clone());
        }
        self.events.push(frame);
    }

    /// Receives until it has `n` messages.
    pub(crate) async fn messages(&mut self, n: usize) -> &[Value] {
        self.until(DELIVERY, &format!("{n} messages"), |m| m.messages.len() >= n).await;
        &self.messages
    }
}

pub(crate) fn seqs(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["seq"].as_u64().expect("every message carries seq")).collect()
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

pub(crate) fn dense(n: usize) -> Vec<u64> {
    (1..=n as u64).collect()
}

/// The room's whole history (at most one page of 200), through a fresh connection to `url`.
async fn history(url: &str, room: &str) -> Vec<Value> {
    let mut c = Client::connect(url, &token("lab-history", "LAB")).await;
    let frames = c.call("history", json!({"requestId": room})).await;
    let page = frames.iter().find(|f| f["event"] == "roomHistory").expect("roomHistory");
    assert_eq!(page["data"]["hasMore"], false);
    page["data"]["messages"].as_array().unwrap().clone()
}

/// Posts `n` messages `"{prefix} {i}"` one after the other; returns the acks.
pub(crate) async fn post_many(
    url: String,
    user: &str,
    role: &str,
    room: String,
    prefix: String,
    n: usize,
) -> Vec<Value> {
    let mut c = Client::connect(&url, &token(user, role)).await;
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        acks.push(c.post(&room, &format!("{prefix} {i}")).await);
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_starts_kills_and_restarts_nodes_and_redis() {
    let mut cluster = Cluster::launch("mn_harness", 3).await;
    assert!(labchat_binary().is_file());
    let room = cluster.add_request("t1").await.to_string();
    for node in &cluster.nodes {
        let (status, body) = node.readyz().await.expect("/readyz answers");
        assert_eq!(status, 200, "{body}");
        assert!(body["backplane"].is_object(), "a node with --redis-url reports its backplane: {body}");
    }
    // Every node serves the shared database.
    let mut t = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    let posted = t.post(&room, "hello").await;
    for node in &cluster.nodes {
        assert_eq!(ids(&history(&node.url(), &room).await), vec![posted["id"].as_str().unwrap().to_owned()]);
    }
    // kill -9 ends the process and its connections; restart brings it back on a new port.
    let old = cluster.nodes[2].addr();
    cluster.nodes[2].kill9().await;
    assert!(!cluster.nodes[2].is_running());
    assert!(http_get(old, "/readyz").await.is_none(), "a killed node answers nothing");
    cluster.nodes[2].restart().await;
    assert!(cluster.nodes[2].is_running());
    assert_eq!(history(&cluster.nodes[2].url(), &room).await.len(), 1);
    // Redis: killed, it refuses; restarted, it answers on the same URL again.
    let url = cluster.redis().url();
    cluster.redis_mut().kill().await;
    assert_eq!(cluster.redis().kill_pubsub_clients().await, None, "a killed Redis answers nothing");
    cluster.redis_mut().restart().await;
    assert_eq!(cluster.redis().url(), url);
    assert!(cluster.redis().kill_pubsub_clients().await.is_some(), "a restarted Redis answers");
}

/// Guarantee 1: three senders on three nodes post concurrently into one room; every observer on
/// every node sees one same order, with dense seq, equal to the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_three_nodes_give_every_observer_one_dense_order_equal_to_the_history() {
    let cluster = Cluster::start("mn_fanout", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut observers = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        observers.push(Member::join(&node.url(), &format!("lab-o{i}"), "LAB", &room).await);
    }
    const EACH: usize = 15;
    let senders = [("t1", "TEACHER"), ("lab-s1", "LAB"), ("lab-s2", "LAB")];
    let mut tasks = Vec::new();
    for (i, (user, role)) in senders.into_iter().enumerate() {
        let url = cluster.nodes[i].url();
        tasks.push(tokio::spawn(post_many(url, user, role, room.clone(), format!("from node {i}"), EACH)));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), EACH);
    }
    let total = 3 * EACH;
    let stored = history(&cluster.nodes[0].url(), &room).await;
    assert_eq!(seqs(&stored), dense(total), "the history is dense");
    for (i, o) in observers.iter_mut().enumerate() {
        let got = o.messages(total).await.to_vec();
        assert_eq!(seqs(&got), dense(total), "observer on node {i}: seq in order, no hole, no duplicate");
        assert_eq!(ids(&got), ids(&stored), "observer on node {i}: the history's order");
        o.client.expect_silence(Duration::from_millis(300)).await;
    }
}

/// Guarantee 2: a node is killed (-9) mid-traffic; its client reconnects to another node with
/// `joinRoom {after}` (and `history {after}` while `hasMore`) and gets exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_reconnects_elsewhere_and_gets_exactly_what_it_missed() {
    let mut cluster = Cluster::start("mn_kill9", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut victim = Member::join(&cluster.nodes[2].url(), "lab-v", "LAB", &room).await;
    const TOTAL: usize = 40;
    let sender = tokio::spawn(post_many(cluster.nodes[0].url(), "t1", "TEACHER", room.clone(), "m".into(), TOTAL));
    victim.until(DELIVERY, "the first 10 messages", |m| m.messages.len() >= 10).await;
    cluster.nodes[2].kill9().await;
    let before = victim.messages.clone();
    assert_eq!(seqs(&before), dense(before.len()), "in order before the kill");
    let last_id = before.last().unwrap()["id"].as_str().unwrap().to_owned();

    // Reconnect to node 1 while the sender goes on.
    let mut c = Client::connect(&cluster.nodes[1].url(), &token("lab-v", "LAB")).await;
    let mut got: Vec<Value> = Vec::new();
    let frames = c.call("joinRoom", json!({"requestId": room, "after": last_id})).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
    let mut has_more = take_messages(frames, &mut got);
    while has_more {
        let newest = got.iter().max_by_key(|m| m["seq"].as_u64()).unwrap()["id"].clone();
        let frames = c.call("history", json!({"requestId": room, "after": newest})).await;
        has_more = take_messages(frames, &mut got);
    }
    assert_eq!(sender.await.unwrap().len(), TOTAL, "every post succeeded");
    let deadline = Instant::now() + DELIVERY;
    while got.len() + before.len() < TOTAL {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = c.try_recv(left).await.unwrap_or_else(|| panic!("missed messages: got {:?}", seqs(&got)));
        if f["event"] == "message" {
            got.push(f["data"].clone());
        }
    }
    c.expect_silence(Duration::from_millis(300)).await;
    let after: Vec<u64> = seqs(&got);
    let first = before.len() as u64 + 1;
    assert_eq!(after, (first..=TOTAL as u64).collect::<Vec<_>>(), "exactly what it missed, in order, no duplicate");
    // The killed node comes back and serves the same room.
    cluster.nodes[2].restart().await;
    assert_eq!(seqs(&history(&cluster.nodes[2].url(), &room).await), dense(TOTAL));
}

/// Guarantee 3: receipts made on one node reach the other nodes, never before the messages they
/// name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_cross_nodes_and_never_overtake_the_messages_they_name() {
    let cluster = Cluster::start("mn_receipts", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut lab = Member::join(&cluster.nodes[1].url(), "lab-r", "LAB", &room).await;
    let mut observer = Member::join(&cluster.nodes[2].url(), "t1", "TEACHER", &room).await;
    const TOTAL: usize = 8;
    let sender = tokio::spawn(post_many(cluster.nodes[0].url(), "t1", "TEACHER", room.clone(), "r".into(), TOTAL));
    // The lab reads each message as soon as it arrives on node 1.
    let mut read = 0;
    while read < TOTAL {
        lab.until(DELIVERY, "the next message on node 1", |m| m.messages.len() > read).await;
        let id = lab.messages[read]["id"].clone();
        // Events that arrive before the ack are the room's too: keep them.
        let frames = lab.client.call("readMessages", json!({"requestId": room, "messages": [id]})).await;
        assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
        for f in frames {
            lab.record(f);
        }
        read += 1;
    }
    assert_eq!(sender.await.unwrap().len(), TOTAL);
    let receipts = |m: &Member, event: &str| m.events.iter().filter(|f| f["event"] == event).count();
    observer
        .until(DELIVERY, "every message and both receipts of each", |m| {
            m.messages.len() >= TOTAL
                && receipts(m, "messagesDelivered") >= TOTAL
                && receipts(m, "messageReads") >= TOTAL
        })
        .await;
    let mut seen = HashSet::new();
    for f in &observer.events {
        match f["event"].as_str() {
            Some("message") => {
                seen.insert(f["data"]["id"].as_str().unwrap().to_owned());
            }
            Some("messagesDelivered" | "messageReads") => {
                assert_eq!(f["data"]["userId"], "lab-r");
                for id in f["data"]["messages"].as_array().unwrap() {
                    assert!(seen.contains(id.as_str().unwrap()), "receipt {f} before the message it names");
                }
            }
            _ => {}
        }
    }
    assert_eq!(seqs(&observer.messages), dense(TOTAL));
}

/// Guarantee 4: one connection's pipelined sends keep their order (seq), seen from another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_of_one_connection_keep_their_order_across_nodes() {
    let cluster = Cluster::start("mn_pipeline", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut observer = Member::join(&cluster.nodes[1].url(), "lab-p", "LAB", &room).await;
    const TOTAL: usize = 30;
    let mut c = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    for i in 0..TOTAL {
        c.send(json!({"event": "message", "data": {"requestId": room, "message": format!("p {i}")}, "id": i + 1}))
            .await;
    }
    let mut acks = vec![Value::Null; TOTAL];
    let mut n = 0;
    while n < TOTAL {
        let f = c.recv().await;
        if f["event"] == "ack" {
            let i = usize::try_from(f["id"].as_u64().unwrap()).unwrap() - 1;
            acks[i] = f["data"].clone();
            n += 1;
        } else {
            assert_ne!(f["event"], "error", "{f}");
        }
    }
    assert_eq!(seqs(&acks), dense(TOTAL), "the acks' seq follow the sending order");
    let got = observer.messages(TOTAL).await;
    let texts: Vec<&str> = got.iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, (0..TOTAL).map(|i| format!("p {i}")).collect::<Vec<_>>());
    assert_eq!(seqs(got), dense(TOTAL));
}

/// Guarantee 5: the same user sends the same clientMessageId through two nodes at once: one
/// message, one broadcast, both acks carry its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_message_id_through_two_nodes_at_once_is_one_message() {
    let cluster = Cluster::start("mn_idempotent", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut observer = Member::join(&cluster.nodes[2].url(), "lab-i", "LAB", &room).await;
    for round in 0..5 {
        let cmid = format!("retry-{round}");
        let mut a = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
        let mut b = Client::connect(&cluster.nodes[1].url(), &token("t1", "TEACHER")).await;
        let data = json!({"requestId": room, "message": format!("once {round}"), "clientMessageId": cmid});
        let (x, y) = tokio::join!(a.ok("message", data.clone()), b.ok("message", data.clone()));
        assert_eq!(x["id"], y["id"], "round {round}: both acks carry the one message");
        observer.messages(round + 1).await;
    }
    observer.client.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(seqs(&observer.messages), dense(5), "one broadcast per message");
    assert_eq!(history(&cluster.nodes[0].url(), &room).await.len(), 5, "one stored message per clientMessageId");
}

/// Guarantee 6: Redis is killed and restarted mid-traffic: posts keep succeeding, local members get
/// them live, /readyz stays 200 (backplane down, then up), and afterwards every node delivers what
/// its members missed, in order, with no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_traffic_loses_nothing() {
    let mut cluster = Cluster::start("mn_redis_down", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut observers = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        observers.push(Member::join(&node.url(), &format!("lab-o{i}"), "LAB", &room).await);
    }
    let mut sender = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    for i in 0..5 {
        sender.post(&room, &format!("before {i}")).await;
    }
    cluster.redis_mut().kill().await;
    for node in &cluster.nodes {
        node.wait_backplane(false, DELIVERY).await;
    }
    for i in 0..5 {
        sender.post(&room, &format!("during {i}")).await;
    }
    // The sender's node delivers to its own members live while Redis is down.
    let local = observers[0].messages(10).await;
    assert_eq!(seqs(local), dense(10), "local members get every post live");
    cluster.redis_mut().restart().await;
    for node in &cluster.nodes {
        node.wait_backplane(true, DELIVERY).await;
    }
    for i in 0..5 {
        sender.post(&room, &format!("after {i}")).await;
    }
    for (i, o) in observers.iter_mut().enumerate() {
        let got = o.messages(15).await.to_vec();
        assert_eq!(seqs(&got), dense(15), "node {i}: what its members missed, in order, no duplicate");
        o.client.expect_silence(Duration::from_millis(300)).await;
    }
}

/// Guarantee 7: `CLIENT KILL TYPE pubsub` every few milliseconds while posting: nothing lost, no
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_connections_cut_every_few_ms_lose_nothing_and_duplicate_nothing() {
    let cluster = Cluster::start("mn_client_kill", 3).await;
    let room = cluster.add_request("t1").await.to_string();
    let mut observers = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate().skip(1) {
        observers.push(Member::join(&node.url(), &format!("lab-o{i}"), "LAB", &room).await);
    }
    const TOTAL: usize = 40;
    let stop = AtomicBool::new(false);
    let mut cuts = 0u64;
    let posting = async {
        let acks = post_many(cluster.nodes[0].url(), "t1", "TEACHER", room.clone(), "k".into(), TOTAL).await;
        stop.store(true, Ordering::Relaxed);
        acks
    };
    let killer = async {
        while !stop.load(Ordering::Relaxed) {
            cuts += cluster.redis().kill_pubsub_clients().await.unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (acks, ()) = tokio::join!(posting, killer);
    assert_eq!(acks.len(), TOTAL, "every post succeeded");
    assert!(cuts > 0, "the pub/sub connections were cut");
    for (i, o) in observers.iter_mut().enumerate() {
        let got = o.messages(TOTAL).await.to_vec();
        assert_eq!(seqs(&got), dense(TOTAL), "observer {i}: nothing lost, in order, no duplicate");
        o.client.expect_silence(Duration::from_millis(300)).await;
    }
}

/// Adds the messages of a page's `roomHistory` and of live `message` frames to `got`; returns the
/// page's `hasMore` (false without a page).
fn take_messages(frames: Vec<Value>, got: &mut Vec<Value>) -> bool {
    let mut has_more = false;
    for f in frames {
        match f["event"].as_str() {
            Some("roomHistory") => {
                got.extend(f["data"]["messages"].as_array().unwrap().iter().cloned());
                has_more = f["data"]["hasMore"] == true;
            }
            Some("message") => got.push(f["data"].clone()),
            _ => {}
        }
    }
    has_more
}
