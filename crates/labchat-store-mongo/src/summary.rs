//! What the inbox reads, kept up to date by the writes that change it: one summary per room
//! (its last message) and one counter per room and user (the messages the user sent or read).
//! Also the start-up step that builds them for rooms stored before they existed.
//!
//! A summary only ever moves forward: it is replaced only by a message with a higher seq (an
//! upsert filtered on `lastSeq < seq`), so concurrent nodes cannot move it back. A duplicate-key
//! refusal of that upsert means "a newer one is there", or that another node created the room's
//! first summary between this upsert's look and its insert (the server retries an upsert only
//! when its filter is equality on the unique key): the upsert is sent once more, and then either
//! applies or is refused for the first reason. A counter moves by `$inc` only.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{Message, RequestId, Seq, UserId};
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use serde::Deserialize;

use crate::documents::{IdOnly, MessageDoc, ReceiptDoc, object_id, stored_seq};
use crate::errors::{DUPLICATE_KEY, bad_data, bounded, store_error, within};
use crate::gather::{Fetched, Gather, batch_of};
use crate::summary_writes::{advance_write, seen_key_of, seen_write};

/// The collection of room summaries (in [`crate::MongoSettings::database`]).
pub const ROOMS_COLLECTION: &str = "chatRooms";
/// The collection of per room and user counters (in [`crate::MongoSettings::database`]).
pub const SEEN_COLLECTION: &str = "chatSeen";

/// A room's summary as stored: `_id` and `requestId` are the request id (24 lowercase hex; the
/// copy in `requestId` is what the paging index holds, as an index on `_id` with other keys
/// breaks writes on some compatible servers).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomSummary {
    #[serde(rename = "_id")]
    pub(crate) id: String,
    pub(crate) last_seq: i64,
    /// The last message's creation time, in milliseconds since the epoch (an integer, not a
    /// BSON date: the test server turns a date written by `$set` into a string).
    pub(crate) last_activity_at: i64,
    pub(crate) last_message_id: ObjectId,
    /// How many of the room's messages were deleted (counted by `count_deleted`).
    #[serde(default)]
    pub(crate) deleted: i64,
}

impl RoomSummary {
    /// The room's messages that may be unread: all but the deleted ones.
    pub(crate) fn live(&self) -> u64 {
        u64::try_from(self.last_seq.saturating_sub(self.deleted)).unwrap_or(0)
    }

    /// A user's unread count in the room, given their counter (`None`: none yet).
    pub(crate) fn unread(&self, seen: Option<i64>) -> u64 {
        self.live().saturating_sub(u64::try_from(seen.unwrap_or(0)).unwrap_or(0))
    }
}

/// What an unread count is called in errors.
pub(crate) const UNREAD_CONTEXT: &str = "count a user's unread messages";

/// A counter as stored.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct SeenDoc {
    #[serde(rename = "_id")]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) seen: i64,
}

/// The `_id` of the counter of `user` in `room`: `<requestId>:<userId>` (the request id has a
/// fixed length, so the key is unambiguous).
pub(crate) fn seen_key(room: RequestId, user: &UserId) -> String {
    seen_key_of(&room.to_hex(), user.as_str())
}

/// The two collections, as the store holds them.
#[derive(Clone, Debug)]
pub(crate) struct Summaries {
    pub(crate) rooms: Collection<RoomSummary>,
    pub(crate) seen: Collection<SeenDoc>,
    pub(crate) op_timeout: Duration,
}

/// The filter of the tombstones of `room` (hex).
fn tombstones(room: &str) -> Document {
    doc! {"requestId": room, "deletedAt": {"$exists": true}}
}

/// The ids (hex strings, as receipts name their message) of the tombstones of `room` (hex).
/// Deleted messages are few, so they are listed rather than joined.
async fn tombstone_ids(
    messages: &Collection<MessageDoc>,
    room: &str,
    limit: Duration,
    context: &str,
) -> Result<Vec<Bson>, StoreError> {
    let found: Vec<IdOnly> = bounded(limit, context, async {
        let coll = messages.clone_with_type::<IdOnly>();
        coll.find(tombstones(room)).projection(doc! {"_id": 1}).await?.try_collect().await
    })
    .await?;
    Ok(found.into_iter().map(|d| Bson::String(d.id.to_hex())).collect())
}

/// Whether an upsert was refused because the document exists and did not match the filter.
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
}

impl Summaries {
    /// Moves the room's summary to `message` (stored as `seq`) unless it already names a later
    /// one.
    async fn advance(&self, room: &str, seq: i64, at: i64, id: ObjectId) -> Result<(), StoreError> {
        let context = "update a room's summary";
        let (filter, update) = advance_write(room, seq, at, id);
        let rooms = self.rooms.clone_with_type::<Document>();
        // A duplicate key: the summary exists with a later message, or another writer created
        // it meanwhile (see the module docs); once more tells which.
        for _ in 0..2 {
            match within(self.op_timeout, context, rooms.update_one(filter.clone(), update.clone()).upsert(true))
                .await?
            {
                Ok(_) => return Ok(()),
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(store_error(context, e)),
            }
        }
        Ok(())
    }

    /// The coalesced unread counts (see `gather.rs`): for each (room, user), the room's live
    /// messages less those the user's counter holds, with one query for the rooms' summaries and
    /// one for the users' counters; a room without a summary has nothing unread. A summary that
    /// cannot be read fails the counts of its room only (`Err`: what is wrong with it).
    pub(crate) fn unread_gather(&self) -> Gather<(RequestId, UserId), Result<u64, String>> {
        let summaries = self.clone();
        Gather::start(UNREAD_CONTEXT, self.op_timeout, move |keys| {
            let summaries = summaries.clone();
            async move { summaries.unread_counts(keys).await }
        })
    }

    async fn unread_counts(&self, keys: Vec<(RequestId, UserId)>) -> Fetched<(RequestId, UserId), Result<u64, String>> {
        let rooms: HashSet<String> = keys.iter().map(|(room, _)| room.to_hex()).collect();
        let batch = batch_of(rooms.len());
        let rooms: Vec<Bson> = rooms.into_iter().map(Bson::String).collect();
        let counters: Vec<String> = keys.iter().map(|(room, user)| seen_key(*room, user)).collect();
        let summaries = self.rooms.clone_with_type::<Document>();
        let (rooms, seen) = futures_util::future::join(
            bounded(self.op_timeout, "read the summaries of rooms", async {
                summaries.find(doc! {"_id": {"$in": rooms}}).batch_size(batch).await?.try_collect::<Vec<_>>().await
            }),
            self.seen_of(counters),
        )
        .await;
        let summaries: HashMap<String, Result<RoomSummary, String>> = rooms?
            .into_iter()
            .filter_map(|d| {
                let id = d.get_str("_id").ok()?.to_owned();
                Some((id, mongodb::bson::from_document::<RoomSummary>(d).map_err(|e| e.to_string())))
            })
            .collect();
        let seen = seen?;
        Ok(keys
            .into_iter()
            .map(|(room, user)| {
                let count = match summaries.get(&room.to_hex()) {
                    None => Ok(0),
                    Some(Ok(summary)) => Ok(summary.unread(seen.get(&seen_key(room, &user)).copied())),
                    Some(Err(e)) => Err(format!("the summary of room {room}: {e}")),
                };
                ((room, user), count)
            })
            .collect())
    }

    /// Counters by key, with one query.
    pub(crate) async fn seen_of(&self, keys: Vec<String>) -> Result<HashMap<String, i64>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let batch = batch_of(keys.len());
        let found = bounded(self.op_timeout, "read unread counters", async {
            self.seen.find(doc! {"_id": {"$in": keys}}).batch_size(batch).await?.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(found.into_iter().map(|d| (d.id, d.seen)).collect())
    }

    /// Adds `n` to the counter of `user` in `room`.
    pub(crate) async fn add_seen(&self, room: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        let context = "count messages sent or read";
        let n = i64::try_from(n).map_err(|e| bad_data(context, e.to_string()))?;
        let (filter, update) = seen_write(&room.to_hex(), user.as_str(), n);
        let seen = self.seen.clone_with_type::<Document>();
        bounded(self.op_timeout, context, seen.update_one(filter, update).upsert(true)).await.map(drop)
    }

    /// After `message` was stored as `seq`: the room's summary and the sender's counter, both
    /// at once.
    pub(crate) async fn posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError> {
        let room = message.request_id.to_hex();
        let at = message.created_at.unix_millis();
        let summary = self.advance(&room, stored_seq(seq), at, object_id(message.id.object_id()));
        let counter = self.add_seen(message.request_id, &message.sender_id, 1);
        let (a, b) = futures_util::future::join(summary, counter).await;
        a.and(b)
    }

    /// [`labchat_core::ChatStore::recount`]: the room's summary from its last message and its
    /// tombstones, and the counter of `user` set to the messages they sent plus those they read,
    /// deleted ones left out (counted from the messages and receipts, a query each).
    pub(crate) async fn recount(
        &self,
        messages: &Collection<MessageDoc>,
        receipts: &Collection<ReceiptDoc>,
        room: RequestId,
        user: &UserId,
    ) -> Result<(), StoreError> {
        let context = "recount an unread count";
        let hex = room.to_hex();
        let last = bounded(self.op_timeout, context, async {
            messages.find_one(doc! {"requestId": &hex, "seq": {"$exists": true}}).sort(doc! {"seq": -1}).await
        })
        .await?;
        let Some(last) = last else { return Ok(()) };
        let last_seq = last.seq.ok_or_else(|| bad_data(context, "the last message has no seq"))?;
        let deleted = tombstone_ids(messages, &hex, self.op_timeout, context).await?;
        let sent = doc! {"requestId": &hex, "seq": {"$exists": true}, "senderId": user.as_str(), "deletedAt": {"$exists": false}};
        let read =
            doc! {"requestId": &hex, "userId": user.as_str(), "kind": "read", "messageId": {"$nin": deleted.clone()}};
        let (sent, read) = futures_util::future::join(
            bounded(self.op_timeout, context, messages.count_documents(sent)),
            bounded(self.op_timeout, context, receipts.count_documents(read)),
        )
        .await;
        let seen = i64::try_from(sent?.saturating_add(read?)).map_err(|e| bad_data(context, e.to_string()))?;
        let filter = doc! {"_id": seen_key(room, user)};
        let update = doc! {
            "$set": {"seen": seen},
            "$setOnInsert": {"requestId": &hex, "userId": user.as_str()},
        };
        let coll = self.seen.clone_with_type::<Document>();
        bounded(self.op_timeout, context, coll.update_one(filter, update).upsert(true)).await?;
        self.advance(&hex, last_seq, last.created_at.timestamp_millis(), last.id).await?;
        self.set_deleted(&hex, deleted.len()).await
    }

    /// Sets the count of tombstones in the summary of `room` (which exists).
    async fn set_deleted(&self, room: &str, n: usize) -> Result<(), StoreError> {
        let context = "count a room's deleted messages";
        let n = i64::try_from(n).map_err(|e| bad_data(context, e.to_string()))?;
        let rooms = self.rooms.clone_with_type::<Document>();
        bounded(self.op_timeout, context, rooms.update_one(doc! {"_id": room}, doc! {"$set": {"deleted": n}}))
            .await
            .map(drop)
    }

    /// Whether the summaries were built: their paging index exists (found by its first key, as
    /// some compatible servers name and list indexes their own way).
    pub(crate) async fn built(&self) -> Result<bool, StoreError> {
        let indexes = bounded(self.op_timeout, "list the indexes of the room summaries", async {
            self.rooms.list_indexes().await?.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(indexes.iter().any(|i| i.keys.keys().next().is_some_and(|k| k == "lastActivityAt")))
    }
}

#[derive(Deserialize)]
struct RoomMax {
    #[serde(rename = "_id")]
    room: String,
    #[serde(rename = "lastSeq")]
    last_seq: i64,
}

#[derive(Deserialize)]
struct PerUser {
    #[serde(rename = "_id")]
    user: String,
    n: i64,
}

/// Builds the summary and the counters of every room with messages that has no summary yet:
/// its last message and its count of tombstones, and per user the messages they sent plus those
/// they read, deleted ones left out. Returns how many
/// rooms it built.
///
/// Runs at start-up until the summaries' index exists (created right after), before the node
/// serves: it reads every message once. Safe to repeat and to run on several nodes at once: a
/// counter is only inserted where none exists (a duplicate is left alone), and the summary,
/// written last, only moves forward. A room's counters can be off only if another node, already
/// serving, posts or reads in that room while it is being built.
pub(crate) async fn build_missing(
    summaries: &Summaries,
    messages: &Collection<MessageDoc>,
    receipts: &Collection<ReceiptDoc>,
) -> Result<usize, StoreError> {
    let limit = summaries.op_timeout;
    let context = "find the rooms to summarize";
    let pipeline = [
        doc! {"$match": {"seq": {"$exists": true}}},
        doc! {"$group": {"_id": "$requestId", "lastSeq": {"$max": "$seq"}}},
    ];
    let rooms: Vec<RoomMax> = bounded(limit, context, async {
        let docs: Vec<Document> = messages.aggregate(pipeline).await?.try_collect().await?;
        Ok(docs.into_iter().filter_map(|d| mongodb::bson::from_document(d).ok()).collect())
    })
    .await?;
    let ids: Vec<Bson> = rooms.iter().map(|r| Bson::String(r.room.clone())).collect();
    let have: HashSet<String> = bounded(limit, context, async {
        let found = summaries.rooms.find(doc! {"_id": {"$in": ids}}).await?;
        found.try_collect::<Vec<_>>().await
    })
    .await?
    .into_iter()
    .map(|s| s.id)
    .collect();
    let mut built = 0;
    for room in rooms.into_iter().filter(|r| !have.contains(&r.room)) {
        build_room(summaries, messages, receipts, &room).await?;
        built += 1;
    }
    Ok(built)
}

async fn build_room(
    summaries: &Summaries,
    messages: &Collection<MessageDoc>,
    receipts: &Collection<ReceiptDoc>,
    room: &RoomMax,
) -> Result<(), StoreError> {
    let limit = summaries.op_timeout;
    let context = format!("summarize room {}", room.room);
    let count_by = |coll: Collection<Document>, filter: Document, user_field: &'static str| {
        let context = context.clone();
        async move {
            let pipeline =
                [doc! {"$match": filter}, doc! {"$group": {"_id": format!("${user_field}"), "n": {"$sum": 1}}}];
            bounded(limit, &context, async {
                let docs: Vec<Document> = coll.aggregate(pipeline).await?.try_collect().await?;
                Ok(docs.into_iter().filter_map(|d| mongodb::bson::from_document::<PerUser>(d).ok()).collect::<Vec<_>>())
            })
            .await
        }
    };
    let deleted = tombstone_ids(messages, &room.room, limit, &context).await?;
    let live = doc! {"requestId": &room.room, "seq": {"$exists": true}, "deletedAt": {"$exists": false}};
    let sent = count_by(messages.clone_with_type(), live, "senderId").await?;
    let read = doc! {"requestId": &room.room, "kind": "read", "messageId": {"$nin": deleted.clone()}};
    let read = count_by(receipts.clone_with_type(), read, "userId").await?;
    let mut seen: HashMap<String, i64> = HashMap::new();
    for p in sent.into_iter().chain(read) {
        *seen.entry(p.user).or_default() += p.n;
    }
    if !seen.is_empty() {
        let docs: Vec<Document> = seen
            .into_iter()
            .map(|(user, n)| doc! {"_id": format!("{}:{user}", room.room), "requestId": &room.room, "userId": user, "seen": n})
            .collect();
        let coll = summaries.seen.clone_with_type::<Document>();
        match within(limit, &context, coll.insert_many(docs).ordered(false)).await? {
            Ok(_) => {}
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(m)
                    if m.write_concern_error.is_none()
                        && m.write_errors.as_deref().is_some_and(|w| w.iter().all(|w| w.code == DUPLICATE_KEY)) => {}
                _ => return Err(store_error(&context, e)),
            },
        }
    }
    let last = bounded(limit, &context, messages.find_one(doc! {"requestId": &room.room, "seq": room.last_seq}))
        .await?
        .ok_or_else(|| bad_data(&context, format!("its message with seq {} vanished", room.last_seq)))?;
    summaries.advance(&room.room, room.last_seq, last.created_at.timestamp_millis(), last.id).await?;
    summaries.set_deleted(&room.room, deleted.len()).await?;
    tracing::info!(request_id = %room.room, "built a room's inbox summary");
    Ok(())
}
