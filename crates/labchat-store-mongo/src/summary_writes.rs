//! The writes that keep a room's summary and a user's counter (`summary.rs`), written once for
//! the store's single writes and for the statements of the counts written together
//! (`tally.rs`).

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};

/// The `_id` of a counter (see `summary::seen_key`), of a room given as hex.
pub(crate) fn seen_key_of(room: &str, user: &str) -> String {
    format!("{room}:{user}")
}

/// The filter and update (an upsert) that move the summary of `room` (hex) to the message `id`,
/// stored as `seq` and created `at` (ms), unless it already names a later one: then the upsert
/// is refused as a duplicate key, which means "a newer one is there".
pub(crate) fn advance_write(room: &str, seq: i64, at: i64, id: ObjectId) -> (Document, Document) {
    let filter = doc! {"_id": room, "lastSeq": {"$lt": seq}};
    let update =
        doc! {"$set": {"requestId": room, "lastSeq": seq, "lastActivityAt": at, "lastMessageId": id, "gone": false}};
    (filter, update)
}

/// [`advance_write`] as a statement of an `update` command.
pub(crate) fn advance_statement(room: &str, seq: i64, at: i64, id: ObjectId) -> Document {
    let (q, u) = advance_write(room, seq, at, id);
    doc! {"q": q, "u": u, "upsert": true}
}

/// The filter and update (an upsert) that add `n` to the counter of `user` in `room` (hex).
pub(crate) fn seen_write(room: &str, user: &str, n: i64) -> (Document, Document) {
    let filter = doc! {"_id": seen_key_of(room, user)};
    let update = doc! {"$inc": {"seen": n}, "$setOnInsert": {"requestId": room, "userId": user}};
    (filter, update)
}

/// [`seen_write`] as a statement of an `update` command.
pub(crate) fn seen_statement(room: &str, user: &str, n: i64) -> Document {
    let (q, u) = seen_write(room, user, n);
    doc! {"q": q, "u": u, "upsert": true}
}
