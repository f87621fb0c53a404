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

/// The body of the `503` a socket gets when too many connections are pending.
const PENDING_REFUSAL_BODY: &str = r#"{"code":"UNAVAILABLE","message":"too many pending connections; retry later"}"#;
/// The head of that `503`, up to the value of its `content-length`.
const PENDING_REFUSAL_HEAD: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: ";
/// The whole `503`: head, the body's length (computed, in decimal), blank line, body; written
/// only if the socket takes it at once, since the point is to spend nothing on it.
const PENDING_REFUSAL: [u8; response_len(PENDING_REFUSAL_HEAD, PENDING_REFUSAL_BODY)] =
    response(PENDING_REFUSAL_HEAD, PENDING_REFUSAL_BODY);

/// How many decimal digits `n` takes.
const fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// The length of `head`, the decimal length of `body`, `\r\n\r\n` and `body`.
const fn response_len(head: &str, body: &str) -> usize {
    head.len() + decimal_digits(body.len()) + 4 + body.len()
}

/// `head`, the decimal length of `body`, `\r\n\r\n` and `body`, at compile time.
const fn response<const N: usize>(head: &str, body: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    at = put(&mut out, at, head.as_bytes());
    let digits = decimal_digits(body.len());
    let mut rest = body.len();
    let mut i = digits;
    while i > 0 {
        i -= 1;
        out[at + i] = b"0123456789"[rest % 10];
        rest /= 10;
    }
    at += digits;
    at = put(&mut out, at, b"\r\n\r\n");
    at = put(&mut out, at, body.as_bytes());
    assert!(at == N, "the response length is response_len(head, body)");
    out
}

/// Copies `bytes` into `out` from `at`; returns the position after them.
const fn put<const N: usize>(out: &mut [u8; N], mut at: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        out[at] = bytes[i];
        at += 1;
        i += 1;
    }
    at
}

fn refuse_pending(stream: TcpStream, addr: SocketAddr, port: Port) {
    reject("pending_limit");
    tracing::debug!(peer = %addr, listener = port.name(), "too many pending connections; socket refused");
    let _ = stream.try_write(&PENDING_REFUSAL);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_refusal_declares_the_length_of_its_body() {
        let expected = format!("{PENDING_REFUSAL_HEAD}{}\r\n\r\n{PENDING_REFUSAL_BODY}", PENDING_REFUSAL_BODY.len());
        assert_eq!(std::str::from_utf8(&PENDING_REFUSAL), Ok(expected.as_str()));
    }

    #[test]
    fn decimal_digits_counts_digits() {
        for (n, d) in [(0, 1), (9, 1), (10, 2), (76, 2), (99, 2), (100, 3), (12_345, 5)] {
            assert_eq!(decimal_digits(n), d, "{n}");
        }
    }
}
