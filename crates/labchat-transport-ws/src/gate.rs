//! The gate that caps the connections of a listener not yet upgraded to websockets: each
//! accepted socket holds a [`PendingGuard`] until it closes or becomes a websocket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::context::{Port, Server};

/// Counts the connections of one listener that are not (yet) websockets, up to a cap.
pub(crate) struct Gate {
    count: Arc<AtomicUsize>,
    cap: usize,
    /// Whether the count shows as `labchat_connections_pending` (the chat listener's does).
    metered: bool,
    /// When refusals were last logged, and how many sockets were refused since: at most one
    /// line per [`REFUSAL_LOG_EVERY`], not one per socket.
    last_logged: Option<Instant>,
    refused: u64,
}

/// How often refusals at the pending cap are logged, at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl Gate {
    pub(crate) fn new(port: Port, server: &Server) -> Self {
        let (count, metered) = match port {
            Port::Chat | Port::ChatOnly => (server.stats().pending_counter(), true),
            Port::Ops => (Arc::default(), false),
        };
        Self { count, cap: server.config().max_pending_connections, metered, last_logged: None, refused: 0 }
    }

    /// A guard for one more pending connection, or `None` at the cap.
    pub(crate) fn admit(&mut self, port: Port) -> Option<PendingGuard> {
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.refused += 1;
            if self.last_logged.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
                tracing::warn!(
                    listener = port.name(),
                    max_pending_connections = self.cap,
                    refused = self.refused,
                    "pending connection limit reached; refusing new sockets until some finish"
                );
                self.last_logged = Some(Instant::now());
                self.refused = 0;
            }
            return None;
        }
        if self.metered {
            metrics::gauge!("labchat_connections_pending").increment(1.0);
        }
        Some(PendingGuard { count: Arc::clone(&self.count), metered: self.metered })
    }
}

/// One pending connection, counted until dropped (when the connection closes or becomes a
/// websocket).
pub(crate) struct PendingGuard {
    count: Arc<AtomicUsize>,
    metered: bool,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.metered {
            metrics::gauge!("labchat_connections_pending").decrement(1.0);
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}
