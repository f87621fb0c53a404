//! The catch-up read ([`labchat_core::ChatStore::changed`]): the messages up to a seq that were
//! marked, edited or deleted since an instant, found through the receipts' and the messages'
//! time fields, each by an index.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{CatchUp, HistoryLimit, HistoryPage, MessageId, RequestId};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, DateTime, doc};
use serde::Deserialize;

use crate::MongoStore;
use crate::documents::{message_id, object_id, stored_seq};
use crate::errors::{bad_data, bounded};

/// The most receipts, and the most edited or deleted messages, one catch-up reads to learn which
/// messages changed. Past it the read gives up: no message, and `has_more` (the client is told
/// that every message it holds may be stale).
const MAX_READ: i64 = 20_000;

/// A receipt's message id and time.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptTime {
    message_id: String,
    at: DateTime,
}

/// A message's id and the times of its edit and deletion.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeTimes {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(default)]
    edited_at: Option<DateTime>,
    #[serde(default)]
    deleted_at: Option<DateTime>,
}

impl MongoStore {
    /// [`labchat_core::ChatStore::changed`].
    pub(crate) async fn changed_of(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        let context = "read what changed since a client's last message";
        let room = request.to_hex();
        let since = DateTime::from_millis(catch_up.since.unix_millis());
        let up_to = stored_seq(catch_up.up_to);
        // 1. The messages named by receipts marked since (index `requestId_1_at_1`), and 2. those
        //    edited or deleted since (partial indexes `requestId_1_editedAt_1`,
        //    `requestId_1_deletedAt_1`), both read at once. The times are compared here again:
        //    the queries' ranges only narrow the reads (the test server compares dates to the
        //    second).
        let receipts = self.receipts.clone_with_type::<ReceiptTime>();
        let named = bounded(self.op_timeout, context, async {
            let filter = doc! {"requestId": &room, "at": {"$gte": since}};
            let projection = doc! {"messageId": 1, "at": 1, "_id": 0};
            receipts.find(filter).projection(projection).limit(MAX_READ).await?.try_collect::<Vec<_>>().await
        });
        let messages = self.messages.clone_with_type::<ChangeTimes>();
        let rewritten = bounded(self.op_timeout, context, async {
            let filter = doc! {
                "requestId": &room,
                "seq": {"$exists": true, "$lte": up_to},
                "$or": [{"editedAt": {"$gte": since}}, {"deletedAt": {"$gte": since}}],
            };
            let projection = doc! {"_id": 1, "editedAt": 1, "deletedAt": 1};
            messages.find(filter).projection(projection).limit(MAX_READ).await?.try_collect::<Vec<_>>().await
        });
        let (named, rewritten) = futures_util::try_join!(named, rewritten)?;
        if [named.len(), rewritten.len()].into_iter().any(|n| i64::try_from(n).unwrap_or(i64::MAX) >= MAX_READ) {
            // Too much changed to say which messages are the newest: none, and more.
            return Ok(HistoryPage { messages: Vec::new(), has_more: true });
        }
        let mut ids = HashSet::new();
        for r in named.into_iter().filter(|r| r.at >= since) {
            let id = MessageId::parse(&r.message_id)
                .map_err(|e| bad_data(context, format!("a receipt's messageId: {e}")))?;
            ids.insert(id);
        }
        let since_or_later = |t: Option<DateTime>| t.is_some_and(|t| t >= since);
        ids.extend(
            rewritten
                .into_iter()
                .filter(|d| since_or_later(d.edited_at) || since_or_later(d.deleted_at))
                .map(|d| message_id(d.id)),
        );
        if ids.is_empty() {
            return Ok(HistoryPage { messages: Vec::new(), has_more: false });
        }
        // 3. Those at or before the client's last message, the highest seqs first.
        let n = limit.get();
        let wanted: Vec<Bson> = ids.iter().map(|id| Bson::ObjectId(object_id(id.object_id()))).collect();
        let filter = doc! {"_id": {"$in": wanted}, "requestId": &room, "seq": {"$exists": true, "$lte": up_to}};
        let fetch = i64::try_from(n.saturating_add(1)).unwrap_or(i64::MAX);
        let mut docs = bounded(self.op_timeout, context, async {
            self.messages.find(filter).sort(doc! {"seq": -1}).limit(fetch).await?.try_collect::<Vec<_>>().await
        })
        .await?;
        let has_more = docs.len() > n;
        docs.truncate(n);
        docs.reverse();
        let messages = self.with_receipts(docs, context).await?;
        Ok(HistoryPage { messages, has_more })
    }
}
