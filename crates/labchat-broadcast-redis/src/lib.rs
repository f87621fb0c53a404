//! # labchat-broadcast-redis
//!
//! A [`Broadcaster`] for several labchat nodes: each node delivers a room's events to its own
//! sinks and fans them out to the other nodes through Redis pub/sub, one channel per room
//! (`labchat:room:<request id hex>`), one small versioned JSON envelope per event.
//!
//! The store stays the only source of truth: Redis holds no history, and losing it loses
//! nothing. Every node delivers a room's messages to its sinks strictly in seq order, with no
//! holes and no duplicates: a message that arrives ahead of its predecessor waits for it (at
//! most [`RedisSettings::gap_wait`]), then the missing range is read from the store. A receipt
//! never reaches a sink before the messages it names. A room where no message was heard for
//! [`RedisSettings::check_interval`] is checked against the store, then again every interval
//! while it stays quiet (a room that hears messages needs no check: the next seq reveals a lost
//! one), and after a reconnection every room is caught up from the store.
//!
//! Inbox notices (a message posted, messages read) travel on `labchat:inbox`, that every node
//! subscribes to, from a node writing envelope version 2; a node writing version 3 publishes them
//! on the channels of the room's audiences instead, which a node subscribes only while it has an
//! inbox subscriber of that audience (see `audience`). Each node's inbox hub reads the counts
//! from the store.
//!
//! What a client sees while Redis is down: its node still stores and delivers every post to its
//! own members; messages posted on other nodes arrive when Redis is back, in order. A node never
//! leaves what it failed to publish to the quiet-room check: the envelope waits in its bounded
//! outbox ([`OutboxBounds`]) and is published again, in order, as soon as a connection is back;
//! one dropped past a bound has its room named in a resync notice that makes every node re-read
//! it from the store. A node whose subscriber comes back re-reads every subscribed room and
//! announces it, and the other nodes publish again what they published while it was away, so
//! receipts, inbox notices and presence changes of the outage arrive live after it (see
//! `outbox` and `resync`).
//!
//! Envelopes are versioned ([`EnvelopeVersion`]): a node reads its release's version and the
//! previous release's, and writes the one chosen by its operator, so that a deployment can be
//! upgraded one node at a time. With a backplane secret ([`BackplaneSecrets`]) every payload a
//! node publishes is sealed with an HMAC-SHA256 and every payload it receives is checked; what
//! fails the check, or has a version outside the window, is counted and logged (at most once a
//! minute per reason), never delivered.
//!
//! On a Redis Cluster ([`Topology::Cluster`]) rooms are hashed into [`PARTITIONS`] sharded
//! channels instead (`SPUBLISH`/`SSUBSCRIBE`, one slot each), whose subscriptions the node keeps
//! across failovers itself, re-reading the rooms of a partition it got back from the store; see
//! `topology` and `shards`.
//!
//! [`RedisPresence`] is the cross-node presence (room members with a time to live, and the typing
//! throttle) on the same Redis; see its module for the keys and what a client sees while Redis
//! is down.

mod audience;
mod auth;
mod envelope;
mod fill;
mod held;
mod inbox;
mod link;
mod metrics_names;
mod on_resync;
mod order;
mod outbox;
mod presence;
mod publisher;
mod receive;
mod rejects;
mod resync;
mod rooms;
mod shards;
mod start;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use labchat_core::{
    BackplaneStatus, BroadcastError, Broadcaster, ChatStore, InboxListener, InboxNotice, RoomSink, SinkId,
};
use labchat_domain::{RequestId, RoomEvent, User};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub use crate::auth::{BackplaneSecrets, MIN_SECRET_BYTES};
pub use crate::envelope::{EnvelopeVersion, UnknownVersion};
use crate::link::LinkCmd;
pub use crate::order::{
    DEFAULT_MAX_AHEAD as DEFAULT_REORDER_MAX_PER_ROOM, DEFAULT_MAX_AHEAD_PER_NODE as DEFAULT_REORDER_MAX_PER_NODE,
};
pub use crate::outbox::OutboxBounds;
pub use crate::presence::{PresenceSettings, RedisPresence};
use crate::receive::LinkSide;
use crate::rooms::Shared;
use crate::topology::redacted;
pub use crate::topology::{PARTITIONS, Topology};

/// How many envelopes may wait for the publisher before new ones are dropped (and counted).
const PUBLISH_QUEUE: usize = 16_384;
/// How many commands (replays, link changes) may wait for the publisher.
const COMMAND_QUEUE: usize = 64;

/// How a node reaches Redis and paces its repairs. Its `Debug` form hides the URL's password.
#[derive(Clone)]
pub struct RedisSettings {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379/` (one server).
    pub url: String,
    /// One server (at `url`, the default) or a Redis Cluster (rooms on sharded channels).
    pub topology: Topology,
    /// Names this node in envelopes, logs and metrics; distinct for every node.
    pub node_id: String,
    /// How long a gap may wait for pub/sub before the store fills it (default 200 ms).
    pub gap_wait: Duration,
    /// How often each quiet subscribed room (no message heard for this long) is checked against
    /// the store's latest seq (default 5 s).
    pub check_interval: Duration,
    /// The longest each Redis command may take (default 2 s).
    pub op_timeout: Duration,
    /// The bounds of the outbox of envelopes waiting to be published (again).
    pub outbox: OutboxBounds,
    /// The most messages a room holds ahead of a gap (default 1,000); past it they are dropped
    /// and the room is re-read from the store.
    pub reorder_max_per_room: usize,
    /// The most messages the node holds ahead of gaps, all rooms together (default 10,000); past
    /// it the room whose message crossed it drops what it holds and is re-read from the store.
    pub reorder_max_per_node: usize,
    /// The envelope version this node writes (default: the previous release's, which every node
    /// of a rolling upgrade reads). Version 3 needs a secret.
    pub envelope_version: EnvelopeVersion,
    /// The shared secrets that seal and check what nodes publish (default: none, nothing is
    /// authenticated). A node that writes version 3 accepts only sealed payloads.
    pub secrets: BackplaneSecrets,
    /// How long a room's creator, once read, routes its inbox notices to its teacher's channel
    /// (version 3) before it is read again, so that a reassigned request reaches its new teacher
    /// (default 60 s, `labchat_core::DEFAULT_ACCESS_TTL`; the app sets its access re-check
    /// interval, the lifetime the use cases give a request lookup).
    pub creator_ttl: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redacted(&self.url))
            .field("topology", &self.topology)
            .field("node_id", &self.node_id)
            .field("gap_wait", &self.gap_wait)
            .field("check_interval", &self.check_interval)
            .field("op_timeout", &self.op_timeout)
            .field("outbox", &self.outbox)
            .field("reorder_max_per_room", &self.reorder_max_per_room)
            .field("reorder_max_per_node", &self.reorder_max_per_node)
            .field("envelope_version", &self.envelope_version)
            .field("secrets", &self.secrets)
            .field("creator_ttl", &self.creator_ttl)
            .finish()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".to_owned(),
            topology: Topology::Single,
            node_id: "labchat".to_owned(),
            gap_wait: Duration::from_millis(200),
            check_interval: Duration::from_secs(5),
            op_timeout: Duration::from_secs(2),
            outbox: OutboxBounds::default(),
            reorder_max_per_room: order::DEFAULT_MAX_AHEAD,
            reorder_max_per_node: order::DEFAULT_MAX_AHEAD_PER_NODE,
            envelope_version: EnvelopeVersion::default(),
            secrets: BackplaneSecrets::default(),
            creator_ttl: labchat_core::DEFAULT_ACCESS_TTL,
        }
    }
}

/// The cross-node [`Broadcaster`]; see the crate's documentation.
pub struct RedisBroadcaster {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RedisBroadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroadcaster")
            .field("node_id", &self.shared.node_id)
            .field("rooms", &self.shared.all_rooms().len())
            .field("backplane", &self.shared.status())
            .finish()
    }
}

impl RedisBroadcaster {
    /// Starts the node's subscriber task and returns at once: Redis being down is not an error
    /// (the node is degraded until Redis is reachable); a malformed URL is, and so are secrets
    /// shorter than [`MIN_SECRET_BYTES`], a previous secret without a current one, version 3
    /// without a secret, and calling it outside a tokio runtime.
    pub fn start(settings: RedisSettings, store: Arc<dyn ChatStore>) -> Result<Arc<Self>, BroadcastError> {
        let invalid = |e: redis::RedisError| BroadcastError(format!("invalid redis url: {e}"));
        let connector = topology::Connector::new(&settings.url, &settings.topology).map_err(invalid)?;
        // The link's SUBSCRIBE connection: the server, or any node of the cluster in turn.
        let link_urls = match &settings.topology {
            Topology::Single => vec![settings.url.clone()],
            Topology::Cluster { nodes } if nodes.is_empty() => {
                return Err(BroadcastError("a redis cluster needs the URL of at least one node".to_owned()));
            }
            Topology::Cluster { nodes } => nodes.clone(),
        };
        let link_clients = link_urls
            .iter()
            .map(|u| redis::Client::open(u.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let shards_client = match &settings.topology {
            Topology::Single => None,
            Topology::Cluster { nodes } => Some(shards::client(nodes.clone(), settings.op_timeout).map_err(invalid)?),
        };
        let version = settings.envelope_version;
        if version.is_authenticated() && settings.secrets.current.is_none() {
            return Err(BroadcastError(format!("envelope version {} needs a backplane secret", version.get())));
        }
        let keys = auth::Keys::new(&settings.secrets, version.is_authenticated())
            .map_err(|e| BroadcastError(e.to_string()))?;
        if !keys.seals() {
            tracing::warn!(
                node = %settings.node_id,
                "no backplane secret: envelopes between nodes are not authenticated (see docs/security.md)"
            );
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| BroadcastError(format!("the redis broadcaster needs a tokio runtime: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let router = audience::Router {
            node: settings.node_id.clone(),
            store: Arc::clone(&store),
            creator_ttl: settings.creator_ttl,
            op_timeout: settings.op_timeout,
            out: out_tx.clone(),
        };
        let mut shared =
            Shared::new(settings.node_id, store, settings.gap_wait, settings.op_timeout, link_tx, out_tx, cmd_tx);
        shared.max_ahead = settings.reorder_max_per_room.max(1);
        shared.held = held::HeldCount::new(shared.node_id.clone(), settings.reorder_max_per_node);
        shared.version = version;
        shared.keys = keys.clone();
        shared.topology = settings.topology.clone();
        let (shards_tx, shards_rx) = mpsc::unbounded_channel();
        if settings.topology.is_cluster() {
            shared.shards = Some(shards_tx);
        }
        let (route_tx, route_rx) = mpsc::channel(audience::QUEUE);
        if version.is_authenticated() {
            shared.routes = Some(route_tx);
        }
        let shared = Arc::new(shared);
        let handler = Arc::new(LinkSide(Arc::clone(&shared)));
        let span = tracing::info_span!("redis_backplane", node = %shared.node_id);
        if let Some(client) = shards_client {
            let shards = shards::run(client, handler.clone(), shards_rx, stopped.clone(), settings.op_timeout);
            runtime.spawn(shards.instrument(span.clone()));
        }
        let link =
            link::run(link_clients, handler, link_rx, stopped.clone(), settings.op_timeout, settings.check_interval);
        runtime.spawn(link.instrument(span.clone()));
        let inputs = publisher::Inputs { rx: out_rx, commands: cmd_rx, stop: stopped.clone() };
        let publisher =
            publisher::run(shared.node_id.clone(), connector, inputs, settings.op_timeout, settings.outbox, keys);
        runtime.spawn(publisher.instrument(span.clone()));
        if version.is_authenticated() {
            runtime.spawn(audience::route(router, route_rx).instrument(span.clone()));
        }
        runtime.spawn(Arc::clone(&shared).check_quiet_rooms(settings.check_interval, stopped).instrument(span));
        Ok(Arc::new(Self { shared, stop }))
    }

    /// Stops the background tasks (idempotent). Local delivery keeps working; nothing more is
    /// sent to or received from Redis.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for RedisBroadcaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[async_trait]
impl Broadcaster for RedisBroadcaster {
    async fn subscribe(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Result<(), BroadcastError> {
        let sink_id = sink.id();
        let entry = self.shared.subscribe_sink(room, sink);
        if let Err(e) = self.shared.start_room(&entry).await {
            self.shared.unsubscribe_sink(room, sink_id);
            return Err(e);
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: RequestId, sink: SinkId) -> Result<(), BroadcastError> {
        self.shared.unsubscribe_sink(room, sink);
        Ok(())
    }

    async fn publish(&self, event: RoomEvent) -> Result<(), BroadcastError> {
        self.shared.publish(event);
        Ok(())
    }

    fn backplane(&self) -> Option<BackplaneStatus> {
        Some(self.shared.status())
    }

    fn listen_inbox(&self, listener: Arc<dyn InboxListener>) {
        self.shared.inbox.listen(listener);
    }

    fn notify_inbox(&self, notice: InboxNotice) {
        self.shared.notify_inbox(notice);
    }

    /// Returns once Redis confirmed the subscriptions it made (at most the command timeout; while
    /// the link is down they are made at the next connection, before it is marked up).
    async fn inbox_interest(&self, user: &User, interested: bool) {
        let (link, connected) = (&self.shared.link, self.shared.status().connected);
        let mut acks = Vec::new();
        let mut ack = || {
            connected.then(|| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                acks.push(rx);
                tx
            })
        };
        self.shared.interest.count(user, interested, |(subscribe, pattern, name)| {
            let _ = link.send(match (subscribe, pattern) {
                (true, false) => LinkCmd::Subscribe(name, ack()),
                (false, false) => LinkCmd::Unsubscribe(name),
                (true, true) => LinkCmd::PSubscribe(name, ack()),
                (false, true) => LinkCmd::PUnsubscribe(name),
            });
        });
        let _ = tokio::time::timeout(self.shared.op_timeout, futures_util::future::join_all(acks)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_of_the_settings_hides_the_password() {
        let s = RedisSettings { url: "redis://user:s3cret@cache:6379/0".to_owned(), ..RedisSettings::default() };
        let shown = format!("{s:?}");
        assert!(shown.contains("redis://***@cache:6379/0") && !shown.contains("s3cret"), "{shown}");
        assert_eq!(redacted("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
