//! The rooms' latest seqs since an instant ([`labchat_core::ChatStore::latest_since`]).
//!
//! Two reads, each covered by an index (the fields read are the index's; `seq >= 1` rather than
//! `$exists`, which an index cannot answer alone), and the cheaper one is tried first:
//! - **the window**: the stamps of every message of the deployment created since the instant
//!   (`createdAt_1_requestId_1_seq_1`), kept for the rooms asked about. It examines one index
//!   entry per message created since, whatever the number of rooms, so it is read when many
//!   rooms are asked about ([`WINDOW_FROM`]), and listed up to as many messages as rooms asked:
//!   past that it would cost more than the rooms' own reads, and it is given up for them (as it
//!   is when it fails).
//! - **the rooms**: one seek per room asked about (`requestId_1_createdAt_1_seq_1`), a thousand
//!   rooms per read ([`ROOMS_PER_READ`]).
//!
//! Each read names its index (a hint by keys), so that the planner does not answer one with the
//! other's. The quiet-room check looks back over its interval and the catch-up margin (about
//! 40 s): a node holding 12,000 quiet rooms while the deployment posts 40 messages a second
//! reads about 1,600 stamps instead of 12 reads of 1,000 seeks; where more was posted in that
//! time than the node has quiet rooms, the window is read for nothing (at most one stamp per
//! room and a round trip) before the rooms' reads.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{RequestId, Seq, Timestamp};
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::Hint;
use serde::Deserialize;

use crate::MongoStore;
use crate::documents::parse_seq;
use crate::errors::{bad_data, bounded};
use crate::gather::batch_of;

/// From this many rooms asked about, the window is read first.
const WINDOW_FROM: usize = 64;

/// The most rooms one read of the rooms asks about.
const ROOMS_PER_READ: usize = 1_000;

/// The most messages one read of the rooms lists; past it, the rooms' highest seqs are grouped
/// by the server.
const MAX_READ: i64 = 20_000;

const CONTEXT: &str = "read the latest seqs of rooms";

/// A message's room, seq and time, as the covered reads return them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stamp {
    request_id: String,
    seq: i64,
    created_at: DateTime,
}

/// A room and its highest seq, as the grouping returns them.
#[derive(Deserialize)]
struct RoomSeq {
    #[serde(rename = "_id")]
    room: String,
    seq: i64,
}

/// The most stamps the window may list for `rooms` rooms asked about, or `None` when so few
/// rooms are asked about that their own reads are the cheaper ones.
fn window_limit(rooms: usize) -> Option<usize> {
    (rooms >= WINDOW_FROM).then_some(rooms)
}

/// The highest seq per room among `stamps` created at or after `after`, for the rooms kept by
/// `asked` (compared here again: the test server compares dates to the second).
fn highest(stamps: Vec<Stamp>, after: DateTime, asked: impl Fn(&str) -> bool) -> HashMap<String, i64> {
    let mut latest: HashMap<String, i64> = HashMap::new();
    for s in stamps.into_iter().filter(|s| s.created_at >= after && asked(&s.request_id)) {
        let seq = latest.entry(s.request_id).or_default();
        *seq = (*seq).max(s.seq);
    }
    latest
}

/// The keys of the index the rooms' reads go through (`requestId_1_createdAt_1_seq_1`), as
/// `migrate.rs` creates it and the reads name it.
pub(crate) fn by_room_keys() -> Document {
    doc! {"requestId": 1, "createdAt": 1, "seq": 1}
}

/// The keys of the index the window's read goes through (`createdAt_1_requestId_1_seq_1`).
pub(crate) fn by_time_keys() -> Document {
    doc! {"createdAt": 1, "requestId": 1, "seq": 1}
}

/// The projection of the covered reads.
fn stamp_fields() -> Document {
    doc! {"_id": 0, "requestId": 1, "createdAt": 1, "seq": 1}
}

impl MongoStore {
    /// [`labchat_core::ChatStore::latest_since`].
    pub(crate) async fn latest_since_of(
        &self,
        rooms: &[RequestId],
        since: Timestamp,
    ) -> Result<Vec<(RequestId, Seq)>, StoreError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let after = DateTime::from_millis(since.unix_millis());
        let windowed = match window_limit(rooms.len()) {
            Some(limit) => self.window(rooms, after, limit).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, rooms = rooms.len(), "the window of recent messages could not be read; reading the rooms");
                None
            }),
            None => None,
        };
        let latest = match windowed {
            Some(latest) => latest,
            None => {
                let mut latest = HashMap::new();
                for chunk in rooms.chunks(ROOMS_PER_READ) {
                    latest.extend(self.rooms_since(chunk, after).await?);
                }
                latest
            }
        };
        latest
            .into_iter()
            .map(|(room, seq)| {
                let room = RequestId::parse(&room).map_err(|e| bad_data(CONTEXT, format!("a requestId: {e}")))?;
                Ok((room, parse_seq(Some(seq)).map_err(|e| bad_data(CONTEXT, e))?))
            })
            .collect()
    }

    /// The window's answer for `rooms`, or `None` when it holds more than `limit` messages.
    async fn window(
        &self,
        rooms: &[RequestId],
        after: DateTime,
        limit: usize,
    ) -> Result<Option<HashMap<String, i64>>, StoreError> {
        let filter = doc! {"createdAt": {"$gte": after}, "seq": {"$gte": 1_i64}};
        let stamps = self.messages.clone_with_type::<Stamp>();
        let most = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let listed: Vec<Stamp> = bounded(self.op_timeout, CONTEXT, async {
            let batch = batch_of(limit.saturating_add(1));
            let hint = Hint::Keys(by_time_keys());
            stamps
                .find(filter)
                .projection(stamp_fields())
                .hint(hint)
                .limit(most)
                .batch_size(batch)
                .await?
                .try_collect()
                .await
        })
        .await?;
        if listed.len() > limit {
            return Ok(None);
        }
        let asked: HashSet<String> = rooms.iter().map(RequestId::to_hex).collect();
        Ok(Some(highest(listed, after, |room| asked.contains(room))))
    }

    /// The rooms' own reads: `rooms` (at most [`ROOMS_PER_READ`]) with one read.
    async fn rooms_since(&self, rooms: &[RequestId], after: DateTime) -> Result<HashMap<String, i64>, StoreError> {
        let ids: Vec<Bson> = rooms.iter().map(|r| Bson::String(r.to_hex())).collect();
        let filter = doc! {"requestId": {"$in": ids}, "createdAt": {"$gte": after}, "seq": {"$gte": 1_i64}};
        let stamps = self.messages.clone_with_type::<Stamp>();
        let listed: Vec<Stamp> = bounded(self.op_timeout, CONTEXT, async {
            let hint = Hint::Keys(by_room_keys());
            stamps.find(filter.clone()).projection(stamp_fields()).hint(hint).limit(MAX_READ).await?.try_collect().await
        })
        .await?;
        if i64::try_from(listed.len()).unwrap_or(i64::MAX) < MAX_READ {
            return Ok(highest(listed, after, |_| true));
        }
        // Too many to list: the server groups them (exactly, on MongoDB; the test server ignores
        // the dates of an aggregation's `$match` and groups every message).
        let pipeline = [doc! {"$match": filter}, doc! {"$group": {"_id": "$requestId", "seq": {"$max": "$seq"}}}];
        let grouped: Vec<Document> =
            bounded(self.op_timeout, CONTEXT, async { self.messages.aggregate(pipeline).await?.try_collect().await })
                .await?;
        let mut latest = HashMap::new();
        for d in grouped {
            let r: RoomSeq = mongodb::bson::from_document(d).map_err(|e| bad_data(CONTEXT, e.to_string()))?;
            latest.insert(r.room, r.seq);
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_read_for_many_rooms_and_bounded_by_them() {
        assert_eq!(window_limit(1), None);
        assert_eq!(window_limit(WINDOW_FROM - 1), None);
        assert_eq!(window_limit(WINDOW_FROM), Some(WINDOW_FROM));
        assert_eq!(window_limit(20_000), Some(20_000));
    }

    #[test]
    fn the_highest_seq_per_asked_room_counts_only_stamps_since() {
        let at = DateTime::from_millis;
        let stamp = |room: &str, seq, ms| Stamp { request_id: room.to_owned(), seq, created_at: at(ms) };
        let stamps = vec![stamp("a", 3, 1_000), stamp("a", 5, 900), stamp("a", 4, 2_000), stamp("b", 9, 1_500)];
        let got = highest(stamps, at(1_000), |room| room == "a");
        assert_eq!(got, HashMap::from([("a".to_owned(), 4)]), "seq 5 is before; b is not asked");
    }
}
