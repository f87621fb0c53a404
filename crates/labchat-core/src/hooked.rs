//! [`Hooked`]: the one [`ChatStore`] wrapper. It forwards every method to an inner store through
//! a [`StoreHook`], which may measure, delay, fail or follow a call; a wrapper (metrics, fault
//! injection in tests) writes only its hook, and a new store method is forwarded here once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use labchat_domain::{
    CatchUp, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId, ReceiptKind,
    Request, RequestId, Seq, Timestamp, User, UserId,
};

use crate::store::{ChatStore, Inserted, Marked, StoreError};

/// One call of the inner store, as a [`StoreHook`] receives it.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Which store method a call is, and the room it names (if it names one).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StoreCall {
    /// The method's name, as in [`ChatStore`] (`"history"`, `"count_posted"`, ...).
    pub op: &'static str,
    /// The room the call names, when its arguments name one.
    pub request: Option<RequestId>,
}

/// What a [`Hooked`] store does around each call of its inner store.
pub trait StoreHook: Send + Sync + 'static {
    /// Runs `inner` (the inner store's answer to `call`), or anything in its place. The default
    /// runs it as it is. `T` is the method's success type (for example [`Inserted`] for
    /// `insert_message`), so a hook may look at it through [`std::any::Any`].
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        let _ = call;
        inner
    }
}

/// A [`ChatStore`] that hands every call of `inner` to its hook (see the module).
pub struct Hooked<H> {
    inner: Arc<dyn ChatStore>,
    hook: H,
}

impl<H> std::fmt::Debug for Hooked<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked").field("hook", &std::any::type_name::<H>()).finish_non_exhaustive()
    }
}

impl<H: StoreHook> Hooked<H> {
    /// `inner`, behind `hook`.
    pub fn new(inner: Arc<dyn ChatStore>, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The inner store.
    pub fn inner(&self) -> &Arc<dyn ChatStore> {
        &self.inner
    }

    fn call<'a, T: Send + 'static>(
        &'a self,
        op: &'static str,
        request: Option<RequestId>,
        inner: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        self.hook.around(StoreCall { op, request }, inner)
    }
}

#[async_trait]
impl<H: StoreHook> ChatStore for Hooked<H> {
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.call("find_request", Some(id), self.inner.find_request(id)).await
    }
    async fn find_requests(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        self.call("find_requests", None, self.inner.find_requests(ids)).await
    }
    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        self.call("insert_message", Some(message.request_id), self.inner.insert_message(message)).await
    }
    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError> {
        self.call("history", Some(request), self.inner.history(request, query)).await
    }
    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        self.call("changed", Some(request), self.inner.changed(request, catch_up, limit)).await
    }
    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError> {
        self.call("mark", Some(request), self.inner.mark(request, user, kind, ids, at)).await
    }
    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        self.call("inbox", None, self.inner.inbox(viewer, query)).await
    }
    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError> {
        self.call("inbox_rows", Some(request), self.inner.inbox_rows(request, users)).await
    }
    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        self.call("unread_count", Some(request), self.inner.unread_count(request, user)).await
    }
    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError> {
        self.call("first_unread", Some(request), self.inner.first_unread(request, user)).await
    }
    async fn count_posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError> {
        self.call("count_posted", Some(message.request_id), self.inner.count_posted(message, seq)).await
    }
    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        self.call("count_read", Some(request), self.inner.count_read(request, user, n)).await
    }
    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError> {
        self.call("recount", Some(request), self.inner.recount(request, user)).await
    }
    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.call("message", Some(request), self.inner.message(request, id)).await
    }
    async fn update_message(&self, message: &Message) -> Result<bool, StoreError> {
        self.call("update_message", Some(message.request_id), self.inner.update_message(message)).await
    }
    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError> {
        self.call("count_deleted", Some(message.request_id), self.inner.count_deleted(message)).await
    }
    async fn latest_since(&self, rooms: &[RequestId], since: Timestamp) -> Result<Vec<(RequestId, Seq)>, StoreError> {
        self.call("latest_since", None, self.inner.latest_since(rooms, since)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", None, self.inner.ping()).await
    }
    fn seq_seen(&self, request: RequestId, seq: Seq) {
        self.inner.seq_seen(request, seq);
    }
}
