//! The rooms' latest seqs since an instant ([`labchat_core::ChatStore::latest_since`]), read
//! through the index `requestId_1_createdAt_1_seq_1`, which covers the read.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{RequestId, Seq, Timestamp};
use mongodb::bson::{Bson, DateTime, Document, doc};
use serde::Deserialize;

use crate::MongoStore;
use crate::documents::parse_seq;
use crate::errors::{bad_data, bounded};

/// The most messages one read lists; past it, the rooms' highest seqs are grouped by the server.
const MAX_READ: i64 = 20_000;

/// A message's room, seq and time, as the covered read returns them.
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
        let context = "read the latest seqs of rooms";
        let ids: Vec<Bson> = rooms.iter().map(|r| Bson::String(r.to_hex())).collect();
        let after = DateTime::from_millis(since.unix_millis());
        let filter = doc! {"requestId": {"$in": ids}, "createdAt": {"$gte": after}, "seq": {"$exists": true}};
        let stamps = self.messages.clone_with_type::<Stamp>();
        let projection = doc! {"_id": 0, "requestId": 1, "createdAt": 1, "seq": 1};
        let listed: Vec<Stamp> = bounded(self.op_timeout, context, async {
            stamps.find(filter.clone()).projection(projection).limit(MAX_READ).await?.try_collect().await
        })
        .await?;
        let mut latest: HashMap<String, i64> = HashMap::new();
        if i64::try_from(listed.len()).unwrap_or(i64::MAX) < MAX_READ {
            // Compared here again: the test server compares dates to the second.
            for s in listed.into_iter().filter(|s| s.created_at >= after) {
                let seq = latest.entry(s.request_id).or_default();
                *seq = (*seq).max(s.seq);
            }
        } else {
            // Too many to list: the server groups them (exactly, on MongoDB; the test server
            // ignores the dates of an aggregation's `$match` and groups every message).
            let pipeline = [doc! {"$match": filter}, doc! {"$group": {"_id": "$requestId", "seq": {"$max": "$seq"}}}];
            let grouped: Vec<Document> = bounded(self.op_timeout, context, async {
                self.messages.aggregate(pipeline).await?.try_collect().await
            })
            .await?;
            for d in grouped {
                let r: RoomSeq = mongodb::bson::from_document(d).map_err(|e| bad_data(context, e.to_string()))?;
                latest.insert(r.room, r.seq);
            }
        }
        latest
            .into_iter()
            .map(|(room, seq)| {
                let room = RequestId::parse(&room).map_err(|e| bad_data(context, format!("a requestId: {e}")))?;
                Ok((room, parse_seq(Some(seq)).map_err(|e| bad_data(context, e))?))
            })
            .collect()
    }
}
