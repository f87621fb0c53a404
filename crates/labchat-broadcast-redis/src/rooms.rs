//! The node's rooms: local sinks per room, each room's [`RoomOrder`], and the glue between the
//! broadcaster's calls, the link's payloads and the store's fills.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use labchat_core::{BackplaneStatus, ChatStore, InboxNotice, Published, RoomSink, SinkId};
use labchat_domain::{RequestId, RoomEvent};
use tokio::sync::{mpsc, oneshot};

use crate::audience::{Interest, Pending};
use crate::auth::Keys;
use crate::envelope;
use crate::envelope::EnvelopeVersion;
use crate::held::HeldCount;
use crate::inbox::{self, Relay};
use crate::link::LinkCmd;
use crate::metrics_names::{CONNECTED, REORDER_OVERFLOWS};
use crate::order::{Fill, RoomOrder, Step};
use crate::outbox::Keep;
use crate::publisher::{self, Command, Outgoing};
use crate::rejects::Rejects;
use crate::resync::{self, Ask};
use crate::shards::ShardCmd;
use crate::topology::Topology;

/// One room with local sinks.
pub(crate) struct Room {
    pub(crate) id: RequestId,
    pub(crate) state: Mutex<RoomState>,
    /// Held while the room's starting point is read (see [`Start`]).
    pub(crate) start: tokio::sync::Mutex<Start>,
}

/// A room's start (`start.rs`): whether its starting point is known and, until it is, the
/// confirmation of its subscription that the node still awaits (`None` once confirmed, or when
/// the link was down: the reconnection subscribes the room and fills it). The confirmation stays
/// with the room until a start succeeds, so a start that failed (the store did not answer) does
/// not lose it for the next one.
pub(crate) struct Start {
    pub(crate) started: bool,
    pub(crate) ack: Option<oneshot::Receiver<()>>,
    /// The confirmation did not come within a start's wait.
    pub(crate) late: bool,
}

impl Start {
    /// A room not started yet, its subscription confirmed through `ack`.
    pub(crate) fn awaiting(ack: Option<oneshot::Receiver<()>>) -> Self {
        Self { started: false, ack, late: false }
    }
}

/// A room's mutable state; events are delivered while it is locked, so every sink sees the
/// room's events in one order.
pub(crate) struct RoomState {
    sinks: Vec<Arc<dyn RoomSink>>,
    pub(crate) order: RoomOrder,
    /// A fill is running; `again`: another was asked meanwhile.
    pub(crate) filling: bool,
    pub(crate) again: bool,
    /// A gap timer is armed.
    pub(crate) timer: bool,
    /// Fills in a row that failed (the store did not answer): the gap timer waits longer after
    /// each, so a store that is overloaded is not asked again every gap wait.
    pub(crate) failed_fills: u32,
    /// When a message of the room last reached this node (published here or received).
    pub(crate) heard: Option<Instant>,
    /// The messages of `order` held ahead of a gap, as last counted in the node's [`HeldCount`].
    pub(crate) counted: usize,
}

impl Room {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RoomState {
    /// Hands each event to every sink, in order (sinks only enqueue).
    pub(crate) fn deliver(&self, events: Vec<RoomEvent>) {
        for event in events {
            let name = event.kind().as_str();
            let published = Published::new(event);
            for sink in &self.sinks {
                sink.deliver(Arc::clone(&published));
            }
            metrics::counter!("labchat_frames_out_total", "event" => name).increment(self.sinks.len() as u64);
        }
    }
}

/// A node's subscriptions: the link's (ordinary channels; all on one server) or the shards'.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    Link,
    Shards,
}

/// Since when the subscriptions are incomplete (`None`: complete, or never yet), and which.
#[derive(Debug, Default)]
pub(crate) struct Away {
    since: Option<Instant>,
    link_down: bool,
    shards_down: bool,
}

/// Everything the broadcaster's tasks share.
pub(crate) struct Shared {
    pub(crate) node_id: String,
    pub(crate) store: Arc<dyn ChatStore>,
    pub(crate) gap_wait: Duration,
    pub(crate) op_timeout: Duration,
    /// The most messages a room holds ahead of a gap.
    pub(crate) max_ahead: usize,
    /// The messages held ahead of gaps on this node, and their bound.
    pub(crate) held: HeldCount,
    rooms: Mutex<HashMap<RequestId, Arc<Room>>>,
    pub(crate) link: mpsc::UnboundedSender<LinkCmd>,
    outgoing: mpsc::Sender<Outgoing>,
    commands: mpsc::Sender<Command>,
    pub(crate) status: Mutex<BackplaneStatus>,
    /// Since when this node's subscriptions are incomplete, after they had been complete.
    away_since: Mutex<Away>,
    /// Where inbox notices go on this node.
    pub(crate) inbox: Relay,
    /// The audience channels this node's inbox subscribers want.
    pub(crate) interest: Interest,
    /// Where this node's inbox notices wait for their audiences (`None`: they go to
    /// `labchat:inbox`, as a node writing version 2 publishes them).
    pub(crate) routes: Option<mpsc::Sender<Pending>>,
    /// The envelope version this node writes.
    pub(crate) version: EnvelopeVersion,
    /// The backplane secrets and whether unsealed payloads are accepted.
    pub(crate) keys: Keys,
    /// What this node refuses from Redis, counted and logged.
    pub(crate) rejects: Rejects,
    /// One server or a cluster: names the rooms' channels.
    pub(crate) topology: Topology,
    /// On a cluster, where the rooms' partition channels are subscribed (`None`: on the link).
    pub(crate) shards: Option<mpsc::UnboundedSender<ShardCmd>>,
}

impl Shared {
    pub(crate) fn new(
        node_id: String,
        store: Arc<dyn ChatStore>,
        gap_wait: Duration,
        op_timeout: Duration,
        link: mpsc::UnboundedSender<LinkCmd>,
        outgoing: mpsc::Sender<Outgoing>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        metrics::gauge!(CONNECTED, "node" => node_id.clone()).set(0.0);
        Self {
            rejects: Rejects::new(node_id.clone()),
            held: HeldCount::new(node_id.clone(), crate::order::DEFAULT_MAX_AHEAD_PER_NODE),
            version: EnvelopeVersion::default(),
            keys: Keys::none(),
            node_id,
            store,
            gap_wait,
            op_timeout,
            max_ahead: crate::order::DEFAULT_MAX_AHEAD,
            rooms: Mutex::default(),
            link,
            outgoing,
            commands,
            away_since: Mutex::new(Away::default()),
            status: Mutex::new(BackplaneStatus { connected: false, detail: "connecting to redis".to_owned() }),
            inbox: Relay::default(),
            interest: Interest::default(),
            routes: None,
            topology: Topology::Single,
            shards: None,
        }
    }

    pub(crate) fn rooms(&self) -> MutexGuard<'_, HashMap<RequestId, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every room with local sinks.
    pub(crate) fn all_rooms(&self) -> Vec<Arc<Room>> {
        self.rooms().values().cloned().collect()
    }

    pub(crate) fn room(&self, id: RequestId) -> Option<Arc<Room>> {
        self.rooms().get(&id).cloned()
    }

    pub(crate) fn status(&self) -> BackplaneStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn subscribe_sink(&self, id: RequestId, sink: Arc<dyn RoomSink>) -> Arc<Room> {
        let mut rooms = self.rooms();
        let room = rooms
            .entry(id)
            .or_insert_with(|| {
                // Wait for the server's confirmation only when the link is up; while it is down
                // the room is subscribed at the next connection.
                let (tx, ack) = if self.status().connected {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let channel = self.topology.room_channel(id);
                let _ = match &self.shards {
                    Some(shards) => shards.send(ShardCmd::Subscribe(channel, tx)).is_ok(),
                    None => self.link.send(LinkCmd::Subscribe(channel, tx)).is_ok(),
                };
                Arc::new(Room {
                    id,
                    state: Mutex::new(RoomState {
                        sinks: Vec::new(),
                        order: RoomOrder::with_max_ahead(self.max_ahead),
                        filling: false,
                        again: false,
                        timer: false,
                        failed_fills: 0,
                        heard: None,
                        counted: 0,
                    }),
                    start: tokio::sync::Mutex::new(Start::awaiting(ack)),
                })
            })
            .clone();
        let mut state = room.lock();
        if !state.sinks.iter().any(|s| s.id() == sink.id()) {
            state.sinks.push(sink);
        }
        drop(state);
        room
    }

    pub(crate) fn unsubscribe_sink(&self, id: RequestId, sink: SinkId) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get(&id) else { return };
        let mut state = room.lock();
        state.sinks.retain(|s| s.id() != sink);
        if state.sinks.is_empty() {
            self.held.update(&mut state.counted, 0);
            drop(state);
            rooms.remove(&id);
            let channel = self.topology.room_channel(id);
            let _ = match &self.shards {
                Some(shards) => shards.send(ShardCmd::Unsubscribe(channel)).is_ok(),
                None => self.link.send(LinkCmd::Unsubscribe(channel)).is_ok(),
            };
        }
    }

    /// Orders one event of the room and delivers what it lets out.
    pub(crate) fn offer(self: &Arc<Self>, room: &Arc<Room>, event: RoomEvent) {
        let fill = {
            let mut state = room.lock();
            if matches!(event, RoomEvent::MessagePosted(_)) {
                state.heard = Some(Instant::now());
            }
            let Step { deliver, mut fill } = state.order.offer(event);
            state.deliver(deliver);
            let overflows = state.order.take_overflows();
            if overflows > 0 {
                self.overflowed(room, "room", overflows);
            }
            if self.count_held(&mut state) && state.order.drop_held() {
                self.count_held(&mut state);
                self.overflowed(room, "node", 1);
                fill = Fill::Now;
            }
            fill
        };
        self.follow_up(room, fill);
    }

    /// Brings the node's count of held messages up to date with the room's; returns whether the
    /// node holds more than its bound.
    pub(crate) fn count_held(&self, state: &mut RoomState) -> bool {
        let now = state.order.held();
        self.held.update(&mut state.counted, now)
    }

    /// Counts and logs a reorder buffer dropped past its bound (`room` or `node`).
    fn overflowed(&self, room: &Room, bound: &'static str, times: u64) {
        metrics::counter!(REORDER_OVERFLOWS, "node" => self.node_id.clone(), "bound" => bound).increment(times);
        tracing::warn!(node = %self.node_id, request_id = %room.id, bound, "reorder buffer full: dropped, re-reading the room from the store");
    }

    /// Acts on a step's [`Fill`]: arm the gap timer, or fill now.
    pub(crate) fn follow_up(self: &Arc<Self>, room: &Arc<Room>, fill: Fill) {
        match fill {
            Fill::No => {}
            Fill::AfterWait => self.arm_gap_timer(room),
            Fill::Now => {
                let (shared, room) = (Arc::clone(self), Arc::clone(room));
                tokio::spawn(async move { shared.fill(&room).await });
            }
        }
    }

    /// Delivers a locally published event, then queues its envelope for Redis.
    pub(crate) fn publish(self: &Arc<Self>, event: RoomEvent) {
        let started = Instant::now();
        let id = event.request_id();
        let keep = if matches!(event, RoomEvent::Typing { .. }) { Keep::Never } else { Keep::Always };
        let payload = envelope::encode(self.version, &self.node_id, &event);
        let notice = self.inbox.published(&self.node_id, &event);
        if let Some(room) = self.room(id) {
            self.offer(&room, event);
        }
        metrics::histogram!("labchat_broadcast_seconds").record(started.elapsed());
        if let Some(encoded) = notice {
            self.send_notice(id, encoded, keep);
        }
        match payload {
            Ok(payload) => {
                self.send(Outgoing { channel: self.topology.room_channel(id), payload, room: Some(id), keep })
            }
            Err(e) => publisher::dropped(&self.node_id, 1, &e.to_string()),
        }
    }

    /// Hands an inbox notice that no event carries to this node's listener, then queues it for
    /// the other nodes, as `publish` does an event's.
    pub(crate) fn notify_inbox(&self, notice: InboxNotice) {
        let room = notice.request_id();
        let payload = inbox::encode(&self.node_id, &notice);
        self.inbox.deliver(notice);
        self.send_notice(room, payload, Keep::Always);
    }

    /// Queues an encoded inbox notice of `room` for the other nodes: for its audience channel
    /// (version 3), or on `labchat:inbox`.
    fn send_notice(&self, room: RequestId, payload: Result<Vec<u8>, serde_json::Error>, keep: Keep) {
        match (payload, &self.routes) {
            (Ok(payload), Some(routes)) => {
                if let Err(e) = routes.try_send(Pending { room, payload, keep }) {
                    publisher::dropped(&self.node_id, 1, &format!("inbox notice queue: {e}"));
                }
            }
            (Ok(payload), None) => {
                self.send(Outgoing { channel: inbox::CHANNEL.to_owned(), payload, room: Some(room), keep })
            }
            (Err(e), _) => publisher::dropped(&self.node_id, 1, &e.to_string()),
        }
    }

    /// Hands an envelope to the publisher (never waits).
    fn send(&self, out: Outgoing) {
        if let Err(e) = self.outgoing.try_send(out) {
            publisher::dropped(&self.node_id, 1, &format!("publish queue: {e}"));
        }
    }

    /// A subscriber (this node's or another's) was away for `away`: publish again what was
    /// published meanwhile. Asks beyond the command queue's room are dropped (one is enough).
    pub(crate) fn replay(&self, away: std::time::Duration) {
        let _ = self.commands.try_send(Command::Replay(away));
    }

    /// A subscription went up or down: tell the publisher (the link's), and once every one is
    /// back announce it to the other nodes so that they publish again what this node may have
    /// missed since the first went down.
    pub(crate) fn link_changed(&self, side: Side, connected: bool) {
        let mut away = self.away_since.lock().unwrap_or_else(|p| p.into_inner());
        match side {
            Side::Link => away.link_down = !connected,
            Side::Shards => away.shards_down = !connected,
        }
        if !connected {
            away.since.get_or_insert_with(Instant::now);
            if let Side::Link = side {
                let _ = self.commands.try_send(Command::LinkDown);
            }
            return;
        }
        if away.link_down || away.shards_down {
            return;
        }
        let Some(since) = away.since.take() else { return };
        drop(away);
        let gone = since.elapsed();
        self.replay(gone);
        match resync::encode(&self.node_id, &Ask::Back(gone)) {
            Ok(payload) => {
                self.send(Outgoing { channel: inbox::CHANNEL.to_owned(), payload, room: None, keep: Keep::UntilSent })
            }
            Err(e) => publisher::dropped(&self.node_id, 1, &e.to_string()),
        }
    }
}
