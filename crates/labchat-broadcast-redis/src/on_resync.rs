//! What a node does on another node's resync notice (the notices' format is in `resync.rs`):
//! publish again what it published while that node was away, or re-read the rooms whose
//! envelopes it dropped from the store and refresh their inbox rows.

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
