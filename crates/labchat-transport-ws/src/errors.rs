//! The one mapping of use-case errors to wire errors. Failures the client cannot fix (an
//! unavailable backend, an internal error) are logged here with their whole error chain; the
//! client gets a fixed message that reveals nothing about the server.

use labchat_core::{ChatError, FailureKind, JoinError, LeaveError};
use labchat_domain::{Cursor, DeleteRefused, EditRefused};

use crate::protocol::ErrorCode;

/// What the client is told about a failed use case.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct WireError {
    /// The error code.
    pub(crate) code: ErrorCode,
    /// The message, for the client developer.
    pub(crate) message: &'static str,
    /// The user may no longer access the room the command named (only [`ChatError::Forbidden`]
    /// says so): the connection stops listening to it. Other refusals (editing someone else's
    /// message) leave it joined.
    pub(crate) lost_access: bool,
    /// How long the client should wait before sending the frame again, when the server says.
    pub(crate) retry_after_ms: Option<u64>,
}

/// The message of a `FORBIDDEN` answer: the same for a missing request and a refused one.
pub(crate) const FORBIDDEN_MESSAGE: &str = "you may not access this request";

impl WireError {
    const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message, lost_access: false, retry_after_ms: None }
    }

    fn classify(kind: FailureKind, e: &dyn std::error::Error) -> Self {
        match kind {
            FailureKind::Forbidden => Self::new(ErrorCode::Forbidden, FORBIDDEN_MESSAGE),
            // Only a cursor outside the room is a bad request today; its message is chosen above.
            FailureKind::BadRequest => Self::new(ErrorCode::BadRequest, "the request does not fit this room"),
            FailureKind::Unavailable => {
                tracing::warn!(error = %ErrorChain(e), "backend unavailable");
                Self::new(ErrorCode::Unavailable, "the store is unavailable; retry later")
            }
            FailureKind::Internal => {
                tracing::error!(error = %ErrorChain(e), "internal failure");
                Self::new(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

impl From<&ChatError> for WireError {
    fn from(e: &ChatError) -> Self {
        match e {
            ChatError::NotInRoom(Cursor::After(_)) => Self::new(ErrorCode::UnknownAfter, AFTER_NOT_IN_ROOM),
            ChatError::NotInRoom(_) => Self::new(ErrorCode::BadRequest, BEFORE_NOT_IN_ROOM),
            ChatError::ClientMessageIdReused => Self::new(ErrorCode::ClientMessageIdReused, CLIENT_MESSAGE_ID_REUSED),
            ChatError::UnknownInboxCursor(_) => Self::new(ErrorCode::BadRequest, NOT_AN_INBOX_CURSOR),
            ChatError::NoSuchMessage
            | ChatError::EditRefused(EditRefused::NotInRoom)
            | ChatError::DeleteRefused(DeleteRefused::NotInRoom) => {
                Self::new(ErrorCode::BadRequest, NOT_A_MESSAGE_OF_THE_ROOM)
            }
            ChatError::EditRefused(EditRefused::Deleted) => Self::new(ErrorCode::BadRequest, "the message was deleted"),
            ChatError::EditRefused(EditRefused::NotSender) => {
                Self::new(ErrorCode::Forbidden, "only the sender may edit a message")
            }
            ChatError::EditRefused(EditRefused::WindowPassed { .. }) => Self::new(
                ErrorCode::Forbidden,
                "too late: a message may be edited only within the edit window after it was sent",
            ),
            ChatError::DeleteRefused(DeleteRefused::NotAllowed) => {
                Self::new(ErrorCode::Forbidden, "only the sender or a LAB user may delete a message")
            }
            ChatError::Forbidden => Self { lost_access: true, ..Self::classify(e.kind(), e) },
            _ => Self::classify(e.kind(), e),
        }
    }
}

/// The message of a `BAD_REQUEST` for an `after` cursor that is no message of the room.
pub(crate) const AFTER_NOT_IN_ROOM: &str = "field data.after must be the id of a message of this room";
/// The message of a `CLIENT_MESSAGE_ID_REUSED`.
pub(crate) const CLIENT_MESSAGE_ID_REUSED: &str = "field data.clientMessageId was already used by you in this room for a \
     different text; nothing was stored: give every message a new unique id (a UUID)";
/// The message of a `BAD_REQUEST` for an inbox `before` that is no cursor of an earlier reply
/// (malformed, or well formed but not a place of this user's inbox).
pub(crate) const NOT_AN_INBOX_CURSOR: &str = "field data.before must be the `next` cursor of an earlier inbox reply";
/// The message of a `BAD_REQUEST` for an edit or a delete naming no message of the room.
pub(crate) const NOT_A_MESSAGE_OF_THE_ROOM: &str = "field data.messageId must be the id of a message of this room";
/// The message of an `UNAVAILABLE` refusing a join because the node runs as many as it may.
pub(crate) const JOIN_BUSY: &str =
    "the server is busy with other joins; nothing was done: join again after retryAfterMs";
/// The message of a `BAD_REQUEST` for a `before` cursor that is no message of the room.
pub(crate) const BEFORE_NOT_IN_ROOM: &str = "field data.before must be the id of a message of this room";

impl From<&JoinError> for WireError {
    fn from(e: &JoinError) -> Self {
        match e {
            JoinError::Chat(chat) => Self::from(chat),
            // Not a failure of the backend: the node protects it (and logs nothing per refusal).
            JoinError::Busy { retry_after } => Self {
                retry_after_ms: Some(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX).max(1)),
                ..Self::new(ErrorCode::Unavailable, JOIN_BUSY)
            },
            JoinError::Subscribe(_) => Self::classify(e.kind(), e),
        }
    }
}

impl From<&LeaveError> for WireError {
    fn from(e: &LeaveError) -> Self {
        Self::classify(e.kind(), e)
    }
}

macro_rules! by_value {
    ($($t:ty),*) => {$(
        impl From<$t> for WireError {
            fn from(e: $t) -> Self {
                Self::from(&e)
            }
        }
    )*};
}
by_value!(ChatError, JoinError, LeaveError);

/// Displays an error with its sources.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use labchat_core::{BroadcastError, StoreError};

    use super::*;

    fn store(e: StoreError) -> ChatError {
        ChatError::Store { op: "posting a message", source: e }
    }

    #[test]
    fn every_use_case_error_maps_to_one_wire_error() {
        let busy = JoinError::Busy { retry_after: std::time::Duration::from_millis(1500) };
        let cases: [(WireError, ErrorCode, bool); 8] = [
            (ChatError::Forbidden.into(), ErrorCode::Forbidden, false),
            (ChatError::ClientMessageIdReused.into(), ErrorCode::ClientMessageIdReused, false),
            (store(StoreError::unavailable("insert", "timeout")).into(), ErrorCode::Unavailable, true),
            (store(StoreError::internal("insert", "bad document")).into(), ErrorCode::Internal, false),
            (JoinError::Chat(ChatError::Forbidden).into(), ErrorCode::Forbidden, false),
            (JoinError::Subscribe(BroadcastError("bus down".into())).into(), ErrorCode::Unavailable, true),
            (LeaveError(BroadcastError("bus down".into())).into(), ErrorCode::Unavailable, true),
            (busy.into(), ErrorCode::Unavailable, true),
        ];
        for (wire, code, retryable) in cases {
            assert_eq!((wire.code, wire.code.retryable(None)), (code, retryable), "{wire:?}");
        }
    }

    #[test]
    fn only_a_busy_node_tells_when_to_come_back() {
        let busy = WireError::from(JoinError::Busy { retry_after: std::time::Duration::from_micros(1_500_400) });
        assert_eq!((busy.code, busy.retry_after_ms, busy.message), (ErrorCode::Unavailable, Some(1500), JOIN_BUSY));
        let soon = WireError::from(JoinError::Busy { retry_after: std::time::Duration::from_micros(10) });
        assert_eq!(soon.retry_after_ms, Some(1), "never 0: the client would come back at once");
        let down = WireError::from(store(StoreError::unavailable("find", "timeout")));
        assert_eq!(down.retry_after_ms, None);
    }

    #[test]
    fn only_a_refused_access_means_the_room_is_lost() {
        let lost = |e: WireError| (e.code, e.lost_access);
        assert_eq!(lost(ChatError::Forbidden.into()), (ErrorCode::Forbidden, true));
        assert_eq!(lost(JoinError::Chat(ChatError::Forbidden).into()), (ErrorCode::Forbidden, true));
        assert_eq!(lost(ChatError::EditRefused(EditRefused::NotSender).into()), (ErrorCode::Forbidden, false));
        assert_eq!(lost(ChatError::DeleteRefused(DeleteRefused::NotAllowed).into()), (ErrorCode::Forbidden, false));
        assert_eq!(lost(store(StoreError::unavailable("find", "timeout")).into()), (ErrorCode::Unavailable, false));
    }

    #[test]
    fn unavailable_and_internal_say_nothing_of_the_cause() {
        let wire = WireError::from(store(StoreError::internal("insert", "E11000 secret detail")));
        assert_eq!(wire.message, "internal server error");
        let forbidden = WireError::from(JoinError::Chat(ChatError::Forbidden));
        assert_eq!(forbidden.message, FORBIDDEN_MESSAGE);
    }

    #[test]
    fn the_chain_shows_every_source() {
        let e = store(StoreError::unavailable("insert a message", "connection refused"));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "posting a message: the store failed: store unavailable while trying to insert a message: connection refused"
        );
    }
}
