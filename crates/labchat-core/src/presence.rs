//! The presence port: who is in a room across every node, and the typing throttle.

use async_trait::async_trait;
pub use labchat_domain::Member;
use labchat_domain::{RequestId, User, UserId};

/// The most members a page holds ([`Presence::members`]): the members a `joinRoom` reply carries,
/// and a client pages on from there.
pub const MEMBERS_PAGE: usize = 100;

/// A page of a room's members ([`Presence::members`]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MembersPage {
    /// The members after the page's cursor, in the byte order of their user ids, each once.
    pub members: Vec<Member>,
    /// How many users are present in the room in all (on every node), not only on this page.
    pub count: usize,
    /// Whether members follow the last one of this page: the next page starts after it.
    pub has_more: bool,
}

impl MembersPage {
    /// The page of at most `limit` members taken from `after_cursor`, the room's members after
    /// the page's cursor in the byte order of their user ids (each once; only the first
    /// `limit + 1` are read, the last of them to tell whether more follow), in a room of `count`
    /// members in all: the contract of [`Presence::members`], for a backend that reads a range
    /// of its ordered members.
    pub fn from_ordered(after_cursor: impl IntoIterator<Item = Member>, count: usize, limit: usize) -> Self {
        let mut rest = after_cursor.into_iter();
        let members = rest.by_ref().take(limit).collect();
        Self { members, count, has_more: rest.next().is_some() }
    }

    /// The page of `all` (each user once, in any order) after `after`, of at most `limit`
    /// members: the contract of [`Presence::members`] over a room's full, unordered list.
    pub fn select(mut all: Vec<Member>, after: Option<&UserId>, limit: usize) -> Self {
        let count = all.len();
        all.retain(|m| after.is_none_or(|a| m.user_id > *a));
        all.sort_by(|x, y| x.user_id.cmp(&y.user_id));
        Self::from_ordered(all, count, limit)
    }

    /// The user id the next page starts after, when there is a next page.
    pub fn next(&self) -> Option<&UserId> {
        if self.has_more { self.members.last().map(|m| &m.user_id) } else { None }
    }
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

    /// A page of the users present in `room` on any node: those whose user id comes after
    /// `after` in byte order (all with `None`), sorted that way, each once, at most `limit`
    /// (zero: none, the count alone), with how many users are present in all and whether more
    /// follow the page. Paging with `after` set to the last member of the previous page lists
    /// every user present throughout exactly once; a user who joins or leaves meanwhile may
    /// or may not be listed (the room's presence events tell the change). Costs at most
    /// O(log n + limit) per call in both implementations, never a pass over the whole room.
    async fn members(&self, room: RequestId, after: Option<UserId>, limit: usize)
    -> Result<MembersPage, PresenceError>;

    /// Whether `user`'s typing in `room` may be broadcast now: `true` at most once per
    /// [`TYPING_INTERVAL`] per user and room, across every node (the call that returns `true`
    /// starts the interval).
    async fn may_type(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError>;
}
