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

use labchat_core::{
    ChatStore, Hooked, InboxHub, InboxListener, InboxNotice, InboxSink, SinkId, StoreCall, StoreFuture, StoreHook,
};
use labchat_domain::{InboxRow, Request, RequestId, Role, Timestamp, User, UserId};
use labchat_memory::MemoryStore;

#[path = "support/seed.rs"]
mod seed;

/// Counts and slows the reads the inbox task makes, in front of the memory store.
struct Slow {
    latency: Duration,
    reads: AtomicU64,
}

impl StoreHook for Slow {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if !matches!(call.op, "find_request" | "inbox_rows") {
            return inner;
        }
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.latency).await;
            inner.await
        })
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
    let memory = Arc::new(MemoryStore::new());
    let store = Arc::new(Hooked::new(memory.clone(), Slow { latency, reads: AtomicU64::new(0) }));
    let ids = labchat_core::MessageIdGenerator::new();
    let teacher = UserId::parse("teacher-1")?;
    let mut room_ids = Vec::new();
    for n in 0..rooms {
        let room = RequestId::parse(&format!("{:024x}", n + 1))?;
        memory.add_request(Request::new(room, teacher.clone()));
        seed::hello(&memory, &ids, room, &teacher, Timestamp::from_unix_millis(1_733_000_000_000)).await?;
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
        store.hook().reads.load(Ordering::Relaxed),
        store.hook().reads.load(Ordering::Relaxed) as f64 / notices as f64,
        seen,
        drained.as_secs_f64(),
        backlog.as_secs_f64(),
    )?;
    Ok(())
}
