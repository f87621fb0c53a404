//! A room's start on this node: the wait for Redis to confirm its subscription, the read of its
//! starting point from the store, and the fill once a late confirmation comes.

use std::sync::Arc;

use labchat_core::BroadcastError;
use labchat_domain::{Cursor, HistoryLimit, HistoryQuery};
use tokio::sync::oneshot;

use crate::metrics_names::LATE_SUBSCRIPTIONS;
use crate::order::Step;
use crate::rooms::{Room, Shared};

impl Shared {
    /// Makes sure the room's starting point is known: waits for the subscription's confirmation
    /// (bounded, once), then reads the store's latest message once.
    ///
    /// A confirmation later than the operation timeout (the link's commands queued behind a join
    /// storm's) leaves the room started while Redis does not deliver its channel here yet: a
    /// message stored after the read and published before the confirmation reaches no
    /// subscriber on this node, and no later message need come to show it. So once the late
    /// confirmation comes, the room is filled from the store (everything published before it
    /// was stored before it). A confirmation that never comes (the link failed) is covered by
    /// the reconnection's fill of every room.
    pub(crate) async fn start_room(self: &Arc<Self>, room: &Arc<Room>) -> Result<(), BroadcastError> {
        let mut start = room.start.lock().await;
        if start.started {
            return Ok(());
        }
        if !start.late
            && let Some(ack) = start.ack.as_mut()
        {
            match tokio::time::timeout(self.op_timeout, ack).await {
                Ok(_) => start.ack = None,
                Err(_) => start.late = true,
            }
        }
        let query =
            HistoryQuery { cursor: Cursor::Latest, limit: HistoryLimit::new(1).unwrap_or(HistoryLimit::DEFAULT) };
        let page = self
            .store
            .history(room.id, query)
            .await
            .map_err(|e| BroadcastError(format!("reading the latest message of room {}: {e}", room.id.to_hex())))?;
        let latest = page.and_then(|p| p.messages.last().and_then(|m| m.seq.map(|s| (s, m.id))));
        let fill = {
            let mut state = room.lock();
            let Step { deliver, fill } = state.order.start(latest);
            state.deliver(deliver);
            self.count_held(&mut state);
            fill
        };
        start.started = true;
        let late = if start.late { start.ack.take() } else { None };
        drop(start);
        self.follow_up(room, fill);
        if let Some(ack) = late {
            self.fill_once_confirmed(room, ack);
        }
        Ok(())
    }

    /// Fills the room once Redis confirms its subscription (see [`Shared::start_room`]).
    fn fill_once_confirmed(self: &Arc<Self>, room: &Arc<Room>, ack: oneshot::Receiver<()>) {
        metrics::counter!(LATE_SUBSCRIPTIONS, "node" => self.node_id.clone()).increment(1);
        tracing::debug!(node = %self.node_id, request_id = %room.id, "a room started before Redis confirmed its subscription");
        let (shared, room) = (Arc::clone(self), Arc::clone(room));
        tokio::spawn(async move {
            if ack.await.is_ok() {
                shared.fill(&room).await;
            }
        });
    }
}
