//! # labchat-domain
//!
//! The pure core of labchat, a real-time chat server for the rooms of a university lab's
//! *requests* (orders placed by teachers). This crate is synchronous and free of I/O: it has no
//! async runtime, no database driver, no websocket and no wire format. Other teams reuse it on
//! its own, so everything here is documented as public API.
//!
//! What lives here:
//! - validated identifiers: [`RequestId`] and [`MessageId`] (12-byte Mongo-style object ids,
//!   written as 24 lowercase hex digits), [`UserId`], [`ClientMessageId`];
//! - the principal: [`User`] with its [`Role`];
//! - entities: [`Request`], [`Message`] with its [`Receipt`]s and its position in the room,
//!   [`Seq`] (1, 2, 3, … per room, assigned by the store);
//! - the authorization rule: [`Request::authorize`];
//! - every pure decision: message text validation ([`MessageText::parse`]), receipt marking
//!   ([`Message::mark`], [`ReceiptKind`]), history paging in seq order ([`HistoryQuery`], [`HistoryPage`]),
//!   idempotent sends ([`IdempotencyKey`], [`Message::repeats`]), editing and deleting
//!   ([`Message::edit`], [`Message::delete`]), and what a reconnecting client missed on the
//!   messages it holds ([`CatchUp`]);
//! - one way to build a message: [`Message::new`] for one being posted, [`Message::restore`] for
//!   one read back (its receipts and text are private, so the rules hold for every value);
//! - the events a room emits ([`RoomEvent`]) and what each means for ordering, inboxes and
//!   audiences ([`RoomEvent::placement`], [`RoomEvent::inbox_effect`], [`RoomEvent::hidden_from`]).
//!
//! ```
//! use labchat_domain::{Request, RequestId, Role, User, UserId};
//!
//! let request = Request::new(
//!     RequestId::parse("6751b6df1ad14eaa13a03313").unwrap(),
//!     UserId::parse("teacher-1").unwrap(),
//! );
//! let creator = User::new(UserId::parse("teacher-1").unwrap(), Role::Teacher);
//! let other = User::new(UserId::parse("teacher-2").unwrap(), Role::Teacher);
//! let lab = User::new(UserId::parse("lab-7").unwrap(), Role::Lab);
//! assert!(request.authorize(&creator).is_ok());
//! assert!(request.authorize(&lab).is_ok());
//! assert!(request.authorize(&other).is_err());
//! ```
//!
//! ## Feature `serde`
//!
//! Off by default. It adds `Serialize` and `Deserialize` (serde) to [`RoomEvent`] and every type
//! it holds, so an adapter can carry events in any serde format without a copy of each event in
//! its own types (the Redis backplane does). Deserializing validates exactly as the constructors
//! do: a value the domain would refuse is a deserialization error carrying the constructor's
//! error, never a silently built invalid value. Unknown fields are ignored; an unknown event
//! type is an error. The representation, stable and compact:
//!
//! | Type | Form | Read through |
//! |---|---|---|
//! | [`RequestId`], [`MessageId`], [`ObjectIdBytes`] | string, 24 lowercase hex digits | `parse` (either case) |
//! | [`UserId`], [`ClientMessageId`] | string, verbatim | `parse` |
//! | [`MessageText`] | string, verbatim | [`MessageText::restore`]: not blank; the length limit is the sender's concern |
//! | [`Role`] | `"TEACHER"` or `"LAB"` | [`Role::parse`] |
//! | [`Seq`] | integer, 1 or more | [`Seq::new`] |
//! | [`Timestamp`] | integer, milliseconds since the Unix epoch | any `i64` |
//! | [`Receipt`], [`User`] | `{"user","at"}`, `{"id","role"}` | each field |
//! | [`Message`] | object ([`MessageRecord`]), fields in camelCase; `seq`, `text` (absent on a tombstone), `clientMessageId`, `editedAt`, `deletedAt` and `deletedBy` left out when absent, `deliveredTo` and `readBy` when empty | [`Message::restore`]: a text or a whole deletion, never both; receipt lists repaired |
//! | [`RoomEvent`] | `{"type":"<variant in camelCase>","data":…}`: a struct variant's fields in camelCase, a newtype variant's value as is | each field; the receipt events' `messages` must not be empty |
//!
//! For example, in JSON:
//!
//! ```text
//! {"type":"read","data":{"requestId":"6751b6df1ad14eaa13a03313","userId":"lab-7",
//!  "messages":["6751b6df1ad14eaa13a03399"],"at":1700000000123}}
//! {"type":"messagePosted","data":{"id":"6751b6df1ad14eaa13a03399","requestId":"6751b6df1ad14eaa13a03313",
//!  "seq":42,"senderId":"teacher-7","senderRole":"TEACHER","text":"hello","createdAt":1700000000123}}
//! ```
//!
//! A new `RoomEvent` variant gets its form from the derive, as long as the types it holds have one.

#![warn(missing_docs)]

mod catch_up;
mod event;
mod history;
mod ids;
mod inbox;
mod message;
mod request;
mod seq;
#[cfg(feature = "serde")]
mod serde_impls;
#[cfg(test)]
#[cfg(feature = "serde")]
#[path = "serde_tests.rs"]
mod serde_tests;
mod text;
mod time;
mod user;

pub use catch_up::{CATCH_UP_MARGIN_MILLIS, CatchUp};
pub use event::{InboxEffect, Member, Placement, RoomEvent, RoomEventKind};
pub use history::{Cursor, HistoryLimit, HistoryLimitError, HistoryPage, HistoryQuery};
pub use ids::{
    ClientMessageId, ClientMessageIdError, IdError, MessageId, ObjectIdBytes, RequestId, UserId, UserIdError,
};
pub use inbox::{
    InboxCursor, InboxCursorError, InboxKey, InboxLimit, InboxLimitError, InboxPage, InboxQuery, InboxRow, Unread,
    select_page,
};
pub use message::{
    DeleteRefused, Deletion, EditRefused, IdempotencyKey, InvalidMessage, MarkOutcome, Message, MessageRecord,
    NewMessage, Receipt, ReceiptKind,
};
pub use request::{AccessDenied, Request};
pub use seq::{Seq, SeqError};
pub use text::{MessageText, MessageTextError};
pub use time::Timestamp;
pub use user::{Role, RoleError, User};
