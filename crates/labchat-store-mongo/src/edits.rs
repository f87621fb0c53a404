//! Edits and deletions of stored messages: reading one message, storing its new text or its
//! tombstone, and counting a deletion in the room's summary and counters (`summary.rs`).

use labchat_core::StoreError;
use labchat_domain::{Message, MessageId, RequestId};
use mongodb::bson::{Document, doc};

use crate::MongoStore;
use crate::documents::{MessageDoc, object_id};
use crate::errors::bounded;
use crate::summary::seen_key;

impl MongoStore {
    /// [`labchat_core::ChatStore::message`].
    pub(crate) async fn message_of(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        let context = "read a message";
        let filter = doc! {"_id": object_id(id.object_id()), "requestId": request.to_hex()};
        let Some(found) = bounded(self.op_timeout, context, self.messages.find_one(filter)).await? else {
            return Ok(None);
        };
        Ok(self.with_receipts(vec![found], context).await?.pop())
    }

    /// [`labchat_core::ChatStore::update_message`]: the stored document with the text, edit and
    /// deletion marks of `message`, written back by a replacement filtered on the message not
    /// being deleted (so a tombstone never changes again, and an edit racing a deletion either
    /// lands before it or matches nothing). A replacement rather than `$set`, as the test server
    /// turns a date written by `$set` into a string; every other field is written back as read,
    /// and none of them changes after the insert.
    pub(crate) async fn update_of(&self, message: &Message) -> Result<bool, StoreError> {
        let context = "store an edited or deleted message";
        let filter = doc! {
            "_id": object_id(message.id.object_id()),
            "requestId": message.request_id.to_hex(),
            "deletedAt": {"$exists": false},
        };
        let Some(mut stored) = bounded(self.op_timeout, context, self.messages.find_one(filter.clone())).await? else {
            return Ok(false);
        };
        let change = MessageDoc::from_message(message);
        (stored.text, stored.edited_at, stored.deleted_at, stored.deleted_by) =
            (change.text, change.edited_at, change.deleted_at, change.deleted_by);
        let replaced = bounded(self.op_timeout, context, self.messages.replace_one(filter, stored)).await?;
        Ok(replaced.matched_count > 0)
    }

    /// [`labchat_core::ChatStore::count_deleted`]: one more tombstone in the room's summary, one
    /// message less in the counters of its sender and readers (the others' unread counts,
    /// `lastSeq - deleted - seen`, fall by one).
    pub(crate) async fn count_deleted_of(&self, message: &Message) -> Result<(), StoreError> {
        let context = "count a deleted message";
        let room = message.request_id.to_hex();
        let rooms = self.summaries.rooms.clone_with_type::<Document>();
        bounded(self.op_timeout, context, rooms.update_one(doc! {"_id": &room}, doc! {"$inc": {"deleted": 1_i64}}))
            .await?;
        let keys: Vec<String> = std::iter::once(&message.sender_id)
            .chain(message.read_by().iter().map(|r| &r.user))
            .map(|u| seen_key(message.request_id, u))
            .collect();
        let seen = self.summaries.seen.clone_with_type::<Document>();
        let update = seen.update_many(doc! {"_id": {"$in": keys}}, doc! {"$inc": {"seen": -1_i64}});
        bounded(self.op_timeout, context, update).await.map(drop)
    }
}
