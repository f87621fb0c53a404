//! The inbox queries of [`MongoStore`]: a page, a room's rows, an unread count, the first unread
//! message. Each reads the summaries and counters of `summary.rs`, never scans a room's messages
//! (but for [`MongoStore::first_unread_of`], which reads from the user's `upTo` seq to the message
//! it finds).

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{
    InboxCursor, InboxKey, InboxPage, InboxQuery, InboxRow, Message, MessageId, ObjectIdBytes, RequestId, Role,
    Timestamp, User, UserId,
};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStore;
use crate::documents::{IdOnly, MessageDoc, kind_name, message_id, request_quietly};
use crate::errors::{bad_data, bounded};
use crate::summary::{RoomSummary, UNREAD_CONTEXT, seen_key};

/// The most summary queries one LAB page makes while skipping rooms whose request was deleted,
/// once it holds a room; past it the page is returned short, with a cursor after its last room
/// (never one naming a deleted request). A page that holds no room yet goes on: the summaries of
/// deleted requests it meets are marked `gone`, so every later page skips them in its query.
const MAX_ROUNDS: usize = 4;

/// How many messages [`MongoStore::first_unread_of`] reads at a time.
const FIRST_UNREAD_CHUNK: i64 = 200;

fn key_of(s: &RoomSummary) -> Option<InboxKey> {
    Some(InboxKey {
        last_activity_at: Timestamp::from_unix_millis(s.last_activity_at),
        request_id: RequestId::parse(&s.id).ok()?,
    })
}

/// The filter of the rooms strictly after `key` in the inbox order.
fn after(key: InboxKey) -> Document {
    let at = key.last_activity_at.unix_millis();
    doc! {"$or": [
        {"lastActivityAt": {"$lt": at}},
        {"lastActivityAt": at, "requestId": {"$lt": key.request_id.to_hex()}},
    ]}
}

impl MongoStore {
    /// The ids (hex) of the requests `teacher` may act on now. The query finds the candidates
    /// (the creator field holds their id as a string, or as an ObjectId when it is 24 lowercase
    /// hex digits; MongoDB also matches arrays holding it), and the access rule,
    /// [`labchat_domain::Request::authorize`] over each request read as `find_request` reads
    /// it, decides: the inbox lists exactly the rooms `joinRoom` lets the teacher into.
    async fn requests_of(&self, teacher: &User) -> Result<Vec<Bson>, StoreError> {
        let id = teacher.id().as_str();
        let mut forms = vec![Bson::String(id.to_owned())];
        if let Ok(oid) = ObjectId::parse_str(id)
            && oid.to_hex() == id
        {
            forms.push(Bson::ObjectId(oid));
        }
        let mut filter = Document::new();
        filter.insert(self.requests.creator_field.as_str(), doc! {"$in": forms});
        let top = self.requests.creator_field.split('.').next().unwrap_or_default();
        let mut projection = doc! {"_id": 1};
        projection.insert(top, 1);
        let found: Vec<Document> = bounded(self.op_timeout, "find a teacher's requests", async {
            self.requests.collection.find(filter).projection(projection).await?.try_collect().await
        })
        .await?;
        Ok(found
            .iter()
            .filter_map(|d| {
                let oid = d.get_object_id("_id").ok()?;
                let room = RequestId::from_object_id(ObjectIdBytes::from_bytes(oid.bytes()));
                let request = request_quietly(room, d, &self.requests.creator_field);
                request.authorize(teacher).is_ok().then(|| Bson::String(oid.to_hex()))
            })
            .collect())
    }

    /// Which of the rooms' requests exist now.
    async fn existing(&self, rooms: &[RoomSummary]) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<Bson> = rooms.iter().filter_map(|s| ObjectId::parse_str(&s.id).ok()).map(Bson::ObjectId).collect();
        let found: Vec<IdOnly> = bounded(self.op_timeout, "check that inbox requests exist", async {
            let coll = self.requests.collection.clone_with_type::<IdOnly>();
            coll.find(doc! {"_id": {"$in": ids}}).projection(doc! {"_id": 1}).await?.try_collect().await
        })
        .await?;
        Ok(found.into_iter().map(|d| d.id.to_hex()).collect())
    }

    /// Marks the summaries of deleted requests `gone`, so that LAB pages skip them in their query.
    /// Best effort: a failure only leaves them to be skipped again.
    async fn mark_gone(&self, gone: &[RoomSummary]) {
        if gone.is_empty() {
            return;
        }
        let ids: Vec<Bson> = gone.iter().map(|s| Bson::String(s.id.clone())).collect();
        let rooms = self.summaries.rooms.clone_with_type::<Document>();
        let update = rooms.update_many(doc! {"_id": {"$in": ids}}, doc! {"$set": {"gone": true}});
        if let Err(e) = bounded(self.op_timeout, "mark the rooms of deleted requests", update).await {
            tracing::warn!(error = %e, "marking the rooms of deleted requests failed");
        }
    }

    /// Summaries in the inbox order after `cursor`, at most `n`, among `only` when given.
    async fn summaries_after(
        &self,
        cursor: Option<InboxKey>,
        only: Option<&[Bson]>,
        n: usize,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let mut parts = vec![doc! {"lastSeq": {"$exists": true}}];
        parts.extend(cursor.map(after));
        match only {
            Some(ids) => parts.push(doc! {"_id": {"$in": ids.to_vec()}}),
            None => parts.push(doc! {"gone": {"$ne": true}}),
        }
        let fetch = i64::try_from(n).unwrap_or(i64::MAX);
        bounded(self.op_timeout, "read inbox rooms", async {
            let found = self
                .summaries
                .rooms
                .find(doc! {"$and": parts})
                .sort(doc! {"lastActivityAt": -1, "requestId": -1})
                .limit(fetch)
                .await?;
            found.try_collect().await
        })
        .await
    }

    /// The rows of `rooms` for `user`, in their order (one query for the counters, one for the
    /// messages, one for their receipts).
    async fn rows_for(&self, rooms: &[RoomSummary], user: &UserId) -> Result<Vec<InboxRow>, StoreError> {
        let keys: Vec<(String, &RoomSummary)> =
            rooms.iter().map(|s| (format!("{}:{}", s.id, user.as_str()), s)).collect();
        let seen = self.summaries.seen_of(keys.iter().map(|(k, _)| k.clone()).collect()).await?;
        let messages = self.messages_by_id(rooms.iter().map(|s| s.last_message_id).collect()).await?;
        Ok(keys
            .iter()
            .filter_map(|(k, s)| {
                let last = messages.get(&s.last_message_id)?.clone();
                Some(InboxRow { last_message: last, unread: s.unread(seen.get(k).copied()) })
            })
            .collect())
    }

    /// Messages by id, with their receipts.
    async fn messages_by_id(&self, ids: Vec<ObjectId>) -> Result<HashMap<ObjectId, Message>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let context = "read the last messages of inbox rooms";
        let docs: Vec<MessageDoc> = bounded(self.op_timeout, context, async {
            self.messages.find(doc! {"_id": {"$in": ids}}).await?.try_collect().await
        })
        .await?;
        let messages = self.with_receipts(docs, context).await?;
        Ok(messages.into_iter().map(|m| (crate::documents::object_id(m.id.object_id()), m)).collect())
    }

    /// [`labchat_core::ChatStore::inbox`].
    pub(crate) async fn inbox_page(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        let limit = query.limit.get();
        let want = limit + 1;
        let only = match viewer.role() {
            Role::Teacher => Some(self.requests_of(viewer).await?),
            Role::Lab => None,
        };
        if only.as_ref().is_some_and(Vec::is_empty) {
            return Ok(InboxPage::default());
        }
        let mut cursor = query.before.map(|c| c.key());
        let mut kept: Vec<RoomSummary> = Vec::new();
        let mut exhausted = false;
        for round in 1.. {
            let ask = want - kept.len();
            let found = self.summaries_after(cursor, only.as_deref(), ask).await?;
            exhausted = found.len() < ask;
            let Some(last) = found.last() else { break };
            cursor =
                Some(key_of(last).ok_or_else(|| bad_data("read inbox rooms", format!("bad room id {}", last.id)))?);
            if only.is_some() {
                kept.extend(found);
            } else {
                let existing = self.existing(&found).await?;
                let (live, gone): (Vec<RoomSummary>, Vec<RoomSummary>) =
                    found.into_iter().partition(|s| existing.contains(&s.id));
                self.mark_gone(&gone).await;
                kept.extend(live);
            }
            if exhausted || kept.len() >= want || (round >= MAX_ROUNDS && !kept.is_empty()) {
                break;
            }
        }
        // After the page's last room: a room of the page, never one looked at and skipped.
        let next = if exhausted && kept.len() <= limit {
            None
        } else {
            kept.truncate(limit);
            kept.last().and_then(key_of).map(InboxCursor::after)
        };
        let rows = self.rows_for(&kept, viewer.id()).await?;
        Ok(InboxPage { rows, next })
    }

    async fn summary_of(&self, request: RequestId) -> Result<Option<RoomSummary>, StoreError> {
        bounded(self.op_timeout, "read a room's summary", self.summaries.rooms.find_one(doc! {"_id": request.to_hex()}))
            .await
    }

    /// [`labchat_core::ChatStore::inbox_rows`].
    pub(crate) async fn inbox_rows_of(
        &self,
        request: RequestId,
        users: &[UserId],
    ) -> Result<Vec<InboxRow>, StoreError> {
        let Some(summary) = self.summary_of(request).await? else { return Ok(Vec::new()) };
        let seen = self.summaries.seen_of(users.iter().map(|u| seen_key(request, u)).collect()).await?;
        let messages = self.messages_by_id(vec![summary.last_message_id]).await?;
        let Some(last) = messages.get(&summary.last_message_id) else { return Ok(Vec::new()) };
        Ok(users
            .iter()
            .map(|u| InboxRow {
                last_message: last.clone(),
                unread: summary.unread(seen.get(&seen_key(request, u)).copied()),
            })
            .collect())
    }

    /// [`labchat_core::ChatStore::unread_count`].
    /// Coalesced with the other counts asked for at the same time (see `gather.rs`).
    pub(crate) async fn unread_of(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        match self.unread_reads.get((request, user.clone())).await? {
            None => Ok(0),
            Some(count) => count.map_err(|e| bad_data(UNREAD_CONTEXT, e)),
        }
    }

    /// [`labchat_core::ChatStore::first_unread`]: a lookup by seq. The user's counter holds
    /// `upTo`, a seq up to which every message of the room is sent or read by them, or deleted
    /// (true for good: receipts are never removed, a tombstone stays one). The room's messages
    /// after it are read in seq order, a chunk at a time, each chunk's read receipts by `user`
    /// looked up by their `_id`; the first neither sent, read nor deleted is the answer, and `upTo` moves to just before it (only forward, and
    /// only over seqs seen without a hole, so a message still being stored is never skipped).
    pub(crate) async fn first_unread_of(
        &self,
        request: RequestId,
        user: &UserId,
    ) -> Result<Option<MessageId>, StoreError> {
        #[derive(serde::Deserialize)]
        struct IdSeq {
            #[serde(rename = "_id")]
            id: ObjectId,
            seq: i64,
            #[serde(rename = "senderId")]
            sender_id: String,
            /// Present on a tombstone, which counts as seen: it is unread for no one.
            #[serde(rename = "deletedAt", default)]
            deleted_at: Option<Bson>,
        }
        let context = "find the first unread message";
        let room = request.to_hex();
        let key = seen_key(request, user);
        let start = bounded(self.op_timeout, context, async {
            let coll = self.summaries.seen.clone_with_type::<Document>();
            coll.find_one(doc! {"_id": &key}).projection(doc! {"upTo": 1}).await
        })
        .await?
        .and_then(|d| match d.get("upTo") {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        });
        let (start, was) = (start.unwrap_or(0), start.map_or(doc! {"$exists": false}, |n| doc! {"$eq": n}));
        let read = kind_name(labchat_domain::ReceiptKind::Read);
        let receipt = |id: &ObjectId| format!("{}:{read}:{}", id.to_hex(), user.as_str());
        // The highest seq up to which everything seen was sent or read, without a hole.
        let mut done = start;
        let mut from = start;
        let found = loop {
            let filter = doc! {"requestId": &room, "seq": {"$exists": true, "$gt": from}};
            let chunk: Vec<IdSeq> = bounded(self.op_timeout, context, async {
                let coll = self.messages.clone_with_type::<IdSeq>();
                let found = coll
                    .find(filter)
                    .sort(doc! {"seq": 1})
                    .limit(FIRST_UNREAD_CHUNK)
                    .projection(doc! {"_id": 1, "seq": 1, "senderId": 1, "deletedAt": 1});
                found.await?.try_collect().await
            })
            .await?;
            let Some(last) = chunk.last() else { break None };
            from = last.seq;
            let unseen = |m: &IdSeq| m.sender_id != user.as_str() && m.deleted_at.is_none();
            let keys: Vec<String> = chunk.iter().filter(|m| unseen(m)).map(|m| receipt(&m.id)).collect();
            let marked: HashSet<String> = bounded(self.op_timeout, context, async {
                let coll = self.receipts.clone_with_type::<Document>();
                let found: Vec<Document> =
                    coll.find(doc! {"_id": {"$in": keys}}).projection(doc! {"_id": 1}).await?.try_collect().await?;
                Ok(found.into_iter().filter_map(|d| d.get_str("_id").ok().map(str::to_owned)).collect())
            })
            .await?;
            let first = chunk.iter().find(|m| {
                let unread = unseen(m) && !marked.contains(&receipt(&m.id));
                if !unread && m.seq == done + 1 {
                    done = m.seq;
                }
                unread
            });
            if let Some(m) = first {
                break Some(message_id(m.id));
            }
        };
        if done > start {
            // Only from what was read: another call may have moved it further meanwhile.
            let filter = doc! {"_id": &key, "upTo": was};
            let coll = self.summaries.seen.clone_with_type::<Document>();
            bounded(self.op_timeout, context, coll.update_one(filter, doc! {"$set": {"upTo": done}})).await?;
        }
        Ok(found)
    }
}
