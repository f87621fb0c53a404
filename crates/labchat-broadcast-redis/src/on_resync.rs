//! What a node does on another node's resync notice (the notices' format is in `resync.rs`):
//! publish again what it published while that node was away, or re-read the rooms whose
//! envelopes it dropped from the store and refresh their inbox rows.
//!
//! A notice for every room (`Ask::All`: a replay needed envelopes a bound had dropped from the
//! record of what was published) refreshes the inbox rows of the rooms this node holds only: an
//! inbox subscriber's row of a room nobody on this node has joined is brought up to date by the
//! room's next notice or by the client's next `inbox` page, not by this one.

use std::sync::Arc;

use labchat_core::InboxNotice;

use crate::metrics_names::RESYNCS;
use crate::resync::Ask;
use crate::rooms::Shared;

impl Shared {
    /// Acts on another node's resync notice.
    pub(crate) fn on_resync(self: &Arc<Self>, ask: Ask) {
        metrics::counter!(RESYNCS, "node" => self.node_id.clone()).increment(1);
        let rooms = match ask {
            Ask::Back(away) => {
                self.replay(away);
                return;
            }
            Ask::Rooms(ids) => {
                for id in &ids {
                    self.inbox.deliver(InboxNotice::Posted { request_id: *id });
                }
                ids.into_iter().filter_map(|id| self.room(id)).collect()
            }
            Ask::All => {
                let rooms = self.all_rooms();
                for room in &rooms {
                    self.inbox.deliver(InboxNotice::Posted { request_id: room.id });
                }
                rooms
            }
        };
        tracing::info!(node = %self.node_id, rooms = rooms.len(), "another node dropped envelopes; re-reading their rooms from the store");
        let shared = Arc::clone(self);
        tokio::spawn(async move { shared.fill_each(rooms).await });
    }
}
