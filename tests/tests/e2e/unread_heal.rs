//! Unread counts heal: when the count write that follows a stored message or receipt fails
//! (a store wrapper fails `count_posted` / `count_read`, either before the write or after it
//! took effect), the counts become exact again: in the background with nothing flowing, and at
//! once on the next read (`inbox`, and `unread` / `firstUnreadId` of `joinRoom`). On the
//! in-memory store and on the test MongoDB (run with `scripts/test.sh -p labchat-tests --test
//! e2e -- unread_heal::`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use labchat_core::{Chat, ChatStore, Hooked, StoreCall, StoreError, StoreFuture, StoreHook, SystemClock};
use labchat_domain::{HistoryLimit, RequestId, UserId};
use labchat_memory::LocalBroadcaster;
use labchat_tests::client::Client;
use labchat_tests::contract::{Creator, MemoryFixture, StoreFixture};
use labchat_tests::harness::{ChatServer, new_request_id};
use labchat_tests::mongo::MongoFixture;
use serde_json::{Value, json};

/// How a failed count write fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// Nothing is written.
    Lost,
    /// The write takes effect, but the call reports a failure (a timeout after the fact).
    Applied,
}

/// A store hook: the next `fails` count writes fail, as `how` says; everything else passes
/// through.
struct FlakyCounts {
    /// The store methods that fail.
    ops: &'static [&'static str],
    how: Failure,
    fails: AtomicU32,
}

impl StoreHook for FlakyCounts {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, write: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if !self.ops.contains(&call.op) {
            return write;
        }
        let failing = self.fails.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !failing {
            return write;
        }
        Box::pin(async move {
            if matches!(self.how, Failure::Applied) {
                write.await?;
            }
            Err(StoreError::unavailable("count messages", "injected: the store did not answer in time"))
        })
    }
}

/// The count writes that follow a stored message, receipt or deletion.
const COUNT_WRITES: &[&str] = &["count_deleted", "count_posted", "count_read"];

/// A real server over the flaky store.
struct Node {
    server: ChatServer,
    store: Arc<Hooked<FlakyCounts>>,
    chat: Arc<Chat>,
}

impl Node {
    async fn start(inner: Arc<dyn ChatStore>, how: Failure) -> Self {
        Self::failing(inner, COUNT_WRITES, how).await
    }

    /// A node whose store fails the next [`Node::fail_next`] calls of `ops`, as `how` says.
    async fn failing(inner: Arc<dyn ChatStore>, ops: &'static [&'static str], how: Failure) -> Self {
        let store = Arc::new(Hooked::new(inner, FlakyCounts { ops, how, fails: AtomicU32::new(0) }));
        let chat = Arc::new(Chat::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            Arc::new(LocalBroadcaster::new()),
            Arc::new(SystemClock),
            HistoryLimit::DEFAULT,
        ));
        Self { server: ChatServer::serve(Arc::clone(&chat)).await, store, chat }
    }

    async fn client(&self, user: &str, role: &str) -> Client {
        self.server.client(user, role).await
    }

    fn fail_next(&self, n: u32) {
        self.store.hook().fails.store(n, Ordering::SeqCst);
    }
}

/// The user's unread count of the room as the inbox tells it, and as a new join tells it
/// (`unread`, `firstUnreadId`), from a connection of their own.
async fn told(node: &Node, user: &str, role: &str, room: &str) -> (u64, u64, Value) {
    let mut c = node.client(user, role).await;
    let page = c.ok("inbox", json!({})).await;
    let rows = page["rooms"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{user}'s inbox: {page}");
    assert_eq!(rows[0]["requestId"], room);
    let history = c.join(room).await;
    (rows[0]["unread"].as_u64().unwrap(), history["unread"].as_u64().unwrap(), history["firstUnreadId"].clone())
}

/// The store's own count, with no read through the use cases.
async fn stored_unread(node: &Node, room: RequestId, user: &str) -> u64 {
    node.store.inner().unread_count(room, &UserId::parse(user).unwrap()).await.unwrap()
}

/// A new room of teacher t1, joined by lab1 and t1: the room, its hex form, lab1 and t1.
async fn open_room<F: StoreFixture>(node: &Node, fixture: &F) -> (RequestId, String, Client, Client) {
    let room = new_request_id();
    fixture.add_request(room, Creator::Text("t1".into())).await;
    let r = room.to_hex();
    let mut lab = node.client("lab1", "LAB").await;
    let mut teacher = node.client("t1", "TEACHER").await;
    lab.join(&r).await;
    teacher.join(&r).await;
    (room, r, lab, teacher)
}

async fn heals<F: StoreFixture>(fixture: &F, how: Failure) {
    let node = Node::start(fixture.store(), how).await;
    let (room, r, mut lab, mut teacher) = open_room(&node, fixture).await;

    // 1. In the background, with nothing flowing after the failures: lab1's first two posts
    //    and t1's read of them are not counted right.
    node.fail_next(2);
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(lab.post(&r, text).await["id"].as_str().unwrap().to_owned());
    }
    node.fail_next(1);
    teacher.ok("readMessages", json!({"requestId": r, "messages": [ids[0], ids[1]]})).await;
    assert_eq!(node.store.hook().fails.load(Ordering::SeqCst), 0, "every injected failure was hit");
    assert!(node.chat.recounts_waiting() > 0, "the failed writes wait for a recount");
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.chat.recounts_waiting() > 0 {
        assert!(Instant::now() < deadline, "the recounts never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_unread(&node, room, "lab1").await, 0, "{how:?}: lab1's own posts, healed in the background");
    assert_eq!(stored_unread(&node, room, "t1").await, 1, "{how:?}: t1 read two of three, healed in the background");
    assert_eq!(told(&node, "lab1", "LAB", &r).await, (0, 0, Value::Null), "{how:?}: lab1 after the quiet heal");
    assert_eq!(told(&node, "t1", "TEACHER", &r).await, (1, 1, json!(ids[2])), "{how:?}: t1 after the quiet heal");

    // 2. On the next read, at once: t1's post and lab1's read of it fail to count.
    node.fail_next(1);
    let fourth = teacher.post(&r, "four").await["id"].as_str().unwrap().to_owned();
    node.fail_next(1);
    lab.ok("readMessages", json!({"requestId": r, "messages": [fourth]})).await;
    node.fail_next(1);
    let fifth = lab.post(&r, "five").await["id"].as_str().unwrap().to_owned();
    assert_eq!(node.store.hook().fails.load(Ordering::SeqCst), 0, "every injected failure was hit");
    assert_eq!(told(&node, "t1", "TEACHER", &r).await, (2, 2, json!(ids[2])), "{how:?}: t1 at the next read");
    assert_eq!(told(&node, "lab1", "LAB", &r).await, (0, 0, Value::Null), "{how:?}: lab1 at the next read");
    // And it stays exact once the background is done with them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.chat.recounts_waiting() > 0 {
        assert!(Instant::now() < deadline, "the recounts never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    teacher.ok("readMessages", json!({"requestId": r, "messages": [ids[2], fifth]})).await;
    assert_eq!(told(&node, "t1", "TEACHER", &r).await, (0, 0, Value::Null), "{how:?}: t1 read everything");
    assert_eq!(node.chat.recounts_waiting(), 0);
}

#[tokio::test]
async fn memory_counts_heal_after_lost_count_writes() {
    heals(&MemoryFixture::new(), Failure::Lost).await;
}

#[tokio::test]
async fn memory_counts_heal_after_count_writes_that_failed_but_took_effect() {
    heals(&MemoryFixture::new(), Failure::Applied).await;
}

#[tokio::test]
async fn mongodb_counts_heal_after_lost_count_writes() {
    heals(&MongoFixture::new("unread_heal_lost").await, Failure::Lost).await;
}

#[tokio::test]
async fn mongodb_counts_heal_after_count_writes_that_failed_but_took_effect() {
    heals(&MongoFixture::new("unread_heal_applied").await, Failure::Applied).await;
}

/// The writes before the count writes time out after they took effect (as with `--store-timeout
/// 50ms` and a MongoDB that stalls): the client is told UNAVAILABLE and retries, the retry finds
/// nothing new to count, and still every count ends exact once everyone read everything.
async fn timeouts_after_the_write<F: StoreFixture>(fixture: &F) {
    let node = Node::failing(fixture.store(), &["insert_message", "mark"], Failure::Applied).await;
    let (room, r, mut lab, mut teacher) = open_room(&node, fixture).await;
    let post = json!({"requestId": r, "message": "one", "clientMessageId": "3f0c6a52-0d7e-4f43-9c1e-6f1e1b7a0001"});
    node.fail_next(1);
    assert_eq!(lab.err("message", post.clone()).await["code"], "UNAVAILABLE");
    let one = lab.ok("message", post).await["id"].clone();
    let two = teacher.post(&r, "two").await["id"].clone();
    for (reader, id) in [(&mut lab, &two), (&mut teacher, &one)] {
        let read = json!({"requestId": r, "messages": [id]});
        node.fail_next(1);
        assert_eq!(reader.err("readMessages", read.clone()).await["code"], "UNAVAILABLE");
        reader.ok("readMessages", read).await;
    }
    assert_eq!(node.store.hook().fails.load(Ordering::SeqCst), 0, "every injected failure was hit");
    assert_eq!(told(&node, "lab1", "LAB", &r).await, (0, 0, Value::Null), "lab1 read everything");
    assert_eq!(told(&node, "t1", "TEACHER", &r).await, (0, 0, Value::Null), "t1 read everything");
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.chat.recounts_waiting() > 0 {
        assert!(Instant::now() < deadline, "the recounts never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_unread(&node, room, "lab1").await, 0);
    assert_eq!(stored_unread(&node, room, "t1").await, 0);
}

#[tokio::test]
async fn memory_counts_exact_after_writes_that_timed_out_but_took_effect() {
    timeouts_after_the_write(&MemoryFixture::new()).await;
}

#[tokio::test]
async fn mongodb_counts_exact_after_writes_that_timed_out_but_took_effect() {
    timeouts_after_the_write(&MongoFixture::new("unread_heal_timeouts").await).await;
}
