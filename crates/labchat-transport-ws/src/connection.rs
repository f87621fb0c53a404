//! One websocket connection: reads frames, runs the use cases, and writes replies and room
//! events from one bounded outbound queue.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use labchat_core::{Clock, Published, RoomSink, SinkId, SystemClock};
use labchat_domain::{ReceiptKind, RequestId, Timestamp, User};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::access::{self, Recheck};
use crate::auth::{AuthError, Principal};
use crate::errors::WireError;
use crate::protocol::{self, AckData, Command, ErrorCode, ErrorFrame, Inbound};
use crate::server::Server;

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Close codes the server uses (see docs/protocol.md).
mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const FORBIDDEN: u16 = 4003;
}

/// A FIFO of encoded frames that allocates nothing while empty (a tokio mpsc channel allocates
/// about 1.5 KiB per connection up front) and gives back what a burst took.
struct OutQueue {
    frames: std::sync::Mutex<VecDeque<Utf8Bytes>>,
    ready: Notify,
    max_frames: usize,
}

impl OutQueue {
    fn new(max_frames: usize) -> Self {
        Self { frames: std::sync::Mutex::new(VecDeque::new()), ready: Notify::new(), max_frames: max_frames.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Utf8Bytes>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_send(&self, frame: Utf8Bytes) -> Result<(), Utf8Bytes> {
        {
            let mut q = self.lock();
            if q.len() >= self.max_frames {
                return Err(frame);
            }
            q.push_back(frame);
        }
        self.ready.notify_one();
        Ok(())
    }

    fn try_recv(&self) -> Option<Utf8Bytes> {
        let mut q = self.lock();
        let frame = q.pop_front();
        if frame.is_none() && q.capacity() > 16 {
            *q = VecDeque::new();
        }
        frame
    }

    /// The next frame. Cancel-safe: a frame is only taken in the poll that returns it.
    async fn recv(&self) -> Utf8Bytes {
        loop {
            if let Some(frame) = self.try_recv() {
                return frame;
            }
            self.ready.notified().await;
        }
    }
}

/// The connection's side of the broadcaster: a bounded queue of encoded frames.
pub(crate) struct ConnSink {
    id: SinkId,
    tx: OutQueue,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    overflow: Notify,
}

impl ConnSink {
    /// Queues a frame; on overflow marks the connection for closing (1013) and drops the frame.
    fn push(&self, frame: Utf8Bytes) {
        if self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        let full = queued > self.max_bytes || self.tx.try_send(frame).is_err();
        if full {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.overflowed.store(true, Ordering::Release);
            self.overflow.notify_one();
        }
    }

    fn sent(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

impl RoomSink for ConnSink {
    fn id(&self) -> SinkId {
        self.id
    }

    fn deliver(&self, event: Arc<Published>) {
        // Encoded once per broadcast, shared by every receiver.
        let frame = event.encoded(|e| Utf8Bytes::from(protocol::room_event(e)));
        self.push(frame);
    }
}

/// A token bucket, plus how long the client has been over it without a break.
struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    limited_since: Option<Instant>,
    last_limited: Option<Instant>,
}

enum Admit {
    Yes,
    No { retry_after_ms: u64, hammering_for: Duration },
}

impl RateLimit {
    fn new(rate: f64, burst: f64) -> Self {
        Self { tokens: burst, last: Instant::now(), rate, burst, limited_since: None, last_limited: None }
    }

    fn admit(&mut self, now: Instant) -> Admit {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Yes;
        }
        // A second without being limited ends a streak of hammering.
        if self.last_limited.is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1)) {
            self.limited_since = Some(now);
        }
        self.last_limited = Some(now);
        let wait = (1.0 - self.tokens) / self.rate.max(f64::MIN_POSITIVE);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let retry_after_ms = (wait * 1000.0).ceil().max(1.0) as u64;
        let hammering_for = self.limited_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        Admit::No { retry_after_ms, hammering_for }
    }
}

/// Why the connection loop ended.
enum End {
    /// The peer closed or vanished; nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

pub(crate) struct Connection {
    principal: Principal,
    peer: SocketAddr,
    server: Arc<Server>,
    sink: Arc<ConnSink>,
    rooms: HashSet<RequestId>,
    rate: RateLimit,
    frames_in: u64,
    frames_out: u64,
    expiry_changed: bool,
    refused: bool,
}

fn instant_of(t: Timestamp) -> Instant {
    let now_ms = SystemClock.now().unix_millis();
    let ahead = u64::try_from(t.unix_millis().saturating_sub(now_ms)).unwrap_or(0);
    Instant::now() + Duration::from_millis(ahead)
}

impl Connection {
    pub(crate) fn new(id: u64, principal: Principal, peer: SocketAddr, server: Arc<Server>) -> Self {
        let cfg = server.config();
        let sink = Arc::new(ConnSink {
            id: SinkId(id),
            tx: OutQueue::new(cfg.outbound_max_frames),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: cfg.outbound_max_bytes,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
        });
        let rate = RateLimit::new(cfg.rate_per_second, cfg.rate_burst);
        Self {
            principal,
            peer,
            server,
            sink,
            rooms: HashSet::new(),
            rate,
            frames_in: 0,
            frames_out: 0,
            expiry_changed: false,
            refused: false,
        }
    }

    fn user(&self) -> &User {
        &self.principal.user
    }

    pub(crate) async fn run(&mut self, ws: Ws, cancel: CancellationToken) {
        let started = Instant::now();
        let user = self.user().clone();
        tracing::info!(conn = self.sink.id.0, user_id = %user.id(), role = %user.role(), peer = %self.peer, "connection opened");
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
        let chat = self.server.chat();
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("labchat_rooms_joined").decrement(self.rooms.len() as f64);
        chat.disconnect(self.sink.id, self.rooms.drain()).await;
        tracing::info!(
            conn = self.sink.id.0,
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

    async fn serve(&mut self, ws: &mut Ws, cancel: &CancellationToken) -> End {
        let ping_every = self.server.config().ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_seen = Instant::now();
        let expiry = tokio::time::sleep_until(instant_of(self.principal.expires_at));
        tokio::pin!(expiry);
        let mut recheck = Recheck::every(self.server.config().access_recheck_interval);
        let sink = Arc::clone(&self.sink);
        loop {
            if self.expiry_changed {
                self.expiry_changed = false;
                expiry.as_mut().reset(instant_of(self.principal.expires_at));
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    return End::Close(close::GOING_AWAY, "server shutting down");
                }
                () = sink.overflow.notified() => {
                    return End::Close(close::TRY_AGAIN_LATER, "outbound queue full: client too slow");
                }
                () = &mut expiry => {
                    self.reply_error(ErrorCode::TokenExpired, "token expired; reconnect with a new token", None, None, None);
                    return End::Close(close::TOKEN_EXPIRED, "token expired");
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() >= ping_every * 2 {
                        tracing::info!(conn = self.sink.id.0, "no answer for two ping intervals");
                        return End::Gone;
                    }
                    if Box::pin(ws.send(WsMessage::Ping(Default::default()))).await.is_err() {
                        return End::Gone;
                    }
                }
                () = recheck.due() => Box::pin(self.recheck_access()).await,
                frame = sink.tx.recv() => {
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
                            tracing::debug!(conn = self.sink.id.0, error = %e, "websocket read failed");
                            return End::Gone;
                        }
                        Some(Ok(WsMessage::Close(_))) => return End::Gone,
                        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                        Some(Ok(WsMessage::Binary(_))) => {
                            self.frames_in += 1;
                            if let Some(end) = self.admit(None) { return end; }
                            self.reply_error(ErrorCode::BadRequest, "binary frames are not supported: send JSON text frames", None, None, None);
                        }
                        Some(Ok(WsMessage::Text(text))) => {
                            self.frames_in += 1;
                            match self.admit(Some(text.as_str())) {
                                Some(end) => return end,
                                None if self.refused => {}
                                // Boxed, like the other rare or brief paths below: the
                                // connection's task is as large as its largest await point,
                                // for as long as the connection lives.
                                None => if let Some(end) = Box::pin(self.handle(text.as_str())).await {
                                    return end;
                                },
                            }
                        }
                    }
                }
            }
        }
    }

    /// Applies the rate limit to one incoming data frame. `Some` ends the connection; otherwise
    /// `self.refused` tells whether the frame was refused (and answered with `RATE_LIMITED`).
    fn admit(&mut self, text: Option<&str>) -> Option<End> {
        self.refused = false;
        match self.rate.admit(Instant::now()) {
            Admit::Yes => None,
            Admit::No { hammering_for, .. } if hammering_for >= self.server.config().rate_close_after => {
                Some(End::Close(close::POLICY, "rate limit exceeded for too long"))
            }
            Admit::No { retry_after_ms, .. } => {
                self.refused = true;
                // Decode only to tell the client which frame was refused.
                let decoded = text.map(|t| protocol::decode(t, &self.server.config().decode));
                let (event, request_id, id) = match &decoded {
                    Some(Ok(i)) => (Some(i.event.as_str()), i.command.request_id(), i.id.as_ref()),
                    Some(Err(bad)) => (bad.event.as_deref(), bad.request_id, bad.id.as_ref()),
                    None => (None, None, None),
                };
                self.reply_error_frame(&ErrorFrame {
                    code: ErrorCode::RateLimited,
                    message: "too many frames; this one was not processed",
                    event,
                    request_id,
                    id,
                    retry_after_ms: Some(retry_after_ms),
                });
                None
            }
        }
    }

    /// Writes `first` and everything else already queued, then flushes once.
    async fn write(&mut self, ws: &mut Ws, first: Utf8Bytes) -> Result<(), End> {
        let sink = Arc::clone(&self.sink);
        let batch = async {
            let mut next = Some(first);
            while let Some(frame) = next.take() {
                sink.sent(frame.len());
                self.frames_out += 1;
                ws.feed(WsMessage::Text(frame)).await?;
                next = sink.tx.try_recv();
            }
            ws.flush().await
        };
        tokio::select! {
            res = batch => res.map_err(|_| End::Gone),
            // A peer that stops reading blocks the write; the queue fills and we give up on it.
            () = sink.overflow.notified() => Err(End::Close(close::TRY_AGAIN_LATER, "outbound queue full: client too slow")),
        }
    }

    async fn drain(&mut self, ws: &mut Ws) {
        while let Some(frame) = self.sink.tx.try_recv() {
            self.sink.sent(frame.len());
            if ws.feed(WsMessage::Text(frame)).await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
    }

    /// Queues a direct reply (not a room broadcast: those are counted by the broadcaster).
    fn reply(&self, event: &'static str, frame: String) {
        metrics::counter!("labchat_frames_out_total", "event" => event).increment(1);
        self.sink.push(Utf8Bytes::from(frame));
    }

    /// Queues an `error` frame.
    fn reply_error_frame(&self, e: &ErrorFrame<'_>) {
        metrics::counter!("labchat_errors_total", "code" => e.code.as_str()).increment(1);
        self.reply("error", protocol::error(e));
    }

    fn reply_error(
        &self,
        code: ErrorCode,
        message: &str,
        event: Option<&str>,
        request_id: Option<RequestId>,
        retry_after_ms: Option<u64>,
    ) {
        self.reply_error_frame(&ErrorFrame { code, message, event, request_id, id: None, retry_after_ms });
    }

    /// Handles one text frame. `Some` ends the connection.
    async fn handle(&mut self, text: &str) -> Option<End> {
        let decoded = protocol::decode(text, &self.server.config().decode);
        let event = match &decoded {
            Ok(i) => protocol::known_event(&i.event),
            Err(_) => "invalid",
        };
        metrics::counter!("labchat_frames_in_total", "event" => event).increment(1);
        let inbound = match decoded {
            Ok(i) => i,
            Err(bad) => {
                self.reply_error_frame(&ErrorFrame {
                    code: ErrorCode::BadRequest,
                    message: &bad.message,
                    event: bad.event.as_deref(),
                    request_id: bad.request_id,
                    id: bad.id.as_ref(),
                    retry_after_ms: None,
                });
                return None;
            }
        };
        match self.dispatch(&inbound).await {
            Ok(()) => None,
            Err(Failure { code, message, close }) => {
                self.reply_error_frame(&ErrorFrame {
                    code,
                    message: &message,
                    event: Some(&inbound.event),
                    request_id: inbound.command.request_id(),
                    id: inbound.id.as_ref(),
                    retry_after_ms: None,
                });
                // A refusal for a joined room means access was lost: stop listening to it too.
                if code == ErrorCode::Forbidden
                    && let Some(room) = inbound.command.request_id()
                {
                    Box::pin(self.lost_access(vec![room])).await;
                }
                close
            }
        }
    }

    /// Re-checks every joined room and leaves those the user may no longer access.
    async fn recheck_access(&mut self) {
        let lost = access::lost(self.server.chat(), &self.principal.user, &self.rooms).await;
        self.lost_access(lost).await;
    }

    /// Leaves `rooms` (those joined) for lost access, telling the client about each.
    async fn lost_access(&mut self, rooms: Vec<RequestId>) {
        for room in rooms {
            let (server, user) = (Arc::clone(&self.server), &self.principal.user);
            if access::remove(server.chat(), user, self.sink.id, &mut self.rooms, room).await {
                self.reply_error_frame(&access::removal_notice(room));
            }
        }
    }

    async fn dispatch(&mut self, inbound: &Inbound) -> Result<(), Failure> {
        let id = inbound.id.as_ref();
        let server = Arc::clone(&self.server);
        let chat = server.chat();
        let user = self.principal.user.clone();
        match &inbound.command {
            Command::JoinRoom { request_id, after } => {
                let max = server.config().max_rooms_per_connection;
                if !self.rooms.contains(request_id) && self.rooms.len() >= max {
                    return Err(Failure::bad_request(format!(
                        "a connection may join at most {max} rooms; leave one first"
                    )));
                }
                let sink: Arc<dyn RoomSink> = Arc::clone(&self.sink) as Arc<dyn RoomSink>;
                let joined = chat.join(&user, *request_id, *after, sink).await.map_err(WireError::from)?;
                if self.rooms.insert(*request_id) {
                    metrics::gauge!("labchat_rooms_joined").increment(1.0);
                }
                // Queued while the room's order is held: history first, then live events.
                self.reply("roomHistory", protocol::room_history(*request_id, &joined.history, id));
                drop(joined);
                self.ack(AckData::Room(*request_id), id);
            }
            Command::LeaveRoom { request_id } => {
                // Stopping to listen needs no authorization. Leaving a room not joined is
                // answered like any other operation, so it tells nobody which requests exist.
                if !self.rooms.contains(request_id) {
                    chat.check_access(&user, *request_id).await.map_err(WireError::from)?;
                }
                chat.leave(*request_id, self.sink.id).await.map_err(WireError::from)?;
                if self.rooms.remove(request_id) {
                    metrics::gauge!("labchat_rooms_joined").decrement(1.0);
                }
                self.ack(AckData::Room(*request_id), id);
            }
            Command::Message { request_id, text, client_message_id } => {
                let posted = chat
                    .post(&user, *request_id, text.clone(), client_message_id.clone())
                    .await
                    .map_err(WireError::from)?;
                match id {
                    Some(id) => self.reply("ack", protocol::ack(AckData::Message(&posted.message), id)),
                    // A repeated send gets the original back even without a correlation id.
                    None if posted.duplicate => self.reply("message", protocol::message(&posted.message)),
                    None => {}
                }
            }
            Command::AckMessages { request_id, ids } | Command::ReadMessages { request_id, ids } => {
                let kind = if matches!(inbound.command, Command::AckMessages { .. }) {
                    ReceiptKind::Delivered
                } else {
                    ReceiptKind::Read
                };
                let marked = chat.mark(&user, *request_id, kind, ids).await.map_err(WireError::from)?;
                self.ack(AckData::Marked(*request_id, &marked), id);
            }
            Command::History { request_id, before, limit } => {
                let page = chat.history(&user, *request_id, *before, *limit).await.map_err(WireError::from)?;
                self.reply("roomHistory", protocol::room_history(*request_id, &page, id));
                self.ack(AckData::Room(*request_id), id);
            }
            Command::RefreshToken { token } => match server.auth().authenticate(token) {
                Ok(p) if p.user == self.principal.user => {
                    self.principal.expires_at = p.expires_at;
                    self.expiry_changed = true;
                    self.ack(AckData::Refreshed(p.expires_at), id);
                }
                Ok(_) => {
                    return Err(Failure {
                        code: ErrorCode::Forbidden,
                        message: "the new token is for another user or role".into(),
                        close: Some(End::Close(close::FORBIDDEN, "token for another user or role")),
                    });
                }
                Err(AuthError::Forbidden(m)) => {
                    return Err(Failure {
                        code: ErrorCode::Forbidden,
                        message: m,
                        close: Some(End::Close(close::FORBIDDEN, "token for another role")),
                    });
                }
                Err(AuthError::Unauthorized(m)) => {
                    return Err(Failure::with(ErrorCode::Unauthorized, format!("refresh refused: {m}")));
                }
            },
        }
        Ok(())
    }

    fn ack(&self, data: AckData<'_>, id: Option<&Value>) {
        if let Some(id) = id {
            self.reply("ack", protocol::ack(data, id));
        }
    }
}

struct Failure {
    code: ErrorCode,
    message: String,
    close: Option<End>,
}

impl Failure {
    fn with(code: ErrorCode, message: String) -> Self {
        Self { code, message, close: None }
    }

    fn bad_request(message: String) -> Self {
        Self::with(ErrorCode::BadRequest, message)
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Self::with(e.code, e.message.into())
    }
}
