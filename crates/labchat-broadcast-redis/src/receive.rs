//! The broadcaster as the link sees it: every payload received from Redis is opened from its
//! seal (`auth`), told apart (resync notice, inbox notice, room envelope), and handed on; what
//! cannot be accepted is counted and logged by [`crate::rejects`], never delivered. The same
//! for the payloads of the shard link on a cluster.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use labchat_core::BackplaneStatus;
use labchat_domain::RoomEvent;

use crate::audience;
use crate::envelope::{self, EnvelopeError};
use crate::inbox;
use crate::link::LinkHandler;
use crate::metrics_names::{CONNECTED, DELIVERIES, RECEIVED};
use crate::rejects::Rejection;
use crate::resync;
use crate::rooms::{Shared, Side};
use crate::shards::ShardHandler;

/// The broadcaster as the link sees it.
pub(crate) struct LinkSide(pub(crate) Arc<Shared>);

#[async_trait]
impl LinkHandler for LinkSide {
    fn channels(&self) -> Vec<String> {
        // On a cluster the rooms' channels are the shard link's.
        let rooms = match self.0.shards {
            Some(_) => Vec::new(),
            None => self.0.rooms().keys().map(|id| self.0.topology.room_channel(*id)).collect::<Vec<_>>(),
        };
        std::iter::once(inbox::CHANNEL.to_owned()).chain(self.0.interest.wanted().channels).chain(rooms).collect()
    }

    fn patterns(&self) -> Vec<String> {
        self.0.interest.wanted().patterns
    }

    fn on_payload(&self, channel: &str, payload: &[u8]) {
        self.receive(channel, payload);
    }

    async fn on_connected(&self) {
        self.0.fill_all().await;
    }

    fn on_status(&self, connected: bool, detail: String) {
        metrics::gauge!(CONNECTED, "node" => self.0.node_id.clone()).set(if connected { 1.0 } else { 0.0 });
        let mut status = self.0.status.lock().unwrap_or_else(|p| p.into_inner());
        let changed = status.connected != connected;
        if changed {
            tracing::info!(connected, detail = %detail, "redis backplane");
        }
        *status = BackplaneStatus { connected, detail };
        drop(status);
        if changed {
            self.0.link_changed(Side::Link, connected);
        }
    }
}

#[async_trait]
impl ShardHandler for LinkSide {
    fn on_payload(&self, channel: &str, payload: &[u8]) {
        self.receive(channel, payload);
    }

    async fn on_resubscribed(&self, channels: &HashSet<String>) {
        let shared = &self.0;
        let rooms = shared.all_rooms().into_iter().filter(|r| channels.contains(&shared.topology.room_channel(r.id)));
        shared.fill_each(rooms.collect()).await;
    }

    /// Shard channels lost (a failover) count as time away: once they are back, the other nodes
    /// publish again what they published meanwhile, as after a link outage.
    fn on_status(&self, complete: bool, detail: String) {
        tracing::info!(complete, detail = %detail, "redis cluster shard subscriptions");
        self.0.link_changed(Side::Shards, complete);
    }
}

impl LinkSide {
    /// Opens, tells apart and hands on one payload of any channel.
    fn receive(&self, channel: &str, payload: &[u8]) {
        let shared = &self.0;
        let kind = if channel == inbox::CHANNEL {
            "inbox"
        } else if audience::is_audience(channel) {
            "audience"
        } else {
            "room"
        };
        metrics::counter!(DELIVERIES, "node" => shared.node_id.clone(), "channel" => kind).increment(1);
        let (payload, seal) = match shared.keys.open(payload) {
            Ok(opened) => opened,
            Err(refused) => {
                shared.rejects.reject(&refused.into());
                return;
            }
        };
        match resync::decode(&payload) {
            resync::Decoded::NotResync => {}
            resync::Decoded::Notice { origin, ask } => {
                if origin != shared.node_id {
                    shared.on_resync(ask);
                }
                return;
            }
            resync::Decoded::Malformed(e) => {
                shared.rejects.reject(&Rejection::Malformed(e));
                return;
            }
        }
        match inbox::decode(&payload) {
            inbox::Decoded::NotInbox => {}
            inbox::Decoded::Notice { origin, notice } => {
                if origin != shared.node_id {
                    shared.inbox.deliver(notice);
                }
                return;
            }
            inbox::Decoded::Malformed(e) => {
                shared.rejects.reject(&Rejection::Malformed(e));
                return;
            }
        }
        let received = match envelope::decode(&payload, seal) {
            Ok(r) => r,
            Err(EnvelopeError::Version(v)) => {
                shared.rejects.reject(&Rejection::UnknownVersion(v));
                return;
            }
            Err(EnvelopeError::Unsigned) => {
                shared.rejects.reject(&Rejection::Unsigned);
                return;
            }
            Err(e @ (EnvelopeError::Json(..) | EnvelopeError::Field(..))) => {
                shared.rejects.reject(&Rejection::Malformed(e.to_string()));
                return;
            }
        };
        if received.origin == shared.node_id {
            return;
        }
        metrics::counter!(RECEIVED, "node" => shared.node_id.clone()).increment(1);
        if let RoomEvent::MessagePosted(m) = &received.event
            && let Some(seq) = m.seq
        {
            shared.store.seq_seen(m.request_id, seq);
        }
        if let Some(room) = shared.room(received.event.request_id()) {
            shared.offer(&room, received.event);
        }
    }
}
