//! Access that is re-checked: a connection's room subscriptions end when its user may no longer
//! access the room's request (the request was reassigned or deleted).
//!
//! Each connection re-checks its rooms every
//! [`WsConfig::access_recheck_interval`](crate::WsConfig::access_recheck_interval), through
//! [`Chat::check_access`], whose cache of requests lives for the same interval, so the store is
//! asked about a room at most once per interval whatever the number of its members (and the
//! rooms in use are looked up again a thousand per store read, before they expire). A user who
//! lost access stops receiving the room's events within two intervals at most (three while the
//! store's lookups fail, when a kept request allows for one interval more), or at once when a
//! frame of theirs for that room is refused. Either way the room is left and the client is
//! told with an `error` frame ([`removal_notice`]).

use labchat_core::{Chat, FailureKind, SinkId};
use labchat_domain::{RequestId, User};

use crate::errors::ErrorChain;
use crate::joined::JoinedRooms;
use crate::protocol::{ErrorCode, ErrorFrame};

/// The message of the `error` frame that tells a client it was removed from a room.
pub(crate) const REMOVED_MESSAGE: &str = "you may no longer access this request; you were removed from its room";

/// The `error` frame telling a client it was removed from `room`: code `FORBIDDEN`, the room,
/// no event and no correlation id (no frame of the client's caused it).
pub(crate) fn removal_notice(room: RequestId) -> ErrorFrame<'static> {
    ErrorFrame {
        code: ErrorCode::Forbidden,
        message: REMOVED_MESSAGE,
        event: None,
        request_id: Some(room),
        id: None,
        retry_after_ms: None,
        retryable: false,
    }
}

/// The rooms of `rooms` that `user` may no longer access. The rooms are checked concurrently, so
/// a round costs about one lookup (most are answered from the use cases' cache) and holds the
/// connection up for at most one store timeout, whatever the number of rooms. A room whose check
/// fails for another reason (the store is unavailable, or its request cannot be read) is kept
/// until the next round: a failure ends no subscription, and does not stop the other rooms'
/// checks.
pub(crate) async fn lost(chat: &Chat, user: &User, rooms: &JoinedRooms) -> Vec<RequestId> {
    let checks = rooms.iter().map(|&room| async move { (room, chat.check_access(user, room).await) });
    let mut lost = Vec::new();
    for (room, result) in futures_util::future::join_all(checks).await {
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == FailureKind::Forbidden => lost.push(room),
            Err(e) => {
                tracing::warn!(request_id = %room, error = %ErrorChain(&e), "access re-check failed; room kept until the next one");
            }
        }
    }
    lost
}

/// Ends the subscription of `sink` to `room`, whose request its user may no longer access, and
/// forgets the room. `false` when there is nothing to tell the client: the connection had not
/// joined the room, or unsubscribing failed (the room is kept, and checked again next time).
pub(crate) async fn remove(chat: &Chat, user: &User, sink: SinkId, rooms: &mut JoinedRooms, room: RequestId) -> bool {
    if !rooms.contains(&room) {
        return false;
    }
    if let Err(e) = chat.leave(user, room, sink).await {
        tracing::warn!(request_id = %room, error = %ErrorChain(&e), "unsubscribing a user who lost access failed");
        return false;
    }
    rooms.remove(&room);
    metrics::gauge!("labchat_rooms_joined").decrement(1.0);
    tracing::info!(conn = sink.0, user_id = %user.id(), request_id = %room, "access lost: removed from the room");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_removal_notice_names_the_room_only() {
        let room = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        let frame: serde_json::Value = serde_json::from_str(&crate::protocol::error(&removal_notice(room))).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"event": "error", "data": {
                "code": "FORBIDDEN",
                "message": REMOVED_MESSAGE,
                "requestId": "6751b6df1ad14eaa13a03313",
                "retryable": false,
            }})
        );
    }
}
