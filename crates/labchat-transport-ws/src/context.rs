//! What the transport's layers share: the [`Server`] (the use cases, the authenticator, the
//! configuration, the clock, the live counters, the metrics renderer and the lifecycle), and
//! what every request of one HTTP connection carries ([`Peer`], with the [`Port`] it came in on).
//! It imports none of the loops that use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use labchat_core::{Chat, Clock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::WsConfig;
use crate::drain::Lifecycle;

/// Live counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub(crate) open_connections: AtomicUsize,
    pending_connections: Arc<AtomicUsize>,
    pub(crate) next_connection: AtomicU64,
}

impl ServerStats {
    /// Open websocket connections.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Connections accepted on the chat listener and not (yet) upgraded to a websocket.
    pub fn pending_connections(&self) -> usize {
        self.pending_connections.load(Ordering::Relaxed)
    }

    /// The chat listener's pending-connection count, for its gate.
    pub(crate) fn pending_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.pending_connections)
    }
}

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the transport needs to serve.
pub struct Server {
    chat: Arc<Chat>,
    auth: Authenticator,
    config: WsConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<ServerStats>,
    metrics: Option<MetricsRenderer>,
    lifecycle: Lifecycle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("chat", &self.chat)
            .field("auth", &self.auth)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Server {
    /// A server over these use cases, verifying tokens with `auth`; `clock` tells when tokens
    /// expire (give it the use cases' clock).
    pub fn new(chat: Arc<Chat>, auth: Authenticator, config: WsConfig, clock: Arc<dyn Clock>) -> Self {
        Self { chat, auth, config, clock, stats: Arc::default(), metrics: None, lifecycle: Lifecycle::default() }
    }

    /// Serves `GET /metrics` with this renderer.
    pub fn with_metrics(mut self, render: MetricsRenderer) -> Self {
        self.metrics = Some(render);
        self
    }

    /// The server's live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// The handle that asks this server for a drain and tells its phase.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    pub(crate) fn chat(&self) -> &Chat {
        &self.chat
    }

    pub(crate) fn auth(&self) -> &Authenticator {
        &self.auth
    }

    pub(crate) fn config(&self) -> &WsConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The metrics renderer, when `/metrics` is served.
    pub(crate) fn metrics(&self) -> Option<&MetricsRenderer> {
        self.metrics.as_ref()
    }
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    /// Everything: websocket upgrades, the demo page, probes and `/metrics`.
    Chat,
    /// As `Chat`, without `/metrics` (served by the operations listener).
    ChatOnly,
    /// The operations listener: probes and `/metrics` only.
    Ops,
}

impl Port {
    /// The listener's name in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Chat | Self::ChatOnly => "chat",
            Self::Ops => "ops",
        }
    }
}

/// What every request of one HTTP connection needs.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// The listener it came in on.
    pub(crate) port: Port,
    pub(crate) server: Arc<Server>,
    /// Cancelled at shutdown.
    pub(crate) cancel: CancellationToken,
    /// Tracks websocket connections, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
}
