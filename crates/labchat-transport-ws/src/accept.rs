//! The edge before the websocket upgrade: the accept loop (with its back-off on accept errors)
//! and the gate that caps the connections of a listener not yet upgraded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::{Peer, Server, reject, serve_http};

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
    fn name(self) -> &'static str {
        match self {
            Self::Chat | Self::ChatOnly => "chat",
            Self::Ops => "ops",
        }
    }
}

/// The first pause after a failed accept; each further failure doubles it.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause after a failed accept.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts on `listener` until dropped. Accept errors (out of file descriptors, mostly) pause
/// the loop, doubling the pause up to [`ACCEPT_BACKOFF_MAX`]; one line is logged when failures
/// start and one when accepting works again, not one per failure.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    port: Port,
    mut gate: Gate,
    server: &Arc<Server>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    let mut backoff: Option<(Duration, u64)> = None;
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if let Some((_, failures)) = backoff.take() {
                    tracing::info!(listener = port.name(), failures, "accepting connections again");
                }
                let Some(pending) = gate.admit(port) else {
                    refuse_pending(stream, addr, port);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let peer =
                    Peer { addr, port, server: Arc::clone(server), cancel: cancel.clone(), tracker: tracker.clone() };
                tracker.spawn(serve_http(stream, peer, pending));
            }
            Err(e) => {
                metrics::counter!("labchat_accept_errors_total").increment(1);
                let (pause, failures) = match backoff {
                    None => {
                        tracing::warn!(
                            listener = port.name(),
                            error = %e,
                            max_pause_ms = ACCEPT_BACKOFF_MAX.as_millis(),
                            "accept failed; backing off until it works again"
                        );
                        (ACCEPT_BACKOFF_MIN, 1)
                    }
                    Some((pause, failures)) => ((pause * 2).min(ACCEPT_BACKOFF_MAX), failures + 1),
                };
                backoff = Some((pause, failures));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The `503` a socket gets when too many connections are pending; written only if the socket
/// takes it at once, since the point is to spend nothing on it.
const PENDING_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 77\r\n\r\n\
{\"code\":\"UNAVAILABLE\",\"message\":\"too many pending connections; retry later\"}";

fn refuse_pending(stream: TcpStream, addr: SocketAddr, port: Port) {
    reject("pending_limit");
    tracing::debug!(peer = %addr, listener = port.name(), "too many pending connections; socket refused");
    let _ = stream.try_write(PENDING_REFUSAL);
}

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
    fn admit(&mut self, port: Port) -> Option<PendingGuard> {
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
