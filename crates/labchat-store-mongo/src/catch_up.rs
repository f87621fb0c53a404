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

/// The most receipts one catch-up reads to learn which messages they name. A catch-up whose
/// client was away long enough for more is cut short (`has_more`), as one past its limit is.
const MAX_RECEIPTS: i64 = 20_000;

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
        // 1. The messages named by receipts marked since (index `requestId_1_at_1`).
        //    The times are compared here again: the query's range only narrows the read (the
        //    test server compares dates to the second).
        let receipts = self.receipts.clone_with_type::<ReceiptTime>();
        let named: Vec<ReceiptTime> = bounded(self.op_timeout, context, async {
            let filter = doc! {"requestId": &room, "at": {"$gte": since}};
            let projection = doc! {"messageId": 1, "at": 1, "_id": 0};
            receipts.find(filter).projection(projection).limit(MAX_RECEIPTS).await?.try_collect().await
        })
        .await?;
        let cut = i64::try_from(named.len()).unwrap_or(i64::MAX) >= MAX_RECEIPTS;
        let mut ids = HashSet::new();
        for r in named.into_iter().filter(|r| r.at >= since) {
            let id = MessageId::parse(&r.message_id)
                .map_err(|e| bad_data(context, format!("a receipt's messageId: {e}")))?;
            ids.insert(id);
        }
        // 2. The messages edited or deleted since (indexes `requestId_1_editedAt_1`,
        //    `requestId_1_deletedAt_1`).
        let filter = doc! {
            "requestId": &room,
            "seq": {"$exists": true, "$lte": up_to},
            "$or": [{"editedAt": {"$gte": since}}, {"deletedAt": {"$gte": since}}],
        };
        let messages = self.messages.clone_with_type::<ChangeTimes>();
        let rewritten: Vec<ChangeTimes> = bounded(self.op_timeout, context, async {
            let projection = doc! {"_id": 1, "editedAt": 1, "deletedAt": 1};
            messages.find(filter).projection(projection).await?.try_collect().await
        })
        .await?;
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
        let has_more = cut || docs.len() > n;
        docs.truncate(n);
        docs.reverse();
        let messages = self.with_receipts(docs, context).await?;
        Ok(HistoryPage { messages, has_more })
    }
}
