//! The store reads a burst of joins costs: the clients of a node that died rejoin their rooms on
//! this one, all at once.
//!
//! `--rooms` rooms (default 40) of `--members` members (default 5) each hold `--messages`
//! messages (default 60). Every member joins from its own connection, all joins at once: first
//! with `after` = the room's last message (a rejoin), then again without it (a fresh join of
//! the latest page). The store is the in-memory one behind a wrapper that counts its calls by
//! operation; `--reuse-ms` is the join cache's lifetime (default 1000, the server's default;
//! 0: every join reads its own history, as before the cache). It prints the calls per operation
//! and per join. Counts only: no timing.
//!
//! ```text
//! cargo run --release -p labchat-core --example join_burst -- --reuse-ms 0
//! cargo run --release -p labchat-core --example join_burst
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_core::{
    Chat, ChatStore, Hooked, MessageIdGenerator, Published, RoomSink, SinkId, StoreCall, StoreFuture, StoreHook,
    SystemClock,
};
use labchat_domain::{HistoryLimit, MessageId, Request, RequestId, Role, Timestamp, User, UserId};
use labchat_memory::{LocalBroadcaster, MemoryStore};

#[path = "support/seed.rs"]
mod seed;

/// Counts the store's calls by operation.
#[derive(Default)]
struct Count(Mutex<BTreeMap<&'static str, u64>>);

impl StoreHook for Count {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(call.op).or_default() += 1;
        inner
    }
}

impl Count {
    fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A connection that drops what it is sent.
struct Conn(SinkId);

impl RoomSink for Conn {
    fn id(&self) -> SinkId {
        self.0
    }
    fn deliver(&self, _event: Arc<Published>) {}
}

fn arg(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).ok_or(format!("{name} needs a value"))?.parse()?),
        None => Ok(default),
    }
}

/// Joins every member of every room at once (with `after` = the room's last message when
/// `rejoin`), each from a new connection numbered from `first_sink`.
async fn burst(
    chat: &Arc<Chat>,
    rooms: &[(RequestId, MessageId)],
    members: u64,
    rejoin: bool,
    first_sink: u64,
) -> Result<(), Box<dyn Error>> {
    let mut joins = Vec::new();
    for (r, (room, last)) in rooms.iter().enumerate() {
        for m in 0..members {
            let (chat, room, after) = (Arc::clone(chat), *room, rejoin.then_some(*last));
            let user = User::new(UserId::parse(format!("lab-{r}-{m}"))?, Role::Lab);
            let sink = Arc::new(Conn(SinkId(first_sink + r as u64 * members + m)));
            joins.push(tokio::spawn(async move { chat.join(&user, room, after, sink, false).await.map(drop) }));
        }
    }
    for j in joins {
        j.await??;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let (n_rooms, members, messages) = (arg("--rooms", 40)?, arg("--members", 5)?, arg("--messages", 60)?);
    let reuse = Duration::from_millis(arg("--reuse-ms", 1000)?);
    let memory = Arc::new(MemoryStore::new());
    let store = Arc::new(Hooked::new(memory.clone(), Count::default()));
    let ids = MessageIdGenerator::new();
    let teacher = UserId::parse("teacher-1")?;
    let mut rooms = Vec::new();
    for n in 0..n_rooms {
        let room = RequestId::parse(&format!("{:024x}", n + 1))?;
        memory.add_request(Request::new(room, teacher.clone()));
        let mut last = None;
        for i in 0..messages {
            let at = Timestamp::from_unix_millis(1_733_000_000_000 + i64::try_from(i)?);
            last = Some(seed::hello(&memory, &ids, room, &teacher, at).await?);
        }
        rooms.push((room, last.ok_or("--messages must be at least 1")?));
    }
    store.hook().take();
    let chat = Arc::new(
        Chat::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            Arc::new(LocalBroadcaster::new()),
            Arc::new(SystemClock),
            HistoryLimit::DEFAULT,
        )
        .with_join_reuse(reuse),
    );
    let joins = n_rooms * members;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{joins} joins at once in {n_rooms} rooms of {members} members ({messages} messages each), join reuse {} ms:",
        reuse.as_millis()
    )?;
    for (what, rejoin, first_sink) in [("rejoin with after", true, 0), ("join of the latest page", false, joins)] {
        let reused = chat.history_reuses();
        burst(&chat, &rooms, members, rejoin, first_sink).await?;
        let calls = store.hook().take();
        let total: u64 = calls.values().sum();
        let per_op: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        writeln!(
            out,
            "  {what}: {total} store calls ({:.2} per join; {}), {} joins served a kept page",
            total as f64 / joins as f64,
            per_op.join(", "),
            chat.history_reuses() - reused,
        )?;
    }
    Ok(())
}
