//! [`MongoStore`]: the [`ChatStore`] on MongoDB.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use labchat_core::{ChatStore, Inserted, Marked, StoreError};
use labchat_domain::{
    CatchUp, Cursor, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId,
    ReceiptKind, Request, RequestId, Seq, Timestamp, User, UserId,
};
use mongodb::bson::{Bson, doc};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::batch::Batcher;
use crate::cursors::Cursors;
use crate::documents::{IdOnly, MessageDoc, ReceiptDoc, attach_receipts, idem_key, message_id, object_id, stored_seq};
use crate::errors::{DUPLICATE_KEY, bad_data, bounded, store_error, within};
use crate::gather::Gather;
use crate::migrate::{assign_missing_seqs, has_seq_index};
use crate::requests::Requests;
use crate::sequence::{Outcome, Sequencer};
use crate::settings::MongoSettings;
use crate::summary::{ROOMS_COLLECTION, SEEN_COLLECTION, Summaries, build_missing};
use crate::tally::{Post, Tally};

/// The collection of labchat's messages (in [`MongoSettings::database`]).
pub const MESSAGES_COLLECTION: &str = "chatMessages";
/// The collection of labchat's receipts (in [`MongoSettings::database`]).
pub const RECEIPTS_COLLECTION: &str = "chatReceipts";

/// A [`ChatStore`] on MongoDB. See the crate docs for the collections, documents and indexes.
///
/// Cheap to share behind an `Arc`; the driver keeps a connection pool inside.
pub struct MongoStore {
    db: Database,
    /// The lab system's requests, read only.
    pub(crate) requests: Requests,
    pub(crate) messages: Collection<MessageDoc>,
    pub(crate) receipts: Collection<ReceiptDoc>,
    pub(crate) op_timeout: Duration,
    /// Single request lookups, coalesced (see `gather.rs`).
    pub(crate) request_reads: Gather<RequestId, Request>,
    /// Unread counts, coalesced.
    pub(crate) unread_reads: Gather<(RequestId, UserId), Result<u64, String>>,
    /// History cursors' seqs, coalesced.
    cursors: Cursors,
    /// The room summaries and per-user counters the inbox reads.
    pub(crate) summaries: Summaries,
    /// Assigns seqs and stores messages.
    sequencer: Arc<Sequencer>,
    /// The group commit of message inserts, and the counts of posts written together
    /// (`tally.rs`), when [`MongoSettings::batch_inserts`] is on.
    batcher: Option<(Batcher, Tally)>,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.db.name())
            .field("requests", &self.requests.collection.name())
            .field("creator_field", &self.requests.creator_field)
            .field("op_timeout", &self.op_timeout)
            .field("batch_inserts", &self.batcher.is_some())
            .finish_non_exhaustive()
    }
}

impl MongoStore {
    /// Connects to MongoDB, gives messages stored before seqs existed their seqs (in their old
    /// order, per room; only while the seq index does not exist yet), then creates labchat's
    /// indexes if they are missing (all idempotent; the requests collection is left alone).
    ///
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached within about
    /// [`MongoSettings::op_timeout`] per step, and with [`StoreError::Internal`] for a bad
    /// connection string, an index that conflicts with an existing one, or old messages whose
    /// room already holds seqs out of their order.
    pub async fn connect(settings: MongoSettings) -> Result<Self, StoreError> {
        let limit = settings.op_timeout;
        let context = "parse the MongoDB connection string";
        let mut options = bounded(limit, context, ClientOptions::parse(&settings.uri)).await?;
        // The URI's own timeouts count only when shorter (0 means "none" to the driver).
        let capped = |t: Option<Duration>| Some(t.filter(|t| !t.is_zero()).map_or(limit, |t| t.min(limit)));
        options.server_selection_timeout = capped(options.server_selection_timeout);
        options.connect_timeout = capped(options.connect_timeout);
        options.app_name.get_or_insert_with(|| "labchat".to_owned());
        let client = Client::with_options(options).map_err(|e| store_error("create the MongoDB client", e))?;
        let db = client.database(&settings.database);
        let messages = db.collection(MESSAGES_COLLECTION);
        let sequencer = Arc::new(Sequencer::new(messages.clone(), limit));
        let requests = Requests {
            collection: db.collection(&settings.requests_collection),
            creator_field: settings.creator_field,
            op_timeout: limit,
        };
        let summaries = Summaries {
            rooms: db.collection(ROOMS_COLLECTION),
            seen: db.collection(SEEN_COLLECTION),
            op_timeout: limit,
        };
        let store = Self {
            batcher: settings
                .batch_inserts
                .then(|| (Batcher::start(Arc::clone(&sequencer), limit), Tally::start(db.clone(), limit))),
            sequencer,
            request_reads: requests.gather(),
            unread_reads: summaries.unread_gather(),
            cursors: Cursors::start(messages.clone(), limit),
            requests,
            messages,
            receipts: db.collection(RECEIPTS_COLLECTION),
            summaries,
            db,
            op_timeout: limit,
        };
        if !has_seq_index(&store.messages, limit).await? {
            let migrated = assign_missing_seqs(&store.messages, limit).await?;
            tracing::info!(messages = migrated, "gave messages stored before seqs existed their seqs");
        }
        store.create_indexes().await?;
        if !store.summaries.built().await? {
            let built = build_missing(&store.summaries, &store.messages, &store.receipts).await?;
            tracing::info!(rooms = built, "built the inbox summaries of rooms stored before they existed");
            // Created after the build: its presence tells later start-ups to skip it.
            store.create_summary_index().await?;
        }
        Ok(store)
    }

    /// The messages with their receipts (one query for all the receipts).
    pub(crate) async fn with_receipts(&self, docs: Vec<MessageDoc>, context: &str) -> Result<Vec<Message>, StoreError> {
        let mut messages = docs
            .into_iter()
            .map(MessageDoc::into_message)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_data(context, e))?;
        if messages.is_empty() {
            return Ok(messages);
        }
        let ids: Vec<Bson> = messages.iter().map(|m| Bson::String(m.id.to_hex())).collect();
        let receipts = bounded(self.op_timeout, context, async {
            self.receipts.find(doc! {"messageId": {"$in": ids}}).await?.try_collect::<Vec<_>>().await
        })
        .await?;
        attach_receipts(&mut messages, receipts).map_err(|e| bad_data(context, e))?;
        Ok(messages)
    }

    /// The original of a message whose insert hit the unique idempotency key.
    async fn original_of(&self, message: &Message) -> Result<Inserted, StoreError> {
        let context = "find the original of a repeated message";
        if message.client_message_id.is_none() {
            return Err(StoreError::Internal {
                context: format!("insert a message: message id {} is already stored", message.id),
                source: None,
            });
        }
        let found = bounded(self.op_timeout, context, self.messages.find_one(doc! {"idem": idem_key(message)})).await?;
        let Some(doc) = found else {
            // The duplicate key was the message id, under another idempotency key.
            return Err(StoreError::Internal {
                context: format!("insert a message: message id {} is already stored", message.id),
                source: None,
            });
        };
        let mut originals = self.with_receipts(vec![doc], context).await?;
        match originals.pop() {
            Some(original) => Ok(Inserted::Duplicate(original)),
            None => Err(bad_data(context, "the original vanished")),
        }
    }
}

#[async_trait]
impl ChatStore for MongoStore {
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.find_request_of(id).await
    }

    async fn find_requests(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        self.find_requests_of(ids).await
    }

    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        let mut doc = MessageDoc::from_message(message);
        doc.seq = None;
        let outcome = match &self.batcher {
            Some((batcher, _)) => batcher.insert(doc).await,
            None => self.sequencer.store_one(doc).await,
        };
        match outcome {
            Outcome::Inserted(seq) => Ok(Inserted::New(seq)),
            Outcome::DuplicateKey => self.original_of(message).await,
            Outcome::Failed(e) => Err(e),
        }
    }

    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError> {
        let context = "read history";
        let n = query.limit.get();
        let room = request.to_hex();
        // Every filter states `seq: {$exists: true}`, the seq index's partial filter, so that
        // MongoDB may use that index for the range and the sort.
        let (filter, ascending) = match query.cursor {
            Cursor::Latest => (doc! {"requestId": &room, "seq": {"$exists": true}}, false),
            Cursor::Before(id) => {
                let Some(seq) = self.cursors.seq_of(request, id).await? else { return Ok(None) };
                (doc! {"requestId": &room, "seq": {"$exists": true, "$lt": seq}}, false)
            }
            Cursor::After(id) => {
                let Some(seq) = self.cursors.seq_of(request, id).await? else { return Ok(None) };
                (doc! {"requestId": &room, "seq": {"$exists": true, "$gt": seq}}, true)
            }
        };
        let sort = doc! {"seq": if ascending { 1 } else { -1 }};
        // One more than asked, to learn whether there is more.
        let fetch = i64::try_from(n.saturating_add(1)).unwrap_or(i64::MAX);
        let mut docs = bounded(self.op_timeout, context, async {
            self.messages.find(filter).sort(sort).limit(fetch).await?.try_collect::<Vec<_>>().await
        })
        .await?;
        let has_more = docs.len() > n;
        docs.truncate(n);
        if !ascending {
            docs.reverse();
        }
        let messages = self.with_receipts(docs, "read the receipts of a history page").await?;
        Ok(Some(HistoryPage { messages, has_more }))
    }

    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        self.changed_of(request, catch_up, limit).await
    }

    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError> {
        if ids.is_empty() {
            return Ok(Marked::default());
        }
        // 1. Which of the ids are messages of this request that `user` did not send.
        let context = "find the messages to mark";
        let wanted: Vec<Bson> = ids.iter().map(|id| Bson::ObjectId(object_id(id.object_id()))).collect();
        // As `Message::accepts_receipt_from`: not the user's own, not a tombstone.
        let filter = doc! {
            "_id": {"$in": wanted}, "requestId": request.to_hex(), "senderId": {"$ne": user.as_str()},
            "deletedAt": {"$exists": false},
        };
        let eligible: HashSet<MessageId> = bounded(self.op_timeout, context, async {
            let found = self.messages.clone_with_type::<IdOnly>().find(filter).projection(doc! {"_id": 1}).await?;
            found.try_collect::<Vec<_>>().await
        })
        .await?
        .into_iter()
        .map(|d| message_id(d.id))
        .collect();

        // 2. Insert every receipt at once; those already there fail with a duplicate key.
        let context = "mark messages";
        let kinds: &[ReceiptKind] = match kind {
            ReceiptKind::Delivered => &[ReceiptKind::Delivered],
            ReceiptKind::Read => &[ReceiptKind::Delivered, ReceiptKind::Read],
        };
        let wanted: Vec<(MessageId, ReceiptKind)> =
            ids.iter().filter(|id| eligible.contains(id)).flat_map(|id| kinds.iter().map(|k| (*id, *k))).collect();
        if wanted.is_empty() {
            return Ok(Marked::default());
        }
        let docs = wanted.iter().map(|(id, k)| ReceiptDoc::new(request, *id, *k, user, at));
        let already: HashSet<usize> =
            match within(self.op_timeout, context, self.receipts.insert_many(docs).ordered(false)).await? {
                Ok(_) => HashSet::new(),
                Err(e) => match e.kind.as_ref() {
                    ErrorKind::InsertMany(m)
                        if m.write_concern_error.is_none()
                            && m.write_errors.as_deref().is_some_and(|w| w.iter().all(|w| w.code == DUPLICATE_KEY)) =>
                    {
                        m.write_errors.iter().flatten().map(|w| w.index).collect()
                    }
                    _ => return Err(store_error(context, e)),
                },
            };
        let mut marked = Marked::default();
        for (i, (id, k)) in wanted.into_iter().enumerate() {
            if already.contains(&i) {
                continue;
            }
            match k {
                ReceiptKind::Delivered => marked.delivered.push(id),
                ReceiptKind::Read => marked.read.push(id),
            }
        }
        Ok(marked)
    }

    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        self.inbox_page(viewer, query).await
    }

    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError> {
        self.inbox_rows_of(request, users).await
    }

    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        self.unread_of(request, user).await
    }

    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError> {
        self.first_unread_of(request, user).await
    }

    async fn count_posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError> {
        match &self.batcher {
            Some((_, tally)) => tally.count(Post::of(message, seq)).await,
            None => self.summaries.posted(message, seq).await,
        }
    }

    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        self.summaries.add_seen(request, user, n).await
    }

    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError> {
        self.summaries.recount(&self.messages, &self.receipts, request, user).await
    }

    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.message_of(request, id).await
    }

    async fn update_message(&self, message: &Message) -> Result<bool, StoreError> {
        self.update_of(message).await
    }

    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError> {
        self.count_deleted_of(message).await
    }

    async fn latest_since(&self, rooms: &[RequestId], since: Timestamp) -> Result<Vec<(RequestId, Seq)>, StoreError> {
        self.latest_since_of(rooms, since).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        bounded(self.op_timeout, "ping MongoDB", self.db.run_command(doc! {"ping": 1})).await.map(drop)
    }

    fn seq_seen(&self, request: RequestId, seq: Seq) {
        self.sequencer.hinted(&request.to_hex(), stored_seq(seq));
    }
}
