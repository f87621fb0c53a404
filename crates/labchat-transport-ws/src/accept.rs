//! The accept loop of one listener, with its back-off on accept errors; a socket past the
//! listener's [`Gate`] is refused at once with a fixed `503`, the others are served by
//! [`crate::routes`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{Peer, Port, Server};
use crate::gate::Gate;
use crate::http::reject;
use crate::routes::serve_http;

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
