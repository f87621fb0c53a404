//! The presence port: who is in a room across every node, and the typing throttle.

use async_trait::async_trait;
use labchat_domain::{RequestId, Role, User, UserId};

/// A user present in a room: at least one of their connections, on some node, joined it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Member {
    /// Who.
    pub user_id: UserId,
    /// In which role.
    pub role: Role,
}

/// How long a user's typing in a room silences their later typing there
/// ([`Presence::may_type`]).
pub const TYPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The presence backend failed (e.g. Redis is unreachable). The use cases never fail a join, a
/// leave or a post for it: they log it and fall back to what this node knows.
#[derive(Debug, thiserror::Error)]
#[error("presence failed: {0}")]
pub struct PresenceError(pub String);

/// Who is present in which room, across every node, and the typing throttle.
///
/// The use cases count a node's own connections per room and user, and call this port only on
/// a user's first local connection to a room ([`Presence::enter`]) and after their last one
/// ([`Presence::exit`]), so each node holds at most one entry per room and user. The in-process
/// implementation (`labchat-memory`) serves one node; the Redis one (`labchat-broadcast-redis`)
/// keeps entries with a time to live that their node refreshes, so the entries of a node that
/// dies expire and another node announces those users' departure.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records that `user` has a connection in `room` on this node. Returns `true` when the user
    /// had none anywhere before (the caller announces `memberJoined`). Entering twice is the
    /// same as once (the second returns `false`).
    async fn enter(&self, room: RequestId, user: &User) -> Result<bool, PresenceError>;

    /// Records that `user` has no connection left in `room` on this node. Returns `true` when the
    /// user has none anywhere now (the caller announces `memberLeft`); exiting a room not entered
    /// returns `false`.
    async fn exit(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError>;

    /// The users present in `room` on any node, each once, in no particular order.
    async fn members(&self, room: RequestId) -> Result<Vec<Member>, PresenceError>;

    /// Whether `user`'s typing in `room` may be broadcast now: `true` at most once per
    /// [`TYPING_INTERVAL`] per user and room, across every node (the call that returns `true`
    /// starts the interval).
    async fn may_type(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError>;
}
