//! The embedded in-memory store: the default when no MongoDB is configured. Nothing persists
//! across restarts.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use labchat_core::{ChatStore, Inserted, Marked, StoreError};
use labchat_domain::{
    CatchUp, Cursor, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId,
    MessageRecord, ReceiptKind, Request, RequestId, Seq, Timestamp, User, UserId,
};

use crate::state::Inner;

/// A [`ChatStore`] in process memory. Requests are added with [`MemoryStore::add_request`].
///
/// Everything happens under one lock, so a message's seq is simply its room's count plus one.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("requests", &inner.requests.len())
            .field("messages", &inner.ids.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes a request (its room's messages stay, as in the lab system's database).
    pub fn remove_request(&self, id: RequestId) {
        self.lock().requests.remove(&id);
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

    async fn find_requests(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        let inner = self.lock();
        Ok(ids.iter().filter_map(|id| inner.requests.get(id).cloned()).collect())
    }

    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let key = message.idempotency_key();
        if let Some(orig) = key.as_ref().and_then(|k| inner.idempotency.get(k)) {
            let original = inner.rooms.get(&message.request_id).and_then(|r| r.get(orig)).cloned();
            return match original {
                Some(m) => Ok(Inserted::Duplicate(m)),
                None => Err(StoreError::Internal {
                    context: format!("find the original of idempotent message {orig}"),
                    source: None,
                }),
            };
        }
        if inner.ids.contains_key(&message.id) {
            return Err(StoreError::Internal {
                context: format!("insert a message: message id {} is already stored", message.id),
                source: None,
            });
        }
        let room = inner.rooms.entry(message.request_id).or_default();
        let count = u64::try_from(room.messages.len()).unwrap_or(u64::MAX);
        let seq = Seq::new(count.saturating_add(1)).map_err(|e| StoreError::internal("assign a message's seq", e))?;
        let record =
            MessageRecord { seq: Some(seq), delivered_to: Vec::new(), read_by: Vec::new(), ..message.to_record() };
        let stored = Message::restore(record).map_err(|e| StoreError::internal("store a message", e))?;
        room.at.insert(message.id, room.messages.len());
        room.messages.push(stored);
        inner.ids.insert(message.id, message.request_id);
        if let Some(key) = key {
            inner.idempotency.insert(key, message.id);
        }
        Ok(Inserted::New(seq))
    }

    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError> {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(&request) else {
            return Ok(matches!(query.cursor, Cursor::Latest).then(HistoryPage::default));
        };
        let n = query.limit.get();
        let all = &room.messages;
        let (from, to, has_more) = match query.cursor {
            Cursor::Latest => (all.len().saturating_sub(n), all.len(), all.len() > n),
            Cursor::Before(id) => {
                let Some(&end) = room.at.get(&id) else { return Ok(None) };
                (end.saturating_sub(n), end, end > n)
            }
            Cursor::After(id) => {
                let Some(&at) = room.at.get(&id) else { return Ok(None) };
                let start = at + 1;
                let end = all.len().min(start.saturating_add(n));
                (start, end, end < all.len())
            }
        };
        Ok(Some(HistoryPage { messages: all[from..to].to_vec(), has_more }))
    }

    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(&request) else { return Ok(HistoryPage::default()) };
        // The room's messages are held in seq order.
        let mut picked: Vec<Message> =
            room.messages.iter().rev().filter(|m| catch_up.includes(m)).take(limit.get() + 1).cloned().collect();
        let has_more = picked.len() > limit.get();
        picked.truncate(limit.get());
        picked.reverse();
        Ok(HistoryPage { messages: picked, has_more })
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
        let inner = &mut *inner;
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

    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        Ok(self.lock().inbox(viewer, query))
    }

    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError> {
        Ok(self.lock().inbox_rows(request, users))
    }

    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        Ok(self.lock().unread_count(request, user))
    }

    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError> {
        let inner = self.lock();
        let Some(room) = inner.rooms.get(&request) else { return Ok(None) };
        Ok(room.messages.iter().find(|m| m.is_unread_for(user)).map(|m| m.id))
    }

    async fn count_posted(&self, message: &Message, _seq: Seq) -> Result<(), StoreError> {
        // The room's last message is always its last stored one here: only the count moves.
        self.lock().seen.add(message.request_id, &message.sender_id, 1);
        Ok(())
    }

    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        self.lock().seen.add(request, user, n);
        Ok(())
    }

    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(room) = inner.rooms.get_mut(&request) else { return Ok(()) };
        let live = || room.messages.iter().filter(|m| m.deletion().is_none());
        let seen = live().filter(|m| &m.sender_id == user || m.has_receipt(ReceiptKind::Read, user)).count();
        let deleted = room.messages.len() - live().count();
        room.deleted = u64::try_from(deleted).unwrap_or(u64::MAX);
        inner.seen.set(request, user, u64::try_from(seen).unwrap_or(u64::MAX));
        Ok(())
    }

    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(self.lock().rooms.get(&request).and_then(|room| room.get(&id)).cloned())
    }

    async fn update_message(&self, message: &Message) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.rooms.get_mut(&message.request_id).and_then(|room| room.get_mut(&message.id)) else {
            return Ok(false);
        };
        if stored.deletion().is_some() {
            return Ok(false);
        }
        // The text, edit and deletion marks from `message`; everything else as stored.
        let mut record = stored.to_record();
        let change = message.to_record();
        (record.text, record.edited_at, record.deleted_at, record.deleted_by) =
            (change.text, change.edited_at, change.deleted_at, change.deleted_by);
        *stored = Message::restore(record).map_err(|e| StoreError::internal("store an edit", e))?;
        Ok(true)
    }

    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(room) = inner.rooms.get_mut(&message.request_id) {
            room.deleted = room.deleted.saturating_add(1);
        }
        inner.seen.remove_one(message.request_id, &message.sender_id);
        for reader in message.read_by() {
            inner.seen.remove_one(message.request_id, &reader.user);
        }
        Ok(())
    }

    async fn latest_since(&self, rooms: &[RequestId], since: Timestamp) -> Result<Vec<(RequestId, Seq)>, StoreError> {
        let inner = self.lock();
        Ok(rooms
            .iter()
            .filter_map(|id| {
                let room = inner.rooms.get(id)?;
                let seq = room.messages.iter().filter(|m| m.created_at >= since).filter_map(|m| m.seq).max()?;
                Some((*id, seq))
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Seqs are assigned under this store's own lock: there is nothing to guess.
    fn seq_seen(&self, _request: RequestId, _seq: Seq) {}
}
