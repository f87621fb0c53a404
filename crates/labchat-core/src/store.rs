//! The store port ([`ChatStore`]): requests, messages, receipts and the inbox, and the errors
//! an adapter may report.

use async_trait::async_trait;
use labchat_domain::{
    CatchUp, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId, ReceiptKind,
    Request, RequestId, Seq, Timestamp, User, UserId,
};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store operation failed. Adapters map their driver's errors into these two cases.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time. Retrying later may succeed.
    #[error("store unavailable while trying to {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store answered with something unexpected (corrupt data, a bug). Retrying will not help.
    #[error("store failure while trying to {context}")]
    Internal {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] with context and cause.
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable { context: context.into(), source: Some(source.into()) }
    }

    /// An [`StoreError::Internal`] with context and cause.
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal { context: context.into(), source: Some(source.into()) }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The result of [`ChatStore::insert_message`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Inserted {
    /// The message was stored as the room's message number `Seq`.
    New(Seq),
    /// A message with the same idempotency key was stored before; nothing was stored now. Holds
    /// the original message, with its seq and its receipts as they are now.
    Duplicate(Message),
}

/// What [`ChatStore::mark`] newly marked.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Marked {
    /// Ids newly marked as delivered, in the order they were asked for.
    pub delivered: Vec<MessageId>,
    /// Ids newly marked as read, in the order they were asked for.
    pub read: Vec<MessageId>,
}

/// Where requests are looked up and messages and receipts are kept.
///
/// Every method is bounded in time: an implementation that cannot reach its backend in time
/// returns [`StoreError::Unavailable`] rather than waiting forever. Implementations must pass the
/// contract suite in `tests/` (run against every store), which is the executable form of the
/// contracts below.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// The request with this id, or `None` when there is none. Read-only: requests belong to the
    /// wider lab system.
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError>;

    /// The requests among `ids` that exist, each as [`ChatStore::find_request`] finds it, in any
    /// order (the others are left out): one read for many requests. Read-only.
    async fn find_requests(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError>;

    /// Stores a new message with no receipts, as the room's next message, and returns its
    /// [`Seq`] ([`Inserted::New`]); the message's own `seq` is ignored. What
    /// [`ChatStore::inbox`] reads is not touched: the caller follows a new message with
    /// [`ChatStore::count_posted`].
    ///
    /// Seqs are the room's order: 1 for its first message, then dense (no holes, no repeats),
    /// under concurrent calls too, including calls through several store instances on one
    /// backend. A seq exists only once its message is stored: a call that fails or times out
    /// leaves no hole (its message is either stored with the next seq or not at all).
    ///
    /// When the message has an idempotency key ([`Message::idempotency_key`]) and a message with
    /// the same key is already stored, stores nothing and returns [`Inserted::Duplicate`] with
    /// the original (its seq unchanged); this holds under concurrent calls too. Message ids are
    /// unique and made by the caller.
    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError>;

    /// One page of the room's history in seq order, oldest first, with receipts, exactly as
    /// [`HistoryQuery::select`] would pick it from all of the room's messages in seq order.
    /// A room with no messages (or no request) gives an empty page for [`Cursor::Latest`].
    ///
    /// Returns `Ok(None)` when the cursor's id ([`Cursor::After`] or [`Cursor::Before`]) is not
    /// a message of this room (unknown, or in another room), so the caller can refuse the query.
    ///
    /// [`Cursor::Latest`]: labchat_domain::Cursor::Latest
    /// [`Cursor::After`]: labchat_domain::Cursor::After
    /// [`Cursor::Before`]: labchat_domain::Cursor::Before
    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError>;

    /// What a client that held the room up to [`CatchUp::up_to`] missed on those messages:
    /// exactly the room's messages that [`CatchUp::includes`] picks (marked, edited or deleted at
    /// or after [`CatchUp::since`]), in seq order with their receipts; at most `limit` of them,
    /// those with the highest seqs, and `has_more` when more were picked. A store that cannot
    /// tell which are the highest (past bounds of its own on what it reads) gives none and
    /// `has_more`. Read-only.
    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError>;

    /// Marks messages for `user` as `kind` at `at`, following [`Message::mark`]: only messages of
    /// `request` not sent by `user` are touched; ids of other requests and unknown ids are
    /// ignored; marking as read marks as delivered too; a receipt is never marked twice.
    /// `ids` holds no duplicates. Returns exactly the ids newly marked, in the order of `ids`.
    /// Unread counts are not touched: the caller follows messages newly marked as read with
    /// [`ChatStore::count_read`].
    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError>;

    /// One page of `viewer`'s inbox, exactly as [`labchat_domain::select_page`] would pick it
    /// from one row per room the viewer may act on now that holds at least one message: for a
    /// TEACHER the requests whose stored creator is them at the time of the call (a request
    /// reassigned to someone else or deleted is not listed), for LAB every existing request
    /// ([`Request::authorize`] over the requests as they are stored now).
    ///
    /// Each row holds the room's last message (highest seq, with its receipts) and the viewer's
    /// unread count: the room's messages neither sent by the viewer nor marked read by them.
    /// Costs a bounded number of queries whatever the rooms' sizes: no message is scanned (the
    /// counts are kept by [`ChatStore::count_posted`] and [`ChatStore::count_read`], and made
    /// exact again by [`ChatStore::recount`]).
    /// A page may hold fewer rows than its limit and still have a following one.
    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError>;

    /// The room's inbox row for each of `users`, in their order, or an empty list when the room
    /// holds no message. No authorization: the caller decides who may see it. A bounded number of
    /// queries, whatever the room's size and however many users are asked for.
    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError>;

    /// How many messages of the room `user` neither sent nor read (0 for a room without
    /// messages). A bounded number of queries, whatever the room's size.
    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError>;

    /// The oldest message of the room, in seq order, that `user` neither sent nor read, or
    /// `None` when there is none. May read the room's messages in order up to that one (callers
    /// ask only when the unread count says there is one).
    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError>;

    /// Updates what [`ChatStore::inbox`] reads after `message` was stored as `seq` by
    /// [`ChatStore::insert_message`]: the room's last message becomes this one unless it is
    /// already a later one (only ever forward in seq, whatever order concurrent calls finish
    /// in), and the sender's count of the room's messages sent or read grows by one, so that
    /// their own posts are never unread.
    ///
    /// Not idempotent: each call counts once. After a failure the room's last message and the
    /// sender's count may be behind (or, when the write took effect though the call failed,
    /// right); [`ChatStore::recount`] makes them exact again.
    async fn count_posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError>;

    /// Counts `n` messages of the room newly marked as read by `user` (what [`ChatStore::mark`]
    /// returned as read): their unread count of the room falls by `n`. Not idempotent; after a
    /// failure the count may be off until [`ChatStore::recount`].
    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError>;

    /// Makes what [`ChatStore::inbox`] reads for `user` in the room exact again, from the stored
    /// messages and receipts: the room's last message becomes its message with the highest seq
    /// (unless a later one is already there), and `user`'s count becomes the number of the room's
    /// messages they sent plus those they read. Idempotent. May read the whole room (callers use
    /// it only to repair a count after a failed [`ChatStore::count_posted`] or
    /// [`ChatStore::count_read`]). A count write of the same room and user that runs at the same
    /// time may leave the count off by that write; callers hold such writes off while recounting.
    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError>;

    /// The stored message `id` of the room `request`, with its receipts, or `None` when the room
    /// holds no such message (an unknown id and a message of another room are not told apart).
    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError>;

    /// Stores an edit or a deletion of a stored message: `message` as [`Message::edit`] or
    /// [`Message::delete`] left it. Writes its text, its `edited_at` and its deletion only (never
    /// its id, room, seq or receipts); a deletion removes the stored text for good (it is not
    /// hidden). Returns `false`, and writes nothing, when the room holds no message with that id
    /// or the stored one is already deleted: a tombstone never changes again.
    async fn update_message(&self, message: &Message) -> Result<bool, StoreError>;

    /// Counts a message newly deleted by [`ChatStore::update_message`] (`message` is the
    /// tombstone, with the receipts it had): it is unread for no one any more. The users who had
    /// not read it see their unread count of the room fall by one; its sender's and its readers'
    /// counts do not change. [`ChatStore::inbox`], [`ChatStore::inbox_rows`],
    /// [`ChatStore::unread_count`] and [`ChatStore::first_unread`] never count a deleted message
    /// as unread. Not idempotent; after a failure the counts may be off until
    /// [`ChatStore::recount`], which counts no deleted message either.
    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError>;

    /// The highest seq of each of `rooms` among its messages created at or after `since`, for
    /// the rooms that have such a message (the others are left out), in any order. Any number
    /// of rooms, answered with few reads whatever the length of their histories (a store may
    /// read the messages created since `since` instead of each room, when they are fewer): what
    /// a node with thousands of quiet rooms asks the store, with one call per check, to learn
    /// which of them hold a message it has not heard of. Read-only.
    async fn latest_since(&self, rooms: &[RequestId], since: Timestamp) -> Result<Vec<(RequestId, Seq)>, StoreError>;

    /// Checks that the store answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A hint: message `seq` of room `request` is stored (a node heard of it from another
    /// node). A store that guesses a room's next seq may use it to guess right, sparing a failed
    /// insert; one that does not guess ignores it. A hint is not proof (it crossed Redis): a store
    /// never gives a message a seq past what the store itself confirms because of a hint, so a
    /// forged one cannot open a hole in a room. A wrapper forwards it. Must not block.
    fn seq_seen(&self, request: RequestId, seq: Seq);
}
