//! How far a node's inbox task falls behind a burst of posts: the store reads it makes and the
//! time it takes to send every subscriber their rows.
//!
//! `--notices` "posted" notices (default 2,000) arrive at `--rate` per second (default 0: all at
//! once), round-robin over `--rooms` rooms (default 10), at one [`InboxHub`] with `--users` LAB
//! subscribers (default 20). The store is
//! the in-memory one, behind a wrapper that counts the reads of the inbox task and makes each
//! last `--latency-us` microseconds (default 1,000, a MongoDB round trip on a loaded machine).
//! It prints the store reads, the rows delivered, the time until the task went quiet (no row for
//! 200 ms, which is not counted) and the backlog: how long after the last notice the last row
//! came. Timing is reported, never asserted.
//!
//! ```text
//! cargo run --release -p labchat-core --example inbox_backlog
//! cargo run --release -p labchat-core --example inbox_backlog -- --notices 2000 --rate 500 --rooms 10 --users 20 --latency-us 1000
//! ```

use std::error::Error;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use labchat_core::{ChatStore, InboxHub, InboxListener, InboxNotice, InboxSink, Inserted, Marked, SinkId, StoreError};
use labchat_domain::{
    CatchUp, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId, MessageText,
    NewMessage, ReceiptKind, Request, RequestId, Role, Seq, Timestamp, User, UserId,
};
use labchat_memory::MemoryStore;

/// The memory store, counting and slowing the reads the inbox task makes.
struct Slow {
    inner: MemoryStore,
    latency: Duration,
    reads: AtomicU64,
}

impl Slow {
    async fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.latency).await;
    }
}

#[async_trait]
impl ChatStore for Slow {
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.read().await;
        self.inner.find_request(id).await
    }
    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        self.inner.insert_message(message).await
    }
    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        self.inner.changed(request, catch_up, limit).await
    }
    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError> {
        self.inner.history(request, query).await
    }
    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError> {
        self.inner.mark(request, user, kind, ids, at).await
    }
    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        self.inner.inbox(viewer, query).await
    }
    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError> {
        self.read().await;
        self.inner.inbox_rows(request, users).await
    }
    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        self.inner.unread_count(request, user).await
    }
    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError> {
        self.inner.first_unread(request, user).await
    }
    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.inner.message(request, id).await
    }
    async fn update_message(&self, message: &Message) -> Result<bool, StoreError> {
        self.inner.update_message(message).await
    }
    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError> {
        self.inner.count_deleted(message).await
    }
    async fn count_posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError> {
        self.inner.count_posted(message, seq).await
    }
    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        self.inner.count_read(request, user, n).await
    }
    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError> {
        self.inner.recount(request, user).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn seq_seen(&self, request: RequestId, seq: Seq) {
        self.inner.seq_seen(request, seq);
    }
}

/// A subscriber: how many rows it got, and when the last one came.
struct Sink {
    id: SinkId,
    rows: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl InboxSink for Sink {
    fn id(&self) -> SinkId {
        self.id
    }
    fn deliver_inbox(&self, _row: Arc<InboxRow>) {
        self.rows.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}

fn arg(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).ok_or(format!("{name} needs a value"))?.parse()?),
        None => Ok(default),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let notices = arg("--notices", 2000)?;
    let rooms = arg("--rooms", 10)?;
    let users = arg("--users", 20)?;
    let latency = Duration::from_micros(arg("--latency-us", 1000)?);
    let rate = arg("--rate", 0)?;
    let store = Arc::new(Slow { inner: MemoryStore::new(), latency, reads: AtomicU64::new(0) });
    let ids = labchat_core::MessageIdGenerator::new();
    let teacher = UserId::parse("teacher-1")?;
    let mut room_ids = Vec::new();
    for n in 0..rooms {
        let room = RequestId::parse(&format!("{:024x}", n + 1))?;
        store.inner.add_request(Request::new(room, teacher.clone()));
        let now = Timestamp::from_unix_millis(1_733_000_000_000);
        let m = Message::new(NewMessage {
            id: ids.next(now),
            request_id: room,
            sender_id: teacher.clone(),
            sender_role: Role::Teacher,
            text: MessageText::parse("hello", 100)?,
            created_at: now,
            client_message_id: None,
        });
        if let Inserted::New(seq) = store.inner.insert_message(&m).await? {
            store.inner.count_posted(&m, seq).await?;
        }
        room_ids.push(room);
    }
    let hub = InboxHub::new(Arc::clone(&store) as Arc<dyn ChatStore>);
    let mut sinks = Vec::new();
    for n in 0..users {
        let sink = Arc::new(Sink { id: SinkId(n), rows: AtomicU64::new(0), last: Mutex::new(None) });
        hub.subscribe(
            &User::new(UserId::parse(format!("lab-{n}"))?, Role::Lab),
            Arc::clone(&sink) as Arc<dyn InboxSink>,
        );
        sinks.push(sink);
    }
    let started = Instant::now();
    for i in 0..notices {
        if rate > 0 {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate as f64)).into()).await;
        }
        let room = room_ids[usize::try_from(i % rooms)?];
        hub.notice(InboxNotice::Posted { request_id: room });
    }
    let sent = Instant::now();
    let rows = || sinks.iter().map(|s| s.rows.load(Ordering::Relaxed)).sum::<u64>();
    let mut seen = rows();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rows();
        if now == seen && now > 0 {
            break;
        }
        seen = now;
    }
    let last = sinks.iter().filter_map(|s| *s.last.lock().unwrap_or_else(|p| p.into_inner())).max();
    let drained = last.map_or(Duration::ZERO, |t| t.duration_since(started));
    let backlog = last.map_or(Duration::ZERO, |t| t.saturating_duration_since(sent));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "notices {notices} at {rate}/s, rooms {rooms}, users {users}, store latency {} us: {} store reads ({:.2} per notice), {} rows delivered, drained in {:.3} s, backlog after the last notice {:.3} s",
        latency.as_micros(),
        store.reads.load(Ordering::Relaxed),
        store.reads.load(Ordering::Relaxed) as f64 / notices as f64,
        seen,
        drained.as_secs_f64(),
        backlog.as_secs_f64(),
    )?;
    Ok(())
}
