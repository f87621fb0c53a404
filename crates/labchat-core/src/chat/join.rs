//! The join use case of [`Chat`]: subscribe, read the history page (and the seq it covers), the
//! user's unread messages and the room's members, all while the room's order is held.

use std::sync::Arc;

use labchat_domain::{Cursor, HistoryPage, HistoryQuery, Message, MessageId, RequestId, Seq, User};

use super::join_cache::View;
use super::{Chat, Joined};
use crate::{ChatError, JoinError, RoomSink};

impl Chat {
    /// Joins `sink` to the room and returns the history to send: the latest page, or with
    /// `after` the messages after that one. Joining twice is harmless.
    ///
    /// The sink is subscribed first and the history read next, so no event of the room falls
    /// between the two, wherever it was published; the history may be the one an earlier join of
    /// the room read, when nothing of the room can have happened since (see `join_cache`). When
    /// reading the history fails, the sink is unsubscribed again, unless `rejoin` says it was
    /// subscribed to the room before this call.
    /// On the user's first connection to the room (over all nodes) the room hears
    /// `memberJoined`; the result lists the room's members.
    ///
    /// At most [`JoinAdmission::max_in_flight`](crate::JoinAdmission) joins run at once on this
    /// node: one more waits for one of them to end, at most the admission wait, and is then
    /// refused with [`JoinError::Busy`] before anything was done (not subscribed, nothing read).
    pub async fn join(
        &self,
        user: &User,
        request: RequestId,
        after: Option<MessageId>,
        sink: Arc<dyn RoomSink>,
        rejoin: bool,
    ) -> Result<Joined, JoinError> {
        let _admitted = self.admission.enter().await.map_err(|retry_after| JoinError::Busy { retry_after })?;
        self.authorize(user, request).await?;
        let order = self.room_order(request).await;
        let sink_id = sink.id();
        let sink = self.joins.watch(request, sink);
        self.broadcaster.subscribe(request, sink).await.map_err(JoinError::Subscribe)?;
        let joined = match self.join_view(request, after).await {
            Ok(view) => {
                let whole = after.is_none() && !view.history.has_more && !view.reused;
                self.unread_of(user.id(), request, &view.history, whole).await.map(|unread| (view, unread))
            }
            Err(e) => Err(e),
        };
        match joined {
            Ok((View { history, covered, catch_up, .. }, unread)) => {
                let members = self.arrive(request, user, sink_id).await;
                Ok(Joined { history, covered, catch_up, unread, members, _order: order })
            }
            Err(e) => {
                if !rejoin && let Err(u) = self.unsubscribe_room(request, sink_id).await {
                    tracing::warn!(error = %u, request_id = %request, "unsubscribe after a failed join failed");
                }
                Err(e.into())
            }
        }
    }

    /// The history page of a join, the highest seq it covers (see [`Joined::covered`]), and the
    /// `after` message itself (read for its seq and time: the cover of an empty page, and the
    /// catch-up's bounds).
    pub(super) async fn joined_history(
        &self,
        request: RequestId,
        after: Option<MessageId>,
    ) -> Result<(HistoryPage, Option<Seq>, Option<Message>), ChatError> {
        let cursor = after.map_or(Cursor::Latest, Cursor::After);
        let history = self
            .store
            .history(request, HistoryQuery { cursor, limit: self.history_limit })
            .await
            .map_err(ChatError::store("reading the history of a room to join"))?
            .ok_or(ChatError::NotInRoom(cursor))?;
        let last_held = match after {
            Some(id) => Some(
                self.store
                    .message(request, id)
                    .await
                    .map_err(ChatError::store("reading a join's cursor"))?
                    .ok_or(ChatError::NotInRoom(cursor))?,
            ),
            None => None,
        };
        // A page covers up to its last message; an empty page after `after`, up to `after`.
        let covered = match history.messages.last() {
            Some(m) => m.seq,
            None => last_held.as_ref().and_then(|m| m.seq),
        };
        Ok((history, covered, last_held))
    }
}
