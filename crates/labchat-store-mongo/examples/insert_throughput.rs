//! Persisted messages per second on MongoDB with many rooms posting at once: message inserts
//! and their counts batched (group commit, [`MongoSettings::batch_inserts`] on, the default)
//! against one insert and two count writes per message (off).
//!
//! Each of `--rooms` rooms (default 100) posts `--messages` messages (default 50) one after the
//! other, each through [`ChatStore::insert_message`] then [`ChatStore::count_posted`], as the
//! chat use case does (one write per room in flight); all rooms run at once. Each mode runs
//! `--rounds` times (default 2), the two modes alternating, each run in a fresh database that is
//! dropped afterwards. It prints the messages stored per second of each run and the best of each
//! mode, and checks only correctness: every insert is new, and every room's history holds
//! exactly its messages, in order. Timing is reported, never asserted.
//!
//! ```text
//! scripts/mongo-test-server.sh start
//! LABCHAT_TEST_MONGO_URI=$(scripts/mongo-test-server.sh uri) \
//!     cargo run --release -p labchat-store-mongo --example insert_throughput
//! cargo run --release -p labchat-store-mongo --example insert_throughput -- mongodb://127.0.0.1:27017 --rooms 100 --messages 50 --rounds 2
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use labchat_core::{ChatStore, Inserted, MessageIdGenerator};
use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, HistoryQuery, Message, MessageId, MessageText, NewMessage, ObjectIdBytes,
    RequestId, Role, Timestamp, UserId,
};
use labchat_store_mongo::{MongoSettings, MongoStore};

#[path = "support/args.rs"]
mod args;

use args::{BoxError, Flag};

struct Args {
    uri: String,
    rooms: usize,
    messages: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let flags = [
        Flag { name: "--rooms", default: 100, max: 1000 },
        Flag { name: "--messages", default: 50, max: 1000 },
        Flag { name: "--rounds", default: 2, max: 10 },
    ];
    let (uri, v) = args::parse("insert_throughput", &flags)?;
    Ok(Args { uri, rooms: v[0], messages: v[1], rounds: v[2] })
}

fn room(n: usize) -> Result<RequestId, BoxError> {
    Ok(RequestId::from_object_id(ObjectIdBytes::from_parts(0x6751_b6df, [0x7a, 0x11, 0, 0, 0], u32::try_from(n)?)))
}

fn now() -> Result<Timestamp, BoxError> {
    Ok(Timestamp::from_unix_millis(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?))
}

fn message(ids: &MessageIdGenerator, request: RequestId, i: usize, tag: &str) -> Result<Message, BoxError> {
    let created_at = now()?;
    Ok(Message::new(NewMessage {
        id: ids.next(created_at),
        request_id: request,
        sender_id: UserId::parse(format!("teacher-{}", i % 2))?,
        sender_role: Role::Teacher,
        text: MessageText::parse(format!("{tag} message {i}: the microscopes for lab 3 are ready"), 4000)?,
        created_at,
        client_message_id: Some(ClientMessageId::parse(format!("{tag}-{i}"))?),
    }))
}

/// One room: `n` inserts one after the other; the ids it stored, in order.
async fn post(
    store: Arc<MongoStore>,
    ids: Arc<MessageIdGenerator>,
    request: RequestId,
    n: usize,
    tag: &'static str,
) -> Result<Vec<MessageId>, BoxError> {
    let mut stored = Vec::with_capacity(n);
    for i in 0..n {
        let m = message(&ids, request, i, tag)?;
        match store.insert_message(&m).await? {
            Inserted::New(seq) => {
                store.count_posted(&m, seq).await?;
                stored.push(m.id);
            }
            Inserted::Duplicate(o) => {
                return Err(format!("message {} came back as a duplicate of {}", m.id, o.id).into());
            }
        }
    }
    Ok(stored)
}

/// All rooms at once, `n` messages each; the ids each room stored.
async fn all_rooms(
    store: &Arc<MongoStore>,
    ids: &Arc<MessageIdGenerator>,
    rooms: usize,
    n: usize,
    tag: &'static str,
) -> Result<Vec<Vec<MessageId>>, BoxError> {
    let mut tasks = Vec::with_capacity(rooms);
    for r in 0..rooms {
        tasks.push(tokio::spawn(post(Arc::clone(store), Arc::clone(ids), room(r)?, n, tag)));
    }
    let mut stored = Vec::with_capacity(rooms);
    for t in tasks {
        stored.push(t.await??);
    }
    Ok(stored)
}

/// One run in a fresh database: messages stored per second.
async fn run(args: &Args, batch_inserts: bool, round: usize) -> Result<f64, BoxError> {
    let database =
        format!("labchat_throughput_{}_{}_{round}", std::process::id(), if batch_inserts { "b" } else { "u" });
    let settings = MongoSettings {
        uri: args.uri.clone(),
        database: database.clone(),
        op_timeout: Duration::from_secs(30),
        batch_inserts,
        ..MongoSettings::default()
    };
    let store = Arc::new(MongoStore::connect(settings).await?);
    let ids = Arc::new(MessageIdGenerator::new());
    // Warm up (connections, indexes): one message per room, not timed.
    let warm = all_rooms(&store, &ids, args.rooms, 1, "warm").await?;

    let started = Instant::now();
    let stored = all_rooms(&store, &ids, args.rooms, args.messages, "m").await?;
    let took = started.elapsed();

    // Correctness: each room holds its warm-up message, then its messages in the order stored.
    let limit = HistoryLimit::new(args.messages + 2)?;
    for (r, (warm, ids)) in warm.iter().zip(&stored).enumerate() {
        let page = store.history(room(r)?, HistoryQuery { cursor: Cursor::Latest, limit }).await?.unwrap_or_default();
        let got: Vec<MessageId> = page.messages.iter().map(|m| m.id).collect();
        let want: Vec<MessageId> = warm.iter().chain(ids).copied().collect();
        if got != want {
            return Err(format!(
                "room {r}: history holds {} messages, not the {} stored, in order",
                got.len(),
                want.len()
            )
            .into());
        }
    }
    drop(store);
    let client = mongodb::Client::with_uri_str(&args.uri).await?;
    if let Err(e) = client.database(&database).drop().await {
        writeln!(std::io::stderr(), "could not drop the database {database}: {e}")?;
    }
    let total = args.rooms * args.messages;
    Ok(count_f64(total) / took.as_secs_f64())
}

fn count_f64(n: usize) -> f64 {
    u32::try_from(n).map_or(f64::MAX, f64::from)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} rooms at once, {} messages each, one after the other per room ({} per run), against {}",
        args.rooms,
        args.messages,
        args.rooms * args.messages,
        args.uri
    )?;
    out.flush()?;
    let (mut batched, mut unbatched) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        for batch in [false, true] {
            let rate = run(&args, batch, round).await?;
            let mode = if batch { "batched  " } else { "unbatched" };
            writeln!(out, "round {round}: {mode} {rate:>9.0} messages/s")?;
            out.flush()?;
            if batch { batched.push(rate) } else { unbatched.push(rate) }
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
    let (b, u) = (best(&batched), best(&unbatched));
    writeln!(out, "best: batched {b:.0} messages/s, unbatched {u:.0} messages/s: {:.1}x", b / u)?;
    Ok(())
}
