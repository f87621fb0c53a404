//! # labchat-core
//!
//! The seams of labchat and the use cases that orchestrate them.
//!
//! Ports (traits, implemented by adapters):
//! - [`ChatStore`]: where requests are looked up and messages and receipts are kept
//!   (in memory in `labchat-memory`, MongoDB in `labchat-store-mongo`);
//! - [`Broadcaster`] and [`RoomSink`]: who hears a room's events (in one process in
//!   `labchat-memory`; across nodes through Redis in `labchat-broadcast-redis`);
//! - [`Presence`]: who is in which room across nodes, and the typing throttle (in one process in
//!   `labchat-memory`; across nodes through Redis in `labchat-broadcast-redis`);
//! - [`Clock`]: what time it is.
//!
//! Use cases ([`Chat`]): join, leave, post, mark (delivered / read), history, typing and the inbox
//! (a page of it, and live updates through the node's [`InboxHub`]). They authorize
//! every call with the domain rule (through a short-lived cache of requests), keep each room's
//! events in one order, and report failures with types that list what each operation can
//! return ([`ChatError`], [`JoinError`], [`LeaveError`]).
//!
//! With the `mocks` feature, every port has a `mockall` mock (`MockChatStore`, `MockBroadcaster`,
//! `MockRoomSink`, `MockClock`, `MockPresence`, `MockInboxListener`, `MockInboxSink`) for interaction
//! tests. `examples/testing_use_cases.rs` shows a downstream test with the mocks and with the
//! in-memory adapters of `labchat-memory`.

#![warn(missing_docs)]

mod access;
mod broadcast;
mod chat;
mod clock;
mod errors;
mod hooked;
mod idgen;
mod inbox;
mod presence;
mod store;

pub use broadcast::{BackplaneStatus, BroadcastError, Broadcaster, Published, RoomSink, SinkId};
pub use chat::{
    CaughtUp, Chat, DEFAULT_ACCESS_TTL, DEFAULT_EDIT_WINDOW, DEFAULT_JOIN_REUSE, JoinAdmission, Joined,
    MAX_JOIN_RETRY_AFTER, Posted, PresenceBurst,
};
pub use clock::{Clock, SystemClock};
pub use errors::{ChatError, FailureKind, JoinError, LeaveError};
pub use hooked::{Hooked, StoreCall, StoreFuture, StoreHook};
pub use idgen::MessageIdGenerator;
pub use inbox::{InboxHub, InboxListener, InboxNotice, InboxSink};
pub use presence::{MEMBERS_PAGE, Member, MembersPage, Presence, PresenceError, TYPING_INTERVAL};
pub use store::{ChatStore, Inserted, Marked, StoreError};

#[cfg(any(test, feature = "mocks"))]
pub use broadcast::{MockBroadcaster, MockRoomSink};
#[cfg(any(test, feature = "mocks"))]
pub use clock::MockClock;
#[cfg(any(test, feature = "mocks"))]
pub use inbox::{MockInboxListener, MockInboxSink};
#[cfg(any(test, feature = "mocks"))]
pub use presence::MockPresence;
#[cfg(any(test, feature = "mocks"))]
pub use store::MockChatStore;
