//! STUB of the Redis backplane: the agreed API, delivering to this node's sinks only (no Redis
//! at all). It exists so that the wiring compiles; the real crate replaces it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use labchat_core::{BackplaneStatus, BroadcastError, Broadcaster, ChatStore, RoomSink, SinkId};
use labchat_domain::{RequestId, RoomEvent};
use labchat_memory::LocalBroadcaster;

/// Settings of the Redis backplane.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://127.0.0.1:6379/`.
    pub url: String,
    /// Names this node in envelopes, logs and metrics.
    pub node_id: String,
    /// How long a gap may wait for pub/sub before the store fills it.
    pub gap_wait: Duration,
    /// Quiet-room check interval.
    pub check_interval: Duration,
    /// Time limit of each Redis command.
    pub op_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            node_id: "labchat".into(),
            gap_wait: Duration::from_millis(200),
            check_interval: Duration::from_secs(5),
            op_timeout: Duration::from_secs(2),
        }
    }
}

/// STUB: a broadcaster for this node alone that reports a disconnected backplane.
#[derive(Debug)]
pub struct RedisBroadcaster {
    local: LocalBroadcaster,
    settings: RedisSettings,
}

impl RedisBroadcaster {
    /// Returns at once; a malformed URL is an error.
    pub fn start(settings: RedisSettings, store: Arc<dyn ChatStore>) -> Result<Arc<Self>, BroadcastError> {
        let _ = store;
        if !["redis://", "rediss://", "unix://"].iter().any(|s| settings.url.starts_with(s)) {
            return Err(BroadcastError(format!("malformed Redis URL {:?}", settings.url)));
        }
        Ok(Arc::new(Self { local: LocalBroadcaster::new(), settings }))
    }

    /// Stops the background task (idempotent).
    pub fn shutdown(&self) {}
}

#[async_trait]
impl Broadcaster for RedisBroadcaster {
    async fn subscribe(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Result<(), BroadcastError> {
        self.local.subscribe(room, sink).await
    }

    async fn unsubscribe(&self, room: RequestId, sink: SinkId) -> Result<(), BroadcastError> {
        self.local.unsubscribe(room, sink).await
    }

    async fn publish(&self, event: RoomEvent) -> Result<(), BroadcastError> {
        self.local.publish(event).await
    }

    fn backplane(&self) -> Option<BackplaneStatus> {
        Some(BackplaneStatus {
            connected: false,
            detail: format!("stub backplane of node {}: no Redis", self.settings.node_id),
        })
    }
}
