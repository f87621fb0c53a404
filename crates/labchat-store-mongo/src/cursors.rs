//! History cursors: the stored seq of the message a page is asked before or after, looked up
//! with the other cursors in flight in one query (see `gather.rs`).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{MessageId, RequestId};
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};

use crate::documents::{MessageDoc, object_id, parse_seq, stored_seq};
use crate::errors::{bad_data, bounded};
use crate::gather::{Fetched, Gather, batch_of};

/// What a cursor lookup is called in errors.
const CURSOR_CONTEXT: &str = "find a history cursor's message";

/// A message's stored seq: `None` when it has none, an error when it is not an integer.
fn seq_in(doc: &Document) -> Result<Option<i64>, String> {
    match doc.get("seq") {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int64(n)) => Ok(Some(*n)),
        Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
        Some(other) => Err(format!("seq is {other}, not an integer")),
    }
}

/// The coalesced lookup of cursors.
pub(crate) struct Cursors(Gather<(RequestId, MessageId), Result<Option<i64>, String>>);

impl Cursors {
    /// Starts the lookup task; it ends when the `Cursors` is dropped.
    pub(crate) fn start(messages: Collection<MessageDoc>, op_timeout: Duration) -> Self {
        Self(cursor_gather(messages, op_timeout))
    }

    /// The stored seq of message `id` of `room`, or `None` when it is not a message of that
    /// room (looked up with the other cursors asked for at the same time).
    pub(crate) async fn seq_of(&self, room: RequestId, id: MessageId) -> Result<Option<i64>, StoreError> {
        let Some(found) = self.0.get((room, id)).await? else { return Ok(None) };
        found
            .and_then(|seq| parse_seq(seq).map(stored_seq))
            .map(Some)
            .map_err(|e| bad_data(CURSOR_CONTEXT, format!("message {id}: {e}")))
    }
}

/// For each (room, message) the message's stored seq (`None` when it has none); a message of
/// another room is not found. A message that cannot be read fails its own lookups only.
fn cursor_gather(
    messages: Collection<MessageDoc>,
    op_timeout: Duration,
) -> Gather<(RequestId, MessageId), Result<Option<i64>, String>> {
    let messages = messages.clone_with_type::<Document>();
    Gather::start(CURSOR_CONTEXT, op_timeout, move |keys: Vec<(RequestId, MessageId)>| {
        let messages = messages.clone();
        async move {
            let ids: Vec<Bson> = keys.iter().map(|(_, id)| Bson::ObjectId(object_id(id.object_id()))).collect();
            let batch = batch_of(ids.len());
            let found: Vec<Document> = bounded(op_timeout, CURSOR_CONTEXT, async {
                messages
                    .find(doc! {"_id": {"$in": ids}})
                    .projection(doc! {"requestId": 1, "seq": 1})
                    .batch_size(batch)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
            let by_id: HashMap<ObjectId, Document> =
                found.into_iter().filter_map(|d| Some((d.get_object_id("_id").ok()?, d))).collect();
            let values: Fetched<(RequestId, MessageId), Result<Option<i64>, String>> = Ok(keys
                .into_iter()
                .filter_map(|(room, id)| {
                    let doc = by_id.get(&object_id(id.object_id()))?;
                    // Of another room: not found, whatever else it holds.
                    (doc.get_str("requestId").ok()? == room.to_hex()).then_some(())?;
                    Some(((room, id), seq_in(doc)))
                })
                .collect());
            values
        }
    })
}
