//! The start-up migration: messages stored before seqs existed (no `seq` field) get one.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use serde::Deserialize;

use crate::documents::MessageDoc;
use crate::errors::{bad_data, bounded};

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
