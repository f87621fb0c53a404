//! The broadcast port: [`Broadcaster`] fans a room's events out to its subscribers ([`RoomSink`]),
//! on this node and, through a backplane, on the others.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use labchat_domain::{RequestId, RoomEvent, User};

use crate::{InboxListener, InboxNotice};

/// Identifies one subscriber (one websocket connection) for as long as it lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SinkId(pub u64);

/// A room event on its way to subscribers, shared by all of them.
///
/// It carries a one-time slot for the event's encoded form, so that a transport serializes each
/// broadcast once and hands the same bytes to every receiver ([`Published::encoded`]).
#[derive(Debug)]
pub struct Published {
    event: RoomEvent,
    encoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Published {
    /// Wraps an event for delivery.
    pub fn new(event: RoomEvent) -> Arc<Self> {
        Arc::new(Self { event, encoded: OnceLock::new() })
    }

    /// The event.
    pub fn event(&self) -> &RoomEvent {
        &self.event
    }

    /// The event encoded by `encode`, computed by the first caller and shared with every later
    /// one. A transport always uses the same `T`; a caller asking for another type gets its own
    /// fresh encoding.
    pub fn encoded<T: Clone + Send + Sync + 'static>(&self, encode: impl Fn(&RoomEvent) -> T) -> T {
        let slot = self.encoded.get_or_init(|| Box::new(encode(&self.event)));
        match slot.downcast_ref::<T>() {
            Some(v) => v.clone(),
            None => encode(&self.event),
        }
    }
}

/// One subscriber's inbox for room events (implemented by the transport for a connection).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RoomSink: Send + Sync + 'static {
    /// The subscriber's id; stable for the sink's life.
    fn id(&self) -> SinkId;

    /// Queues the event for the subscriber. Must not block: a subscriber that cannot keep up
    /// deals with it itself (the websocket transport closes such a connection).
    fn deliver(&self, event: Arc<Published>);
}

/// The state of a cross-node backplane (see [`Broadcaster::backplane`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BackplaneStatus {
    /// Whether the backplane is reachable and this node is subscribed to its rooms there: events
    /// posted on other nodes arrive live. While it is not, the node still serves its own
    /// clients, stores every post and delivers it to its own members.
    pub connected: bool,
    /// For operators: what is wrong (the last error), or what it is connected to.
    pub detail: String,
}

/// The broadcaster could not reach its backend.
#[derive(Debug, thiserror::Error)]
#[error("broadcast failed: {0}")]
pub struct BroadcastError(pub String);

/// Who hears a room's events.
///
/// The in-process implementation keeps subscribers in memory; a cross-node implementation
/// publishes to a pub/sub topic per room and delivers to the sinks subscribed on its own node.
/// Either way the contract is the same.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Broadcaster: Send + Sync + 'static {
    /// Subscribes `sink` to the room. Subscribing twice is the same as once.
    async fn subscribe(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Result<(), BroadcastError>;

    /// Unsubscribes the sink from the room; unknown sinks and rooms are ignored. No event
    /// published after this returns reaches the sink through this room.
    async fn unsubscribe(&self, room: RequestId, sink: SinkId) -> Result<(), BroadcastError>;

    /// Delivers the event to every sink subscribed to its room, including the sender's own.
    /// All subscribers of a room get the room's events in one same order: the order of the
    /// `publish` calls for that room.
    async fn publish(&self, event: RoomEvent) -> Result<(), BroadcastError>;

    /// Registers where inbox notices go (the node's [`crate::InboxHub`]): the notice of every
    /// event published through this broadcaster that changes inbox rows
    /// ([`crate::InboxNotice::of`]: a posted message, messages read), whichever room it is in and
    /// whoever joined it, and, for a cross-node broadcaster, those of every other node. Each
    /// notice reaches the listener once, after its event was stored, and a node's notices in the
    /// order of their `publish` calls. The default registers nothing: no notice arrives (for a
    /// broadcaster without inbox support). A later call replaces the listener.
    fn listen_inbox(&self, _listener: Arc<dyn InboxListener>) {}

    /// Hands `notice` to the inbox listener of this node and, for a cross-node broadcaster, of
    /// every other node, as the notice of a published event is: for inbox rows that changed
    /// without an event (a recount made a count exact again), so that every connection of the
    /// users concerned, on any node, is told. Never waits; a notice that cannot be sent is
    /// counted and dropped (a lost notice delays an update, never makes one wrong: the listeners
    /// read the rows themselves). The default does nothing, as for a broadcaster without inbox
    /// support ([`Broadcaster::listen_inbox`]).
    fn notify_inbox(&self, _notice: InboxNotice) {}

    /// `user` now has a subscribed inbox on this node (`true`, their first) or no longer has one
    /// (`false`, their last gone). A cross-node broadcaster may use it to receive only the inbox
    /// notices of rooms some local subscriber may see; it must then hand the listener the
    /// notices of every room `user` may see from the time this returns while they are
    /// interested. The default ignores it.
    async fn inbox_interest(&self, _user: &User, _interested: bool) {}

    /// The state of the backplane that carries events between nodes, or `None` for a
    /// broadcaster that serves one node only.
    fn backplane(&self) -> Option<BackplaneStatus> {
        None
    }
}
