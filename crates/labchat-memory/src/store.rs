//! The embedded in-memory store: the default when no MongoDB is configured. Nothing persists
//! across restarts.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use labchat_core::{ChatStore, Inserted, Marked, StoreError};
use labchat_domain::{
    Cursor, HistoryPage, HistoryQuery, IdempotencyKey, Message, MessageId, ReceiptKind, Request, RequestId, Timestamp,
    UserId,
};

#[derive(Default)]
struct Inner {
    requests: HashMap<RequestId, Request>,
    /// Each room's messages, keyed (and so sorted) by id.
    rooms: HashMap<RequestId, BTreeMap<MessageId, Message>>,
    idempotency: HashMap<IdempotencyKey, MessageId>,
}

/// A [`ChatStore`] in process memory. Requests are added with [`MemoryStore::add_request`].
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("requests", &inner.requests.len())
            .field("messages", &inner.rooms.values().map(BTreeMap::len).sum::<usize>())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a request.
    pub fn add_request(&self, request: Request) {
        self.lock().requests.insert(request.id(), request);
    }

    /// How many requests the store holds.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that breaks
        // the invariants below (every update is a single insert), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ChatStore for MemoryStore {
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        Ok(self.lock().requests.get(&id).cloned())
    }

    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(key) = message.idempotency_key() {
            if let Some(orig) = inner.idempotency.get(&key) {
                let original = inner.rooms.get(&key.request_id).and_then(|r| r.get(orig)).cloned();
                return match original {
                    Some(m) => Ok(Inserted::Duplicate(m)),
                    None => Err(StoreError::Internal {
                        context: format!("find the original of idempotent message {orig}"),
                        source: None,
                    }),
                };
            }
            inner.idempotency.insert(key, message.id);
        }
        let mut stored = message.clone();
        stored.delivered_to.clear();
        stored.read_by.clear();
        inner.rooms.entry(message.request_id).or_default().insert(message.id, stored);
        Ok(Inserted::New)
    }

    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(&request) else { return Ok(HistoryPage::default()) };
        let n = query.limit.get();
        // Take one more than asked, to learn whether there is more.
        let (mut page, ascending): (Vec<Message>, bool) = match query.cursor {
            Cursor::Latest => (room.values().rev().take(n + 1).cloned().collect(), false),
            Cursor::Before(id) => (room.range(..id).rev().take(n + 1).map(|(_, m)| m.clone()).collect(), false),
            Cursor::After(id) => {
                (room.range((Excluded(id), Unbounded)).take(n + 1).map(|(_, m)| m.clone()).collect(), true)
            }
        };
        let has_more = page.len() > n;
        page.truncate(n);
        if !ascending {
            page.reverse();
        }
        Ok(HistoryPage { messages: page, has_more })
    }

    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError> {
        let mut inner = self.lock();
        let mut marked = Marked::default();
        let Some(room) = inner.rooms.get_mut(&request) else { return Ok(marked) };
        for id in ids {
            if let Some(m) = room.get_mut(id) {
                let outcome = m.mark(request, user, kind, at);
                if outcome.delivered {
                    marked.delivered.push(*id);
                }
                if outcome.read {
                    marked.read.push(*id);
                }
            }
        }
        Ok(marked)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
