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
//!   idempotent sends ([`IdempotencyKey`]);
//! - the events a room emits ([`RoomEvent`]).
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

#![warn(missing_docs)]

mod event;
mod history;
mod ids;
mod inbox;
mod message;
mod request;
mod seq;
mod time;
mod user;

pub use event::{RoomEvent, RoomEventKind};
pub use history::{Cursor, HistoryLimit, HistoryLimitError, HistoryPage, HistoryQuery};
pub use ids::{
    ClientMessageId, ClientMessageIdError, IdError, MessageId, ObjectIdBytes, RequestId, UserId, UserIdError,
};
pub use inbox::{
    InboxCursor, InboxCursorError, InboxKey, InboxLimit, InboxLimitError, InboxPage, InboxQuery, InboxRow, Unread,
    select_page,
};
pub use message::{IdempotencyKey, MarkOutcome, Message, MessageText, MessageTextError, Receipt, ReceiptKind};
pub use request::{AccessDenied, Request};
pub use seq::{Seq, SeqError};
pub use time::Timestamp;
pub use user::{Role, RoleError, User};
