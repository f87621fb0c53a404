//! One websocket connection's loop: reads frames and hands them to [`crate::dispatch`], writes
//! replies and room events from its outbound queue, pings, and enforces token expiry, the rate
//! limit and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use labchat_core::{Clock, SinkId};
use labchat_domain::{Timestamp, User};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::dispatch::{Outcome, Session};
use crate::outbound::ConnSink;
use crate::protocol::{self, ErrorCode, ErrorFrame};
use crate::rate_limit::{Decision, TokenBucket};
use crate::server::Server;

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Close codes the server uses (see docs/protocol.md).
pub(crate) mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const FORBIDDEN: u16 = 4003;
}

/// Why the connection loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer closed or vanished; nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// What the rate limit made of one incoming frame.
enum Admitted {
    /// Process the frame.
    Process,
    /// The frame was refused (and, for a data frame, answered with `RATE_LIMITED`).
    Refused,
    /// End the connection.
    Close(End),
}

pub(crate) struct Connection {
    peer: SocketAddr,
    server: Arc<Server>,
    sink: Arc<ConnSink>,
    session: Session,
    rate: TokenBucket,
    frames_in: u64,
    frames_out: u64,
}

/// The instant at which the wall-clock time `t` (by `clock`) comes.
fn instant_of(t: Timestamp, clock: &dyn Clock) -> Instant {
    let ahead = u64::try_from(t.unix_millis().saturating_sub(clock.now().unix_millis())).unwrap_or(0);
    Instant::now() + Duration::from_millis(ahead)
}

impl Connection {
    pub(crate) fn new(id: u64, principal: Principal, peer: SocketAddr, server: Arc<Server>) -> Self {
        let cfg = server.config();
        let sink = Arc::new(ConnSink::new(SinkId(id), cfg.outbound_max_frames, cfg.outbound_max_bytes));
        let rate = TokenBucket::new(cfg.rate_per_second, cfg.rate_burst, cfg.rate_close_after, Instant::now());
        let session = Session::new(principal, Arc::clone(&sink));
        Self { peer, server, sink, session, rate, frames_in: 0, frames_out: 0 }
    }

    fn id(&self) -> u64 {
        self.sink.sink_id().0
    }

    pub(crate) async fn run(&mut self, ws: Ws, cancel: CancellationToken) {
        let started = Instant::now();
        let user = self.session.principal.user.clone();
        tracing::info!(conn = self.id(), user_id = %user.id(), role = %user.role(), peer = %self.peer, "connection opened");
        let mut ws = ws;
        let end = self.serve(&mut ws, &cancel).await;
        Box::pin(self.finish(ws, end, started, user)).await;
    }

    async fn finish(&mut self, mut ws: Ws, end: End, started: Instant, user: User) {
        if let End::Close(code, reason) = end {
            // What was queued before the decision to close (such as the error frame that
            // explains it) goes first, except for a peer too slow to take it.
            if code != close::TRY_AGAIN_LATER {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.drain(&mut ws)).await;
            }
            // Best effort, bounded: a peer that does not read gets dropped.
            let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
        }
        let rooms = &mut self.session.rooms;
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("labchat_rooms_joined").decrement(rooms.len() as f64);
        self.server.chat().disconnect(self.sink.sink_id(), rooms.drain()).await;
        tracing::info!(
            conn = self.id(),
            user_id = %user.id(),
            role = %user.role(),
            peer = %self.peer,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            frames_in = self.frames_in,
            frames_out = self.frames_out,
            close_code = match end { End::Close(c, _) => c, End::Gone => 0 },
            "connection closed"
        );
    }

    fn expiry(&self) -> Instant {
        instant_of(self.session.principal.expires_at, self.server.clock())
    }

    async fn serve(&mut self, ws: &mut Ws, cancel: &CancellationToken) -> End {
        let ping_every = self.server.config().ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_seen = Instant::now();
        let expiry = tokio::time::sleep_until(self.expiry());
        tokio::pin!(expiry);
        let sink = Arc::clone(&self.sink);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    return End::Close(close::GOING_AWAY, "server shutting down");
                }
                () = sink.overflowed() => {
                    return End::Close(close::TRY_AGAIN_LATER, "outbound queue full: client too slow");
                }
                () = &mut expiry => {
                    self.expired();
                    return End::Close(close::TOKEN_EXPIRED, "token expired");
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() >= ping_every * 2 {
                        tracing::info!(conn = self.id(), "no answer for two ping intervals");
                        return End::Gone;
                    }
                    if Box::pin(ws.send(WsMessage::Ping(Default::default()))).await.is_err() {
                        return End::Gone;
                    }
                }
                frame = sink.take() => {
                    if let Err(end) = Box::pin(self.write(ws, frame)).await {
                        return end;
                    }
                }
                msg = ws.next() => {
                    last_seen = Instant::now();
                    match msg {
                        None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return End::Gone,
                        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                            return End::Close(close::TOO_BIG, "frame too large");
                        }
                        Some(Err(WsError::Capacity(_))) => return End::Close(close::TOO_BIG, "frame too large"),
                        Some(Err(e)) => {
                            tracing::debug!(conn = self.id(), error = %e, "websocket read failed");
                            return End::Gone;
                        }
                        Some(Ok(WsMessage::Close(_))) => return End::Gone,
                        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                        Some(Ok(WsMessage::Binary(_))) => {
                            self.frames_in += 1;
                            match self.admit(None) {
                                Admitted::Close(end) => return end,
                                Admitted::Refused => {}
                                Admitted::Process => self.sink.reply_error(&ErrorFrame {
                                    code: ErrorCode::BadRequest,
                                    message: "binary frames are not supported: send JSON text frames",
                                    event: None,
                                    request_id: None,
                                    id: None,
                                    retry_after_ms: None,
                                }),
                            }
                        }
                        Some(Ok(WsMessage::Text(text))) => {
                            self.frames_in += 1;
                            match self.admit(Some(text.as_str())) {
                                Admitted::Close(end) => return end,
                                Admitted::Refused => {}
                                // Boxed, like the other rare or brief paths: the connection's
                                // task is as large as its largest await point, for as long as
                                // the connection lives.
                                Admitted::Process => match Box::pin(self.session.handle(&self.server, text.as_str())).await {
                                    Outcome::Done => {}
                                    Outcome::ExpiryChanged => expiry.as_mut().reset(self.expiry()),
                                    Outcome::Close(end) => return end,
                                },
                            }
                        }
                    }
                }
            }
        }
    }

    /// Queues the `TOKEN_EXPIRED` error frame.
    fn expired(&self) {
        self.sink.reply_error(&ErrorFrame {
            code: ErrorCode::TokenExpired,
            message: "token expired; reconnect with a new token",
            event: None,
            request_id: None,
            id: None,
            retry_after_ms: None,
        });
    }

    /// Applies the rate limit to one incoming frame; a refused text frame is answered with
    /// `RATE_LIMITED`, naming the frame when it can be decoded.
    fn admit(&mut self, text: Option<&str>) -> Admitted {
        match self.rate.admit(Instant::now()) {
            Decision::Admit => Admitted::Process,
            Decision::Close => Admitted::Close(End::Close(close::POLICY, "rate limit exceeded for too long")),
            Decision::Refuse { retry_after_ms } => {
                // Decode only to tell the client which frame was refused.
                let decoded = text.map(|t| protocol::decode(t, &self.server.config().decode));
                let (event, request_id, id) = match &decoded {
                    Some(Ok(i)) => (Some(i.event.as_str()), i.command.request_id(), i.id.as_ref()),
                    Some(Err(bad)) => (bad.event.as_deref(), bad.request_id, bad.id.as_ref()),
                    None => (None, None, None),
                };
                self.sink.reply_error(&ErrorFrame {
                    code: ErrorCode::RateLimited,
                    message: "too many frames; this one was not processed",
                    event,
                    request_id,
                    id,
                    retry_after_ms: Some(retry_after_ms),
                });
                Admitted::Refused
            }
        }
    }

    /// Writes `first` and everything else already queued, then flushes once.
    async fn write(&mut self, ws: &mut Ws, first: Utf8Bytes) -> Result<(), End> {
        let sink = Arc::clone(&self.sink);
        let batch = async {
            let mut next = Some(first);
            while let Some(frame) = next.take() {
                self.frames_out += 1;
                ws.feed(WsMessage::Text(frame)).await?;
                next = sink.try_take();
            }
            ws.flush().await
        };
        tokio::select! {
            res = batch => res.map_err(|_| End::Gone),
            // A peer that stops reading blocks the write; the queue fills and we give up on it.
            () = sink.overflowed() => Err(End::Close(close::TRY_AGAIN_LATER, "outbound queue full: client too slow")),
        }
    }

    async fn drain(&mut self, ws: &mut Ws) {
        while let Some(frame) = self.sink.try_take() {
            if ws.feed(WsMessage::Text(frame)).await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
    }
}
