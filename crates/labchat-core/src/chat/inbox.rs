//! The inbox use cases of [`Chat`]: a page of a user's inbox, live inbox subscriptions, and the
//! unread messages a join tells.

use std::sync::Arc;

use labchat_domain::{HistoryPage, InboxCursor, InboxPage, InboxQuery, RequestId, Unread, User, UserId};

use super::Chat;
use crate::{ChatError, InboxListener, InboxSink, SinkId};

impl Chat {
    /// `user`'s unread messages in the room. When the join's page is `whole` (it holds every
    /// message of the room: the latest page with nothing older, read by this join rather than
    /// kept from an earlier one), from the page alone, with no store read: in a storm of rejoins
    /// most rooms are small, and this was half of each rejoin's reads. Else the count from the
    /// store (recounted first when a count write of the room failed, see `recount`), and the
    /// oldest from the page when the page holds all of them (else from the store). Called with
    /// the room's order held.
    pub(super) async fn unread_of(
        &self,
        user: &UserId,
        request: RequestId,
        page: &HistoryPage,
        whole: bool,
    ) -> Result<Unread, ChatError> {
        self.recounts.before_read(Some(request), true).await;
        let in_page = Unread::among(&page.messages, user);
        if whole {
            return Ok(in_page);
        }
        let count =
            self.store.unread_count(request, user).await.map_err(ChatError::store("counting unread messages"))?;
        if count == 0 {
            return Ok(Unread::default());
        }
        let first = match in_page.first {
            Some(id) if in_page.count >= count => Some(id),
            _ => self
                .store
                .first_unread(request, user)
                .await
                .map_err(ChatError::store("finding the first unread message"))?,
        };
        Ok(Unread { count, first })
    }

    /// A page of `user`'s inbox: the rooms they may act on that hold messages, most recent
    /// activity first, each with their unread count (see [`crate::ChatStore::inbox`]). Needs no
    /// authorization: the store lists only what the user may act on, as it is stored now.
    ///
    /// A cursor (`query.before`) must be a place this inbox could have given: its room one the
    /// user may act on now (as every use case authorizes) that holds messages, its time no later
    /// than the room's last activity; else [`ChatError::UnknownInboxCursor`]. So a made-up cursor
    /// is refused, and tells nothing about rooms the user may not act on (all are refused alike).
    pub async fn inbox(&self, user: &User, query: InboxQuery) -> Result<InboxPage, ChatError> {
        if let Some(cursor) = query.before {
            self.check_inbox_cursor(user, cursor).await?;
        }
        self.recounts.before_read(None, false).await;
        self.store.inbox(user, query).await.map_err(ChatError::store("reading an inbox"))
    }

    async fn check_inbox_cursor(&self, user: &User, cursor: InboxCursor) -> Result<(), ChatError> {
        let key = cursor.key();
        match self.authorize(user, key.request_id).await {
            Ok(_) => {}
            Err(ChatError::Forbidden) => return Err(ChatError::UnknownInboxCursor(cursor)),
            Err(e) => return Err(e),
        }
        let rows = self
            .store
            .inbox_rows(key.request_id, std::slice::from_ref(user.id()))
            .await
            .map_err(ChatError::store("checking an inbox cursor"))?;
        match rows.first() {
            Some(row) if key.last_activity_at <= row.last_activity_at() => Ok(()),
            _ => Err(ChatError::UnknownInboxCursor(cursor)),
        }
    }

    /// Subscribes `sink` to `user`'s live inbox updates (see [`crate::InboxHub`]); twice is as once.
    /// The broadcaster is told when `user` gets their first subscribed sink on this node
    /// ([`crate::Broadcaster::inbox_interest`]), and this returns once it is ready to hand over
    /// the notices the user needs.
    pub async fn subscribe_inbox(&self, user: &User, sink: Arc<dyn InboxSink>) {
        if self.inbox.subscribe(user, sink) {
            self.broadcaster.inbox_interest(user, true).await;
        }
    }

    /// Stops the sink's inbox updates; harmless when it was not subscribed. The broadcaster is
    /// told when it was its user's last subscribed sink on this node.
    pub async fn unsubscribe_inbox(&self, sink: SinkId) {
        for user in self.inbox.unsubscribe(sink) {
            self.broadcaster.inbox_interest(&user, false).await;
        }
    }

    /// The node's inbox hub, as the broadcaster's listener: the wiring registers it with
    /// [`crate::Broadcaster::listen_inbox`] so that posts and reads reach inbox subscribers.
    pub fn inbox_listener(&self) -> Arc<dyn InboxListener> {
        Arc::clone(&self.inbox) as Arc<dyn InboxListener>
    }
}
