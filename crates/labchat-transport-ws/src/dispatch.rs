//! One text frame of a connection: decode it, run the use case, queue the reply.

use std::sync::Arc;

use labchat_core::{InboxSink, RoomSink};
use labchat_domain::{Cursor, ReceiptKind, RequestId};
use serde_json::Value;
use tokio::time::Instant;

use crate::access;
use crate::auth::{AuthError, Principal};
use crate::connection::{End, close};
use crate::errors::WireError;
use crate::joined::JoinedRooms;
use crate::outbound::{ConnSink, Release};
use crate::protocol::{self, AckData, Command, ErrorCode, ErrorFrame, Inbound, Keep, ServerEvent};
use crate::server::Server;
use crate::typing_gate::{TypingCheck, TypingGate};

/// What the commands of one connection read and change.
pub(crate) struct Session {
    /// Who is connected, and until when.
    pub(crate) principal: Principal,
    /// The rooms joined.
    pub(crate) rooms: JoinedRooms,
    /// Where replies and room events go.
    pub(crate) sink: Arc<ConnSink>,
    /// The connection's own typing throttle, from its first `typing` on.
    typing: Option<Box<TypingGate>>,
}

/// What handling a frame did to the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Replied (or had nothing to reply); the connection goes on.
    Done,
    /// As `Done`, and the frame does not count against the frame rate limit: a `typing`
    /// throttled (or refused) by the connection's typing gate, which has a bucket of its own.
    Uncounted,
    /// As `Done`, and the token was refreshed: the expiry changed.
    ExpiryChanged,
    /// An error was queued; close the connection.
    Close(End),
}

impl Session {
    /// A session with no room joined.
    pub(crate) fn new(principal: Principal, sink: Arc<ConnSink>) -> Self {
        Self { principal, rooms: JoinedRooms::default(), sink, typing: None }
    }

    /// Handles one text frame: its reply (or `error` frame) is queued on the sink.
    pub(crate) async fn handle(&mut self, server: &Server, text: &str) -> Outcome {
        let decoded = protocol::decode(text, &server.config().decode);
        let event = match &decoded {
            Ok(i) => i.event.as_str(),
            Err(_) => "invalid",
        };
        metrics::counter!("labchat_frames_in_total", "event" => event).increment(1);
        let inbound = match decoded {
            Ok(i) => i,
            Err(bad) => {
                self.sink.reply_error(&ErrorFrame {
                    code: ErrorCode::BadRequest,
                    message: &bad.message,
                    event: bad.event.as_deref(),
                    request_id: bad.request_id,
                    id: bad.id.as_ref(),
                    retry_after_ms: None,
                });
                return Outcome::Done;
            }
        };
        match self.dispatch(server, &inbound).await {
            Ok(outcome) => outcome,
            Err(Failure { code, message, close }) => {
                self.sink.reply_error(&ErrorFrame {
                    code,
                    message: &message,
                    event: Some(inbound.event.as_str()),
                    request_id: inbound.command.request_id(),
                    id: inbound.id.as_ref(),
                    retry_after_ms: None,
                });
                // A refusal for a joined room means access was lost: stop listening to it too.
                if code == ErrorCode::Forbidden
                    && let Some(room) = inbound.command.request_id()
                {
                    Box::pin(self.lost_access(server, vec![room])).await;
                }
                close.map_or(Outcome::Done, Outcome::Close)
            }
        }
    }

    async fn dispatch(&mut self, server: &Server, inbound: &Inbound) -> Result<Outcome, Failure> {
        let id = inbound.id.as_ref();
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
                let rejoin = self.rooms.contains(request_id);
                // The room's events that arrive between subscribing and queueing the history
                // (from other nodes) wait, so that they follow the history.
                self.sink.hold(*request_id);
                let joined = match chat.join(&user, *request_id, *after, sink, rejoin).await {
                    Ok(joined) => joined,
                    Err(e) => {
                        self.sink.release(*request_id, if rejoin { Release::Member } else { Release::Drop });
                        return Err(WireError::from(e).into());
                    }
                };
                if self.rooms.insert(*request_id) {
                    metrics::gauge!("labchat_rooms_joined").increment(1.0);
                }
                // Queued while the room's order is held: history first, then live events.
                let (keep, budget) =
                    (Keep::for_cursor(after.map_or(Cursor::Latest, Cursor::After)), server.config().reply_budget());
                let budget = budget.saturating_sub(protocol::join_fields_len(&joined.unread));
                let (frame, has_more) = protocol::room_history_with_more(
                    *request_id,
                    &joined.history,
                    keep,
                    budget,
                    id,
                    Some(&joined.members),
                );
                self.sink.reply(ServerEvent::RoomHistory, protocol::with_join_fields(frame, &joined.unread));
                // A page after a message that stops short of the newest: the client pages on,
                // and the held messages past the page would leave a hole before them.
                let cut = after.is_some() && has_more;
                // Only a backplane delivers messages after a history that holds them.
                let late = chat.backplane().is_some();
                self.sink.release(*request_id, Release::Joined { covered: joined.covered, cut, late });
                drop(joined);
                self.ack(AckData::Room(*request_id), id);
            }
            Command::LeaveRoom { request_id } => {
                // Stopping to listen needs no authorization. Leaving a room not joined is
                // answered like any other operation, so it tells nobody which requests exist.
                if !self.rooms.contains(request_id) {
                    chat.check_access(&user, *request_id).await.map_err(WireError::from)?;
                }
                chat.leave(&user, *request_id, self.sink.sink_id()).await.map_err(WireError::from)?;
                self.sink.forget(*request_id);
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
                    Some(id) => self.sink.reply(ServerEvent::Ack, protocol::ack(AckData::Message(&posted.message), id)),
                    // A repeated send gets the original back even without a correlation id.
                    None if posted.duplicate => {
                        self.sink.reply(ServerEvent::Message, protocol::message(&posted.message))
                    }
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
            Command::History { request_id, cursor, limit } => {
                let page = chat.history(&user, *request_id, *cursor, *limit).await.map_err(WireError::from)?;
                let budget = server.config().reply_budget();
                self.sink.reply(
                    ServerEvent::RoomHistory,
                    protocol::room_history(*request_id, &page, Keep::for_cursor(*cursor), budget, id),
                );
                self.ack(AckData::Room(*request_id), id);
            }
            Command::RefreshToken { token } => return self.refresh(server, token, id),
            Command::Inbox { query } => {
                let page = chat.inbox(&user, *query).await.map_err(WireError::from)?;
                // Sent without an id too: it is the only frame that carries the result.
                self.sink.reply(ServerEvent::Ack, protocol::inbox_ack(&page, id));
            }
            Command::Members { request_id, after } => {
                let page = chat.members(&user, *request_id, after.as_ref()).await.map_err(WireError::from)?;
                // Sent without an id too: it is the only frame that carries the result.
                self.sink.reply(ServerEvent::Ack, protocol::members_ack(*request_id, &page, id));
            }
            Command::SubscribeInbox => {
                chat.subscribe_inbox(&user, Arc::clone(&self.sink) as Arc<dyn InboxSink>);
                self.ack(AckData::Empty, id);
            }
            Command::UnsubscribeInbox => {
                chat.unsubscribe_inbox(self.sink.sink_id());
                self.ack(AckData::Empty, id);
            }
            Command::Typing { request_id } => return self.typing(server, inbound, *request_id).await,
        }
        Ok(Outcome::Done)
    }

    /// A `typing`: throttled here when this connection's latest one in the room was broadcast
    /// less than an interval ago (see [`TypingGate`]), else asked of the presence port. A
    /// throttled one is dropped, but still answered, and not charged to the frame rate limit.
    async fn typing(&mut self, server: &Server, inbound: &Inbound, room: RequestId) -> Result<Outcome, Failure> {
        let id = inbound.id.as_ref();
        let now = Instant::now();
        let limits = server.config().typing_limits();
        let gate = self.typing.get_or_insert_with(|| Box::new(TypingGate::new(limits, now)));
        match gate.check(room, now, limits) {
            TypingCheck::Ask => {}
            TypingCheck::Throttled => {
                self.ack(AckData::Room(room), id);
                return Ok(Outcome::Uncounted);
            }
            TypingCheck::Refuse { retry_after_ms } => {
                self.sink.reply_error(&ErrorFrame {
                    code: ErrorCode::RateLimited,
                    message: "too many typing frames; this one was not processed",
                    event: Some(inbound.event.as_str()),
                    request_id: Some(room),
                    id,
                    retry_after_ms: Some(retry_after_ms),
                });
                return Ok(Outcome::Uncounted);
            }
            TypingCheck::Close => {
                return Ok(Outcome::Close(End::Close(close::POLICY, "rate limit exceeded for too long")));
            }
        }
        let broadcast = server.chat().typing(&self.principal.user, room).await.map_err(WireError::from)?;
        if let Some(gate) = self.typing.as_mut() {
            gate.record(room, Instant::now(), broadcast);
        }
        self.ack(AckData::Room(room), id);
        Ok(Outcome::Done)
    }

    fn refresh(&mut self, server: &Server, token: &str, id: Option<&Value>) -> Result<Outcome, Failure> {
        match server.auth().authenticate(token) {
            Ok(p) if p.user == self.principal.user => {
                self.principal.expires_at = p.expires_at;
                self.ack(AckData::Refreshed(p.expires_at), id);
                Ok(Outcome::ExpiryChanged)
            }
            Ok(_) => Err(Failure {
                code: ErrorCode::Forbidden,
                message: "the new token is for another user or role".into(),
                close: Some(End::Close(close::FORBIDDEN, "token for another user or role")),
            }),
            Err(AuthError::Forbidden(m)) => Err(Failure {
                code: ErrorCode::Forbidden,
                message: m,
                close: Some(End::Close(close::FORBIDDEN, "token for another role")),
            }),
            Err(AuthError::Unauthorized(m)) => {
                Err(Failure::with(ErrorCode::Unauthorized, format!("refresh refused: {m}")))
            }
        }
    }

    /// Re-checks every joined room and leaves those the user may no longer access.
    pub(crate) async fn recheck_access(&mut self, server: &Server) {
        let lost = access::lost(server.chat(), &self.principal.user, &self.rooms).await;
        self.lost_access(server, lost).await;
    }

    /// Leaves `rooms` (those joined) for lost access, telling the client about each.
    async fn lost_access(&mut self, server: &Server, rooms: Vec<RequestId>) {
        for room in rooms {
            let sink_id = self.sink.sink_id();
            if access::remove(server.chat(), &self.principal.user, sink_id, &mut self.rooms, room).await {
                self.sink.forget(room);
                self.sink.reply_error(&access::removal_notice(room));
            }
        }
    }

    fn ack(&self, data: AckData<'_>, id: Option<&Value>) {
        if let Some(id) = id {
            self.sink.reply(ServerEvent::Ack, protocol::ack(data, id));
        }
    }
}

/// A command that failed: the `error` frame to send, and whether to close afterwards.
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

#[cfg(test)]
mod tests;
