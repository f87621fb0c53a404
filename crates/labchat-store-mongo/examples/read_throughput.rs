//! The reads a crowd of clients coming back at once makes, on MongoDB: each of `--readers`
//! tasks (default 2000), all at once, reads one room's request ([`ChatStore::find_request`]),
//! its unread count ([`ChatStore::unread_count`]) and the page before its last message
//! ([`ChatStore::history`] with a cursor), as a join does. Each room holds one message, posted
//! by its teacher; the reader is lab staff, so its unread count is 1.
//!
//! It runs `--rounds` waves (default 3) in one fresh database, dropped afterwards, and prints
//! each wave's reads per second and the best. It checks only correctness (each request found
//! with its creator, each count 1, each page empty and found); timing is reported, never
//! asserted. Run it on two trees to compare them.
//!
//! ```text
//! scripts/mongo-test-server.sh start
//! LABCHAT_TEST_MONGO_URI=$(scripts/mongo-test-server.sh uri) \
//!     cargo run --release -p labchat-store-mongo --example read_throughput
//! cargo run --release -p labchat-store-mongo --example read_throughput -- mongodb://127.0.0.1:27017 --readers 2000 --rounds 3
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use labchat_core::{ChatStore, Inserted, MessageIdGenerator};
use labchat_domain::{
    Cursor, HistoryLimit, HistoryQuery, Message, MessageId, MessageText, NewMessage, ObjectIdBytes, RequestId, Role,
    Timestamp, UserId,
};
use labchat_store_mongo::{MongoSettings, MongoStore};
use mongodb::bson::{doc, oid::ObjectId};

#[path = "support/args.rs"]
mod args;

use args::{BoxError, Flag};

const TEACHER: &str = "teacher-1";

struct Args {
    uri: String,
    readers: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let flags =
        [Flag { name: "--readers", default: 2000, max: 20_000 }, Flag { name: "--rounds", default: 3, max: 10 }];
    let (uri, v) = args::parse("read_throughput", &flags)?;
    Ok(Args { uri, readers: v[0], rounds: v[1] })
}

fn room(n: usize) -> Result<RequestId, BoxError> {
    Ok(RequestId::from_object_id(ObjectIdBytes::from_parts(0x6751_b6df, [0x7a, 0x12, 0, 0, 0], u32::try_from(n)?)))
}

fn now() -> Result<Timestamp, BoxError> {
    Ok(Timestamp::from_unix_millis(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?))
}

/// Each room's request (created by the teacher) and one message, counted; the message ids.
async fn seed(store: &MongoStore, db: &mongodb::Database, readers: usize) -> Result<Vec<MessageId>, BoxError> {
    let requests: Vec<_> = (0..readers)
        .map(|r| Ok(doc! {"_id": ObjectId::from_bytes(room(r)?.object_id().bytes()), "createdBy": TEACHER}))
        .collect::<Result<_, BoxError>>()?;
    db.collection("requests").insert_many(requests).await?;
    let ids = MessageIdGenerator::new();
    let mut posted = Vec::with_capacity(readers);
    for r in 0..readers {
        let created_at = now()?;
        let m = Message::new(NewMessage {
            id: ids.next(created_at),
            request_id: room(r)?,
            sender_id: UserId::parse(TEACHER)?,
            sender_role: Role::Teacher,
            text: MessageText::parse(format!("room {r}: the samples are ready"), 4000)?,
            created_at,
            client_message_id: None,
        });
        match store.insert_message(&m).await? {
            Inserted::New(seq) => store.count_posted(&m, seq).await?,
            Inserted::Duplicate(o) => return Err(format!("message {} came back as {}", m.id, o.id).into()),
        }
        posted.push(m.id);
    }
    Ok(posted)
}

/// One reader: the three reads of a join, checked.
async fn read(store: Arc<MongoStore>, request: RequestId, last: MessageId) -> Result<(), BoxError> {
    let reader = UserId::parse("lab-1")?;
    let found = store.find_request(request).await?.ok_or_else(|| format!("request {request} not found"))?;
    if found.created_by().map(UserId::as_str) != Some(TEACHER) {
        return Err(format!("request {request}: creator {:?}", found.created_by()).into());
    }
    let unread = store.unread_count(request, &reader).await?;
    if unread != 1 {
        return Err(format!("request {request}: unread {unread}, not 1").into());
    }
    let query = HistoryQuery { cursor: Cursor::Before(last), limit: HistoryLimit::new(50)? };
    let page = store.history(request, query).await?.ok_or_else(|| format!("request {request}: cursor not found"))?;
    if !page.messages.is_empty() {
        return Err(format!("request {request}: {} messages before the first", page.messages.len()).into());
    }
    Ok(())
}

/// One wave: every reader at once; reads per second.
async fn wave(store: &Arc<MongoStore>, posted: &[MessageId]) -> Result<f64, BoxError> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(posted.len());
    for (r, last) in posted.iter().enumerate() {
        tasks.push(tokio::spawn(read(Arc::clone(store), room(r)?, *last)));
    }
    for t in tasks {
        t.await??;
    }
    let reads = u32::try_from(posted.len() * 3).map_or(f64::MAX, f64::from);
    Ok(reads / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let database = format!("labchat_reads_{}", std::process::id());
    let settings = MongoSettings {
        uri: args.uri.clone(),
        database: database.clone(),
        op_timeout: Duration::from_secs(60),
        ..MongoSettings::default()
    };
    let store = Arc::new(MongoStore::connect(settings).await?);
    let client = mongodb::Client::with_uri_str(&args.uri).await?;
    let db = client.database(&database);
    let mut out = std::io::stdout().lock();
    let result = async {
        let posted = seed(&store, &db, args.readers).await?;
        writeln!(
            out,
            "{} readers at once, 3 reads each (request, unread count, page before a cursor), against {}",
            args.readers, args.uri
        )?;
        let mut best = 0.0_f64;
        for round in 1..=args.rounds {
            let rate = wave(&store, &posted).await?;
            writeln!(out, "wave {round}: {rate:>8.0} reads/s")?;
            out.flush()?;
            best = best.max(rate);
        }
        writeln!(out, "best: {best:.0} reads/s")?;
        Ok::<_, BoxError>(())
    }
    .await;
    drop(store);
    if let Err(e) = db.drop().await {
        writeln!(std::io::stderr(), "could not drop the database {database}: {e}")?;
    }
    result
}
