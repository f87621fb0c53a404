//! The start-up migration: messages stored before seqs existed (no `seq` field) get one.
//!
//! It runs until the seq index exists: [`MongoStore::connect`](crate::MongoStore::connect) creates
//! that index only after the migration has finished, so once it is there, later start-ups skip
//! the migration (and its query, which no index serves) with one cheap `listIndexes`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::Deserialize;

use crate::MongoStore;
use crate::documents::MessageDoc;
use crate::errors::{bad_data, bounded};
use crate::sequence::SEQ_INDEX;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomOnly {
    request_id: String,
}

#[derive(Deserialize)]
struct Position {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(default)]
    seq: Option<i64>,
}

/// Whether the messages already have the unique seq index on `{requestId: 1, seq: 1}` (found by
/// its keys, as some compatible servers name indexes their own way).
pub(crate) async fn has_seq_index(messages: &Collection<MessageDoc>, op_timeout: Duration) -> Result<bool, StoreError> {
    let indexes = bounded(op_timeout, "list the indexes of the messages", async {
        messages.list_indexes().await?.try_collect::<Vec<_>>().await
    })
    .await?;
    Ok(indexes.iter().any(|i| is_seq_key(&i.keys)))
}

/// Whether index keys are `{requestId: 1, seq: 1}`, whatever the numbers' BSON types.
fn is_seq_key(keys: &Document) -> bool {
    let one = |v: &Bson| matches!(v, Bson::Int32(1) | Bson::Int64(1)) || matches!(v, Bson::Double(d) if *d == 1.0);
    let fields: Vec<(&String, &Bson)> = keys.iter().collect();
    matches!(fields.as_slice(), [(a, x), (b, y)] if a.as_str() == "requestId" && b.as_str() == "seq" && one(x) && one(y))
}

/// Gives every message without a `seq` its position in its room: the messages of a room sorted
/// by their old `order` field are seqs 1, 2, 3, …. Returns how many messages it changed.
///
/// Idempotent, and safe when several nodes run it at once: a message's seq depends only on the
/// room's messages (which old nodes no longer add to), and each update applies only to a message
/// that still has no seq. Messages posted with seqs are newer than every message without one,
/// so they keep theirs.
pub(crate) async fn assign_missing_seqs(
    messages: &Collection<MessageDoc>,
    op_timeout: Duration,
) -> Result<u64, StoreError> {
    let context = "find the messages stored without a seq";
    let rooms: BTreeSet<String> = bounded(op_timeout, context, async {
        let found = messages
            .clone_with_type::<RoomOnly>()
            .find(doc! {"seq": {"$exists": false}})
            .projection(doc! {"requestId": 1, "_id": 0})
            .await?;
        found.try_collect::<Vec<_>>().await
    })
    .await?
    .into_iter()
    .map(|r| r.request_id)
    .collect();
    let mut changed = 0;
    for room in rooms {
        let context = format!("give the messages of room {room} their seqs");
        let all = bounded(op_timeout, &context, async {
            let found = messages
                .clone_with_type::<Position>()
                .find(doc! {"requestId": &room})
                .sort(doc! {"order": 1, "_id": 1})
                .projection(doc! {"_id": 1, "seq": 1})
                .await?;
            found.try_collect::<Vec<_>>().await
        })
        .await?;
        for (i, m) in all.iter().enumerate() {
            let position = i64::try_from(i).map_err(|e| bad_data(&context, e.to_string()))? + 1;
            match m.seq {
                Some(seq) if seq == position => continue,
                Some(seq) => {
                    return Err(bad_data(
                        &context,
                        format!("message {} holds seq {seq} where the room's order puts it at {position}", m.id),
                    ));
                }
                None => {}
            }
            let filter = doc! {"_id": m.id, "seq": {"$exists": false}};
            let set: Document = doc! {"$set": {"seq": position}};
            let r = bounded(op_timeout, &context, messages.update_one(filter, set)).await?;
            changed += r.modified_count;
        }
        tracing::info!(request_id = %room, messages = all.len(), "gave a room's old messages their seqs");
    }
    Ok(changed)
}

impl MongoStore {
    /// Creates labchat's indexes of the messages and receipts where missing (idempotent).
    pub(crate) async fn create_indexes(&self) -> Result<(), StoreError> {
        let index = |keys: Document, name: &str, unique: bool| {
            let options = IndexOptions::builder().name(name.to_owned()).unique(unique.then_some(true)).build();
            IndexModel::builder().keys(keys).options(options).build()
        };
        let changed_since = |field: &str| {
            let options = IndexOptions::builder()
                .name(format!("requestId_1_{field}_1"))
                .partial_filter_expression(doc! {field: {"$exists": true}})
                .build();
            IndexModel::builder().keys(doc! {"requestId": 1, field: 1}).options(options).build()
        };
        // Partial, so that a message without a seq (written by an older labchat) is not refused.
        let seq_options = IndexOptions::builder()
            .name(SEQ_INDEX.to_owned())
            .unique(true)
            .partial_filter_expression(doc! {"seq": {"$exists": true}})
            .build();
        let messages = [
            IndexModel::builder().keys(doc! {"requestId": 1, "seq": 1}).options(seq_options).build(),
            index(doc! {"requestId": 1, "order": -1}, "requestId_1_order_-1", false),
            index(doc! {"idem": 1}, "idem_1", true),
            // The catch-up's reads of what changed since an instant (`catch_up.rs`): only the
            // edited and the deleted messages are indexed.
            changed_since("editedAt"),
            changed_since("deletedAt"),
            // The rooms' latest seqs since an instant (`latest.rs`, covered reads), for the
            // quiet-room check: per room, and the deployment's messages since the instant.
            index(crate::latest::by_room_keys(), "requestId_1_createdAt_1_seq_1", false),
            index(crate::latest::by_time_keys(), "createdAt_1_requestId_1_seq_1", false),
        ];
        bounded(self.op_timeout, "create the indexes of the messages", self.messages.create_indexes(messages)).await?;
        let receipts = [
            index(doc! {"messageId": 1}, "messageId_1", false),
            index(doc! {"requestId": 1, "at": 1}, "requestId_1_at_1", false),
        ];
        bounded(self.op_timeout, "create the indexes of the receipts", self.receipts.create_indexes(receipts)).await?;
        Ok(())
    }

    /// Creates the index of the room summaries (idempotent), once they are built.
    pub(crate) async fn create_summary_index(&self) -> Result<(), StoreError> {
        let rooms = IndexModel::builder()
            .keys(doc! {"lastActivityAt": -1, "requestId": -1})
            .options(IndexOptions::builder().name("lastActivityAt_-1_requestId_-1".to_owned()).build())
            .build();
        let context = "create the index of the room summaries";
        bounded(self.op_timeout, context, self.summaries.rooms.create_index(rooms)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_index_is_known_by_its_keys() {
        assert!(is_seq_key(&doc! {"requestId": 1, "seq": 1}));
        assert!(is_seq_key(&doc! {"requestId": 1_i64, "seq": 1.0}));
        assert!(!is_seq_key(&doc! {"requestId": 1, "seq": -1}));
        assert!(!is_seq_key(&doc! {"seq": 1, "requestId": 1}));
        assert!(!is_seq_key(&doc! {"requestId": 1, "order": -1}));
        assert!(!is_seq_key(&doc! {"requestId": 1}));
    }
}
