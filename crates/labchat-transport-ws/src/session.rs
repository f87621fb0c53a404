//! What the commands of one connection read and change: the [`Session`] (who is connected, the
//! rooms joined, the outbound queue, the typing throttle), what handling a frame did to the
//! connection ([`Outcome`]), and a command's failure ([`Failure`]). The client events' applies
//! (`protocol/client/`) and the dispatcher use it; it imports neither.

use std::sync::Arc;

use labchat_domain::RequestId;
use serde_json::Value;

use crate::access;
use crate::auth::Principal;
use crate::close::End;
use crate::context::Server;
use crate::errors::WireError;
use crate::joined::JoinedRooms;
use crate::outbound::ConnSink;
use crate::protocol::{self, AckData, ErrorCode, ServerEvent};
use crate::typing_gate::TypingGate;

/// What the commands of one connection read and change.
pub(crate) struct Session {
    /// Who is connected, and until when.
    pub(crate) principal: Principal,
    /// The rooms joined.
    pub(crate) rooms: JoinedRooms,
    /// Where replies and room events go.
    pub(crate) sink: Arc<ConnSink>,
    /// The connection's own typing throttle, from its first `typing` on.
    pub(crate) typing: Option<Box<TypingGate>>,
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

    /// Re-checks every joined room and leaves those the user may no longer access.
    pub(crate) async fn recheck_access(&mut self, server: &Server) {
        let lost = access::lost(server.chat(), &self.principal.user, &self.rooms).await;
        self.lost_access(server, lost).await;
    }

    /// Leaves `rooms` (those joined) for lost access, telling the client about each.
    pub(crate) async fn lost_access(&mut self, server: &Server, rooms: Vec<RequestId>) {
        for room in rooms {
            let sink_id = self.sink.sink_id();
            if access::remove(server.chat(), &self.principal.user, sink_id, &mut self.rooms, room).await {
                self.sink.forget(room);
                self.sink.reply_error(&access::removal_notice(room));
            }
        }
    }

    /// Queues the `ack` of a frame that had a correlation id `id` (none without one).
    pub(crate) fn ack(&self, data: AckData<'_>, id: Option<&Value>) {
        if let Some(id) = id {
            self.sink.reply(ServerEvent::Ack, protocol::ack(data, id));
        }
    }
}

/// A command that failed: the `error` frame to send, and whether to close afterwards.
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) close: Option<End>,
    /// See [`WireError::lost_access`].
    pub(crate) lost_access: bool,
    /// See [`WireError::retry_after_ms`].
    pub(crate) retry_after_ms: Option<u64>,
}

impl Failure {
    pub(crate) fn with(code: ErrorCode, message: String) -> Self {
        Self { code, message, close: None, lost_access: false, retry_after_ms: None }
    }

    pub(crate) fn bad_request(message: String) -> Self {
        Self::with(ErrorCode::BadRequest, message)
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Self { lost_access: e.lost_access, retry_after_ms: e.retry_after_ms, ..Self::with(e.code, e.message.into()) }
    }
}
