//! What the use cases can fail with: each operation's error type lists only what that
//! operation can return.
//!
//! A failed live broadcast is not among them: a change is published only after it is stored, and
//! stored is what counts, so the use cases log a failed publish rather than fail the call.

use labchat_domain::{Cursor, DeleteRefused, EditRefused, InboxCursor};

use crate::{BroadcastError, StoreError};

/// The classes of use-case failure, as a caller (the transport) tells them apart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailureKind {
    /// The call's arguments do not fit the room (e.g. a history cursor of another room).
    /// Nothing was done.
    BadRequest,
    /// The request does not exist or the user may not act on it. Nothing was done.
    Forbidden,
    /// A backend (store or broadcaster) could not be reached; retrying later may succeed.
    Unavailable,
    /// Something unexpected failed; retrying will not help.
    Internal,
}

/// Why [`Chat::post`](crate::Chat::post), [`Chat::mark`](crate::Chat::mark),
/// [`Chat::history`](crate::Chat::history) or [`Chat::check_access`](crate::Chat::check_access)
/// failed: refused, a history cursor outside the room, a reused client message id, or the store
/// failed. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The request does not exist, or the user may not act on it (the two are not told apart,
    /// so nobody learns which requests exist).
    #[error("forbidden: you may not access this request")]
    Forbidden,
    /// The history cursor (`after` or `before`) names no message of this room. Nothing was done.
    #[error("the history cursor {0:?} is not a message of this room")]
    NotInRoom(Cursor),
    /// The client message id of a send was used before by the same user in the same room for a
    /// different text ([`Message::repeats`](labchat_domain::Message::repeats)). Nothing was
    /// stored or broadcast.
    #[error("the client message id was already used for a different text in this room")]
    ClientMessageIdReused,
    /// The inbox cursor is no place the user's inbox could have given: its room is not one
    /// they may act on now, holds no message, or had no activity at its time. Nothing was done.
    #[error("the inbox cursor {0} was not issued for this inbox")]
    UnknownInboxCursor(InboxCursor),
    /// The message named by an edit or a delete is no message of this room (unknown, or of
    /// another room: not told apart). Nothing was done.
    #[error("no such message in this room")]
    NoSuchMessage,
    /// The edit was refused ([`Message::edit`](labchat_domain::Message::edit)): not the sender,
    /// past the window, or the message was deleted. Nothing was done.
    #[error("edit refused: {0}")]
    EditRefused(EditRefused),
    /// The deletion was refused ([`Message::delete`](labchat_domain::Message::delete)): neither
    /// the sender nor a LAB user. Nothing was done.
    #[error("delete refused: {0}")]
    DeleteRefused(DeleteRefused),
    /// The store failed while doing `op`.
    #[error("{op}: the store failed")]
    Store {
        /// What the use case was doing, e.g. "posting a message".
        op: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

impl ChatError {
    /// A closure wrapping a store error met while doing `op`, for `map_err`.
    pub(crate) fn store(op: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |source| Self::Store { op, source }
    }

    /// How a caller should classify the failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Forbidden => FailureKind::Forbidden,
            Self::NotInRoom(_)
            | Self::ClientMessageIdReused
            | Self::UnknownInboxCursor(_)
            | Self::NoSuchMessage
            | Self::EditRefused(EditRefused::Deleted | EditRefused::NotInRoom)
            | Self::DeleteRefused(DeleteRefused::NotInRoom) => FailureKind::BadRequest,
            Self::EditRefused(EditRefused::NotSender | EditRefused::WindowPassed { .. })
            | Self::DeleteRefused(DeleteRefused::NotAllowed) => FailureKind::Forbidden,
            Self::Store { source, .. } if source.is_retryable() => FailureKind::Unavailable,
            Self::Store { .. } => FailureKind::Internal,
        }
    }
}

/// Why [`Chat::join`](crate::Chat::join) failed: what [`ChatError`] says, or the subscription
/// itself failed. The connection did not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Refused, or the store failed while authorizing or reading the history.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The broadcaster refused the subscription.
    #[error("joining a room: subscribing failed")]
    Subscribe(#[source] BroadcastError),
    /// The node already runs as many joins as it may (see [`crate::JoinAdmission`]) and none
    /// ended within the wait: nothing was done. Come back after `retry_after`.
    #[error("joining a room: the node is busy with other joins; retry in {retry_after:?}")]
    Busy {
        /// How long to wait before joining again.
        retry_after: std::time::Duration,
    },
}

impl JoinError {
    /// How a caller should classify the failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Chat(e) => e.kind(),
            Self::Subscribe(_) | Self::Busy { .. } => FailureKind::Unavailable,
        }
    }
}

/// Why [`Chat::leave`](crate::Chat::leave) failed: the broadcaster could not unsubscribe.
#[derive(Debug, thiserror::Error)]
#[error("leaving a room: unsubscribing failed")]
pub struct LeaveError(#[source] pub BroadcastError);

impl LeaveError {
    /// How a caller should classify the failure: always [`FailureKind::Unavailable`].
    pub const fn kind(&self) -> FailureKind {
        FailureKind::Unavailable
    }
}
