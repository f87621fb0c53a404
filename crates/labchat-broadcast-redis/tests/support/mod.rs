//! Test support: a real redis-server per test, two-node set-ups over one in-memory store, and
//! recording sinks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_broadcast_redis::{RedisBroadcaster, RedisSettings};
use labchat_core::{Broadcaster, ChatStore, Clock, Inserted, Published, RoomSink, SinkId, SystemClock};
use labchat_domain::{
    Message, MessageId, MessageRecord, MessageText, ObjectIdBytes, RequestId, Role, RoomEvent, Timestamp, UserId,
};
use labchat_memory::MemoryStore;
use tokio::process::{Child, Command};

pub mod flaky;
pub mod gate;

/// A redis-server on a free loopback port, killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one, or returns `None` (test skipped) when redis-server is not installed and
    /// `LABCHAT_TEST_REDIS=required` is not set.
    pub async fn start() -> Option<Self> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().await.is_err() {
            if std::env::var("LABCHAT_TEST_REDIS").as_deref() == Ok("required") {
                panic!("redis-server is not installed and LABCHAT_TEST_REDIS=required");
            }
            eprintln!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, child: None };
        redis.restart().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill().await;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        wait_for("redis-server to answer", Duration::from_secs(10), || {
            let client = client.clone();
            async move {
                match client.get_multiplexed_async_connection().await {
                    Ok(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    pub async fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).unwrap();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().await.unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// `CLIENT KILL TYPE pubsub` through a separate connection; how many were killed.
    pub async fn kill_pubsub_clients(&self) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut c).await.unwrap()
    }
}

/// Polls `check` every 10 ms until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sink that records every event it gets.
pub struct Recorder {
    id: SinkId,
    events: Mutex<Vec<RoomEvent>>,
}

impl Recorder {
    pub fn new(id: u64) -> Arc<Self> {
        Arc::new(Self { id: SinkId(id), events: Mutex::default() })
    }

    pub fn events(&self) -> Vec<RoomEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The seqs of the messages received, in order of arrival.
    pub fn seqs(&self) -> Vec<u64> {
        self.events().iter().filter_map(|e| e.seq().map(|s| s.get())).collect()
    }

    /// Waits until `n` messages arrived, then checks they are exactly 1..=n in order.
    pub async fn expect_seqs(&self, who: &str, n: u64, limit: Duration) {
        wait_for(&format!("{who} to receive {n} messages"), limit, || async { self.seqs().len() as u64 >= n }).await;
        assert_eq!(self.seqs(), (1..=n).collect::<Vec<_>>(), "{who}: every message once, in seq order");
    }
}

impl RoomSink for Recorder {
    fn id(&self) -> SinkId {
        self.id
    }
    fn deliver(&self, event: Arc<Published>) {
        self.events.lock().unwrap().push(event.event().clone());
    }
}

/// Two nodes sharing one store and one Redis.
pub struct Nodes {
    pub store: Arc<MemoryStore>,
    pub a: Arc<RedisBroadcaster>,
    pub b: Arc<RedisBroadcaster>,
}

pub fn settings(redis: &Redis, node_id: &str) -> RedisSettings {
    RedisSettings { url: redis.url(), node_id: node_id.to_owned(), ..RedisSettings::default() }
}

impl Nodes {
    pub async fn start(redis: &Redis, tune: impl Fn(&mut RedisSettings)) -> Self {
        let store = Arc::new(MemoryStore::new());
        let start = |id: &str| {
            let mut s = settings(redis, id);
            tune(&mut s);
            RedisBroadcaster::start(s, store.clone() as Arc<dyn ChatStore>).unwrap()
        };
        let nodes = Self { a: start("node-a"), b: start("node-b"), store };
        nodes.wait_connected(true).await;
        nodes
    }

    /// A recording sink subscribed to `room` on each node (ids 1 on a, 2 on b).
    pub async fn recorders(&self, room: RequestId) -> (Arc<Recorder>, Arc<Recorder>) {
        let (on_a, on_b) = (Recorder::new(1), Recorder::new(2));
        self.a.subscribe(room, on_a.clone()).await.unwrap();
        self.b.subscribe(room, on_b.clone()).await.unwrap();
        (on_a, on_b)
    }

    pub async fn wait_connected(&self, connected: bool) {
        for node in [&self.a, &self.b] {
            wait_for(&format!("backplane connected = {connected}"), Duration::from_secs(10), || async {
                node.backplane().unwrap().connected == connected
            })
            .await;
        }
    }

    /// Stores a message (the store assigns its seq) and returns it; nothing is published.
    pub async fn store_only(&self, room: RequestId) -> Message {
        let mut m = message(room);
        match self.store.insert_message(&m).await.unwrap() {
            Inserted::New(seq) => m.seq = Some(seq),
            Inserted::Duplicate(_) => panic!("unexpected duplicate"),
        }
        m
    }

    /// Posts a message through `node`: stored, then published (as the use cases do).
    pub async fn post(&self, node: &RedisBroadcaster, room: RequestId) -> Message {
        let m = self.store_only(room).await;
        node.publish(RoomEvent::MessagePosted(m.clone())).await.unwrap();
        m
    }

    pub fn shutdown(&self) {
        self.a.shutdown();
        self.b.shutdown();
    }
}

static NEXT: AtomicU32 = AtomicU32::new(1);

fn object_id() -> ObjectIdBytes {
    ObjectIdBytes::from_parts(1_700_000_000, [1, 2, 3, 4, 5], NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn room() -> RequestId {
    RequestId::from_object_id(object_id())
}

pub fn message(room: RequestId) -> Message {
    Message::restore(MessageRecord {
        id: MessageId::from_object_id(object_id()),
        request_id: room,
        seq: None,
        sender_id: UserId::parse("teacher-1").unwrap(),
        sender_role: Role::Teacher,
        text: Some(MessageText::parse("hello", 100).unwrap()),
        // Stamped now, as a node stamps a post: the quiet-room check looks at recent messages.
        created_at: SystemClock.now(),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

pub fn read_receipt(room: RequestId, ids: &[MessageId]) -> RoomEvent {
    RoomEvent::Read {
        request_id: room,
        user_id: UserId::parse("lab-1").unwrap(),
        messages: ids.to_vec(),
        at: Timestamp::from_unix_millis(2),
    }
}
