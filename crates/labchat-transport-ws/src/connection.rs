//! One websocket connection's loop: reads frames and hands them to [`crate::dispatch`], writes
//! replies and room events from its outbound queue, pings, and enforces token expiry, the rate
//! limit, a write deadline and shutdown.
//!
//! Reading and writing are one arm of the loop's `select!`, polled together and never awaited
//! to completion inside an arm: a peer that stops reading leaves frames queued, but pings, the
//! expiry, shutdown and the write deadline are still served.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use labchat_core::{Clock, SinkId};
use labchat_domain::{Timestamp, User};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::close::{self, End};
use crate::context::Server;
use crate::outbound::{ConnSink, Writing};
use crate::protocol::{self, ErrorCode, ErrorFrame};
use crate::rate_limit::{Decision, TokenBucket};
use crate::session::{Outcome, Session};
use crate::socket::{self, IoState, Ws};
use crate::timers::{Deadlines, Periods};

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
    /// Continuation frames charged to the rate limit so far.
    continuations: u64,
    frames_in: u64,
    writing: Writing,
}

/// The instant at which the wall-clock time `t` (by `clock`) comes.
fn instant_of(t: Timestamp, clock: &dyn Clock) -> Instant {
    let ahead = u64::try_from(t.unix_millis().saturating_sub(clock.now().unix_millis())).unwrap_or(0);
    Instant::now() + Duration::from_millis(ahead)
}

impl Connection {
    pub(crate) fn new(id: u64, principal: Principal, peer: SocketAddr, server: Arc<Server>) -> Self {
        let cfg = server.config();
        let sink = Arc::new(
            ConnSink::new(SinkId(id), cfg.outbound_max_frames, cfg.outbound_max_bytes)
                .for_user(principal.user.id().clone()),
        );
        let rate = TokenBucket::new(cfg.rate_limits(), Instant::now());
        let session = Session::new(principal, Arc::clone(&sink));
        Self {
            peer,
            server,
            sink,
            session,
            rate,
            continuations: 0,
            frames_in: 0,
            writing: Writing::new(Instant::now()),
        }
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
        // Out of the rooms first: nothing more is queued for a connection that is closing.
        let rooms = &mut self.session.rooms;
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("labchat_rooms_joined").decrement(rooms.len() as f64);
        self.server.chat().disconnect(&user, self.sink.sink_id(), rooms.drain()).await;
        let grace = self.server.config().close_grace;
        close::count(end);
        match end {
            End::Close(code, reason) => Box::pin(self.close(&mut ws, code, reason, grace)).await,
            // Our reply to the client's close frame.
            End::PeerClosed => {
                let _ = tokio::time::timeout(grace, ws.flush()).await;
            }
            End::Gone => {}
        }
        tracing::info!(
            conn = self.id(),
            user_id = %user.id(),
            role = %user.role(),
            peer = %self.peer,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            frames_in = self.frames_in,
            frames_out = self.writing.frames_out,
            close_code = match end { End::Close(c, _) => c, End::Gone | End::PeerClosed => 0 },
            "connection closed"
        );
    }

    /// The server's side of the closing handshake, each step bounded by `grace`: what was
    /// queued before the decision to close (such as the error frame that explains it) goes
    /// first, except for a peer too slow to take it; then the close frame; then frames the
    /// client still sends are read and discarded until its close frame or EOF, so the socket
    /// is not dropped with unread data (which would reset the connection and lose the close).
    async fn close(&mut self, ws: &mut Ws, code: u16, reason: &'static str, grace: Duration) {
        if code != close::TRY_AGAIN_LATER && tokio::time::timeout(grace, self.drain(ws)).await.is_err() {
            return;
        }
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        if !matches!(tokio::time::timeout(grace, ws.close(Some(frame))).await, Ok(Ok(()))) {
            return;
        }
        let linger = async {
            while let Some(Ok(msg)) = ws.next().await {
                if let WsMessage::Close(_) = msg {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(grace, linger).await;
    }

    fn periods(&self) -> Periods {
        let cfg = self.server.config();
        Periods { ping: cfg.ping_interval, recheck: cfg.access_recheck_interval }
    }

    fn expiry(&self) -> Instant {
        instant_of(self.session.principal.expires_at, self.server.clock())
    }

    async fn serve(&mut self, ws: &mut Ws, cancel: &CancellationToken) -> End {
        // Nothing derivable from the configuration is kept across the loop's awaits: what the
        // loop holds, every idle connection holds.
        let mut deadlines = Deadlines::new(Instant::now(), self.periods(), self.expiry());
        let mut last_seen = Instant::now();
        // One timer for every deadline: most connections are idle, and each timer is memory.
        let timer = tokio::time::sleep_until(deadlines.next());
        tokio::pin!(timer);
        let sink = Arc::clone(&self.sink);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    let (code, reason) = self.server.lifecycle().close_frame();
                    return End::Close(code, reason);
                }
                () = sink.overflowed() => {
                    return End::Close(close::TRY_AGAIN_LATER, "outbound queue full: client too slow");
                }
                () = &mut timer => {
                    let now = Instant::now();
                    let due = deadlines.fire(now, self.periods());
                    let silent_for = self.periods().ping * 2;
                    if due.expired {
                        self.expired();
                        return End::Close(close::TOKEN_EXPIRED, "token expired");
                    }
                    if due.ping {
                        if now.saturating_duration_since(last_seen) >= silent_for {
                            tracing::info!(conn = self.id(), "no answer for two ping intervals");
                            return End::Gone;
                        }
                        if self.writing.stalled(ws.get_ref().written(), now, silent_for) {
                            tracing::info!(conn = self.id(), "the peer accepted no bytes for two ping intervals");
                            return End::Gone;
                        }
                        self.writing.ping_due = true;
                    }
                    if due.recheck {
                        Box::pin(self.session.recheck_access(&self.server)).await;
                    }
                    timer.as_mut().reset(deadlines.next());
                }
                io = poll_fn(|cx| socket::poll_io(cx, ws, IoState {
                    writing: &mut self.writing,
                    sink: &sink,
                    rate: &mut self.rate,
                    limits: self.server.config().rate_limits(),
                    continuations: &mut self.continuations,
                })) => {
                    let msg = match io {
                        Ok(msg) => msg,
                        Err(end) => return end,
                    };
                    last_seen = Instant::now();
                    let next = match msg {
                        Ok(msg) => match self.on_message(msg) {
                            Read::Done(next) => next,
                            // Boxed, like the other rare or brief paths: the connection's task
                            // is as large as its largest await point, for as long as the
                            // connection lives.
                            Read::Handle(text) => {
                                match Box::pin(self.session.handle(&self.server, text.as_str())).await {
                                    Outcome::Done => None,
                                    Outcome::Uncounted => {
                                        self.rate.refund(self.server.config().rate_limits());
                                        None
                                    }
                                    Outcome::ExpiryChanged => Some(Next::ExpiryChanged),
                                    Outcome::Close(end) => Some(Next::End(end)),
                                }
                            }
                        },
                        Err(e) => Some(Next::End(socket::read_error(self.id(), e))),
                    };
                    match next {
                        None => {}
                        Some(Next::End(end)) => return end,
                        Some(Next::ExpiryChanged) => {
                            deadlines.set_expiry(self.expiry());
                            timer.as_mut().reset(deadlines.next());
                        }
                    }
                }
            }
        }
    }

    /// Handles one message read from the peer, but for a text frame to run, which it returns.
    fn on_message(&mut self, msg: WsMessage) -> Read {
        Read::Done(match msg {
            WsMessage::Close(_) => Some(Next::End(End::PeerClosed)),
            // Control frames are frames too: a client pinging in a loop is a flooder. They are
            // refused silently (there is no frame to name in an error).
            WsMessage::Ping(_) | WsMessage::Pong(_) => match self.admit(Frame::Control) {
                Admitted::Close(end) => Some(Next::End(end)),
                Admitted::Refused | Admitted::Process => None,
            },
            // Never read: only for sending raw frames.
            WsMessage::Frame(_) => None,
            WsMessage::Binary(_) => {
                self.frames_in += 1;
                match self.admit(Frame::Binary) {
                    Admitted::Close(end) => Some(Next::End(end)),
                    Admitted::Refused => None,
                    Admitted::Process => {
                        self.sink.reply_error(&ErrorFrame {
                            code: ErrorCode::BadRequest,
                            message: "binary frames are not supported: send JSON text frames",
                            event: None,
                            request_id: None,
                            id: None,
                            retry_after_ms: None,
                            retryable: false,
                        });
                        None
                    }
                }
            }
            WsMessage::Text(text) => {
                self.frames_in += 1;
                match self.admit(Frame::Text(text.as_str())) {
                    Admitted::Close(end) => Some(Next::End(end)),
                    Admitted::Refused => None,
                    Admitted::Process => return Read::Handle(text),
                }
            }
        })
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
            retryable: false,
        });
    }

    /// Applies the rate limit to one incoming frame; a refused data frame is answered with
    /// `RATE_LIMITED`, naming the frame when it can be decoded.
    fn admit(&mut self, frame: Frame<'_>) -> Admitted {
        let retry_after_ms = match self.rate.admit(Instant::now(), self.server.config().rate_limits()) {
            Decision::Admit => return Admitted::Process,
            Decision::Close => return Admitted::Close(End::Close(close::POLICY, "rate limit exceeded for too long")),
            Decision::Refuse { retry_after_ms } => retry_after_ms,
        };
        let text = match frame {
            Frame::Control => return Admitted::Refused,
            Frame::Binary => None,
            Frame::Text(t) => Some(t),
        };
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
            retryable: true,
        });
        Admitted::Refused
    }

    async fn drain(&mut self, ws: &mut Ws) {
        while let Some(frame) = self.sink.try_take() {
            self.writing.frames_out += 1;
            if ws.feed(WsMessage::Text(frame)).await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
    }
}

/// A frame read from the peer, as the rate limit sees it.
enum Frame<'a> {
    Text(&'a str),
    Binary,
    Control,
}

/// What a message read from the peer asks for.
enum Read {
    /// It was dealt with.
    Done(Option<Next>),
    /// A text frame to run.
    Handle(Utf8Bytes),
}

/// What the loop does after a message.
pub(crate) enum Next {
    End(End),
    ExpiryChanged,
}
