//! The connection's socket, one poll at a time: pending writes and the next read together (so a
//! peer that stops reading never suspends the connection's other duties), continuation frames
//! charged to the rate limit, and what a read error means for the connection.

use std::task::{Context, Poll};

use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use crate::close::{self, End};
use crate::metered::Metered;
use crate::outbound::{ConnSink, Writing};
use crate::rate_limit::{Decision, RateLimits, TokenBucket};

/// An upgraded connection's websocket, its bytes counted.
pub(crate) type Ws = WebSocketStream<Metered<TokioIo<hyper::upgrade::Upgraded>>>;

/// What one poll of the socket uses, borrowed from the connection.
pub(crate) struct IoState<'a> {
    pub(crate) writing: &'a mut Writing,
    pub(crate) sink: &'a ConnSink,
    pub(crate) rate: &'a mut TokenBucket,
    pub(crate) limits: RateLimits,
    pub(crate) continuations: &'a mut u64,
}

/// Writes what the peer takes (see [`Writing::poll_write`]), then reads one message.
/// Continuation frames, which the websocket library folds into messages, are charged to
/// the rate limit as they arrive: an endless message of empty fragments is a flood too.
/// Keeps no state of its own, so it may be dropped at any point.
pub(crate) fn poll_io(
    cx: &mut Context<'_>,
    ws: &mut Ws,
    io: IoState<'_>,
) -> Poll<Result<Result<WsMessage, WsError>, End>> {
    if io.writing.poll_write(cx, ws, io.sink).is_err() {
        return Poll::Ready(Err(End::Gone));
    }
    let read = ws.poll_next_unpin(cx);
    let seen = ws.get_ref().continuation_frames();
    let now = Instant::now();
    while *io.continuations < seen {
        *io.continuations += 1;
        if io.rate.admit(now, io.limits) == Decision::Close {
            return Poll::Ready(Err(End::Close(close::POLICY, "rate limit exceeded for too long")));
        }
    }
    read.map(|msg| msg.ok_or(End::Gone))
}

/// How a read error ends the connection.
pub(crate) fn read_error(conn: u64, e: WsError) -> End {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => End::Gone,
        WsError::Capacity(_) => End::Close(close::TOO_BIG, "frame too large"),
        WsError::Utf8(_) => End::Close(close::INVALID_DATA, "invalid UTF-8 in a text frame"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        WsError::Protocol(p) => {
            tracing::debug!(conn, error = %p, "websocket protocol error");
            End::Close(close::PROTOCOL_ERROR, "websocket protocol error")
        }
        e => {
            tracing::debug!(conn, error = %e, "websocket read failed");
            End::Gone
        }
    }
}
