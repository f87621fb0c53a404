//! [`MongoSettings`]: where and how the store reaches MongoDB.

use std::time::Duration;

#[cfg(doc)]
use crate::MongoStore;

/// Where and how [`MongoStore`] reaches MongoDB.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MongoSettings {
    /// The connection string, e.g. `mongodb://127.0.0.1:27017` (default). Its own
    /// `serverSelectionTimeoutMS` and `connectTimeoutMS`, when given, apply only if shorter than
    /// [`Self::op_timeout`].
    pub uri: String,
    /// The database holding the requests and labchat's collections (default `labchat`).
    pub database: String,
    /// The collection of requests, owned by the lab system and only read (default `requests`).
    pub requests_collection: String,
    /// The field of a request holding its creator's user id, an ObjectId or a string (default
    /// `createdBy`). A dotted path reaches into sub-documents.
    pub creator_field: String,
    /// The longest any single call to MongoDB may take, including finding a server to talk to
    /// (default 5 s; must not be zero). A call that takes longer fails with
    /// [`StoreError::Unavailable`]. A store operation makes a few calls, each bounded; an insert
    /// waits at most this long in all.
    pub op_timeout: Duration,
    /// Whether concurrent message inserts share one batched insert (default `true`): while one
    /// batch is in flight, the messages that arrive are gathered (up to 256) and stored together
    /// by the next one, with one round trip; the counts after posts are written together the same
    /// way. Each caller still gets its own answer only after its message is stored (or counted).
    /// `false` stores each message with its own insert and counts it with its own writes.
    pub batch_inserts: bool,
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            uri: "mongodb://127.0.0.1:27017".to_owned(),
            database: "labchat".to_owned(),
            requests_collection: "requests".to_owned(),
            creator_field: "createdBy".to_owned(),
            op_timeout: Duration::from_secs(5),
            batch_inserts: true,
        }
    }
}
