//! The join use case of [`Chat`]: subscribe, read the history page (and the seq it covers), the
//! user's unread messages and the room's members, all while the room's order is held.

use std::sync::Arc;

use labchat_domain::{Cursor, HistoryLimit, HistoryPage, HistoryQuery, MessageId, RequestId, Seq, User};

use super::{Chat, Joined};
use crate::{ChatError, JoinError, RoomSink};

impl Chat {
    /// Joins `sink` to the room and returns the history to send: the latest page, or with
    /// `after` the messages after that one. Joining twice is harmless.
    ///
    /// The sink is subscribed first and the history read next, so no event of the room falls
    /// between the two, wherever it was published. When reading the history fails, the sink is
    /// unsubscribed again, unless `rejoin` says it was subscribed to the room before this call.
    /// On the user's first connection to the room (over all nodes) the room hears
    /// `memberJoined`; the result lists the room's members.
    pub async fn join(
        &self,
        user: &User,
        request: RequestId,
        after: Option<MessageId>,
        sink: Arc<dyn RoomSink>,
        rejoin: bool,
    ) -> Result<Joined, JoinError> {
        self.authorize(user, request).await?;
        let order = self.room_order(request).await;
        let sink_id = sink.id();
        self.broadcaster.subscribe(request, sink).await.map_err(JoinError::Subscribe)?;
        let joined = match self.joined_history(request, after).await {
            Ok((history, covered)) => {
                let catch_up = self.caught_up(request, after).await;
                self.unread_of(user.id(), request, &history).await.map(|unread| (history, covered, catch_up, unread))
            }
            Err(e) => Err(e),
        };
        match joined {
            Ok((history, covered, catch_up, unread)) => {
                let members = self.arrive(request, user, sink_id).await;
                Ok(Joined { history, covered, catch_up, unread, members, _order: order })
            }
            Err(e) => {
                if !rejoin && let Err(u) = self.broadcaster.unsubscribe(request, sink_id).await {
                    tracing::warn!(error = %u, request_id = %request, "unsubscribe after a failed join failed");
                }
                Err(e.into())
            }
        }
    }

    /// The history page of a join, and the highest seq it covers (see [`Joined::covered`]).
    pub(super) async fn joined_history(
        &self,
        request: RequestId,
        after: Option<MessageId>,
    ) -> Result<(HistoryPage, Option<Seq>), ChatError> {
        let cursor = after.map_or(Cursor::Latest, Cursor::After);
        let history = self
            .store
            .history(request, HistoryQuery { cursor, limit: self.history_limit })
            .await
            .map_err(ChatError::store("reading the history of a room to join"))?
            .ok_or(ChatError::NotInRoom(cursor))?;
        if let Some(last) = history.messages.last().map(|m| m.seq) {
            return Ok((history, last));
        }
        let Some(after) = after.filter(|_| self.broadcaster.backplane().is_some()) else {
            return Ok((history, None));
        };
        // Nothing after `after`: the page covers up to `after` itself, the message right after
        // its predecessor (seqs are dense), or the room's first.
        let before = self
            .store
            .history(
                request,
                HistoryQuery {
                    cursor: Cursor::Before(after),
                    limit: HistoryLimit::new(1).unwrap_or(self.history_limit),
                },
            )
            .await
            .map_err(ChatError::store("reading the seq of a join's cursor"))?
            .ok_or(ChatError::NotInRoom(cursor))?;
        let covered = match before.messages.last() {
            Some(m) => m.seq.and_then(Seq::next),
            None => Some(Seq::FIRST),
        };
        Ok((history, covered))
    }
}
