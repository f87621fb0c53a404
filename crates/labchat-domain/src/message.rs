//! Messages: how one is built, its receipts, and the edit and delete decisions.

mod record;

pub use record::{InvalidMessage, MessageRecord};

use crate::{ClientMessageId, MessageId, MessageText, RequestId, Role, Seq, Timestamp, User, UserId};

/// Which kind of receipt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReceiptKind {
    /// The message reached the user's device.
    Delivered,
    /// The user read the message. A read message counts as delivered too.
    Read,
}

/// One user's receipt of one message.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Receipt {
    /// Who received or read the message.
    pub user: UserId,
    /// When it was marked.
    pub at: Timestamp,
}

/// What [`Message::mark`] changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MarkOutcome {
    /// The message was newly marked as delivered to the user.
    pub delivered: bool,
    /// The message was newly marked as read by the user.
    pub read: bool,
}

/// A chat message of a request's room, with its receipts.
///
/// Built in one place: [`Message::new`] for a message being posted, [`Message::restore`] for
/// one read back from a store or a wire. The text, the edit and deletion marks and the receipt
/// lists are private, so the rules hold for every value: a message has its text or is a
/// tombstone (deleted: the text is gone, not hidden), and its receipts are kept in the order
/// they were marked, at most one per user and kind, every reader also counted as delivered. A
/// room's messages are ordered by [`Message::seq`], which the store assigns.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "MessageRecord", into = "MessageRecord")
)]
pub struct Message {
    /// The message's id, unique across rooms. Ids are made by the node that takes the message, so
    /// ids of one room made on different nodes need not sort like [`Message::seq`]: order by seq.
    pub id: MessageId,
    /// The request whose room the message belongs to.
    pub request_id: RequestId,
    /// The message's position in its room: `None` until a store assigned it (a message being
    /// posted); every message a store returns has one.
    pub seq: Option<Seq>,
    /// Who sent it (from the sender's token, never from the payload).
    pub sender_id: UserId,
    /// The sender's role when they sent it.
    pub sender_role: Role,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The sender's idempotency id, when one was given.
    pub client_message_id: Option<ClientMessageId>,
    body: Body,
    delivered_to: Vec<Receipt>,
    read_by: Vec<Receipt>,
}

/// A message's text, or the mark that it was deleted.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Body {
    Text { text: MessageText, edited_at: Option<Timestamp> },
    Deleted(Deletion),
}

/// Who deleted a message, and when: what a tombstone keeps.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Deletion {
    /// When it was deleted.
    pub at: Timestamp,
    /// Who deleted it: the sender, or a LAB user moderating the room.
    pub by: UserId,
}

/// A message being posted, before a store numbers it ([`Message::new`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewMessage {
    /// See [`Message::id`].
    pub id: MessageId,
    /// See [`Message::request_id`].
    pub request_id: RequestId,
    /// See [`Message::sender_id`].
    pub sender_id: UserId,
    /// See [`Message::sender_role`].
    pub sender_role: Role,
    /// The text.
    pub text: MessageText,
    /// See [`Message::created_at`].
    pub created_at: Timestamp,
    /// See [`Message::client_message_id`].
    pub client_message_id: Option<ClientMessageId>,
}

impl Message {
    /// A message being posted: no seq yet, no receipts, not edited.
    pub fn new(message: NewMessage) -> Self {
        let NewMessage { id, request_id, sender_id, sender_role, text, created_at, client_message_id } = message;
        Self {
            id,
            request_id,
            seq: None,
            sender_id,
            sender_role,
            created_at,
            client_message_id,
            body: Body::Text { text, edited_at: None },
            delivered_to: Vec::new(),
            read_by: Vec::new(),
        }
    }

    /// The same message with its seq set (a store numbered it).
    #[must_use]
    pub fn with_seq(mut self, seq: Seq) -> Self {
        self.seq = Some(seq);
        self
    }

    /// The text, or `None` for a deleted message (a tombstone).
    pub fn text(&self) -> Option<&MessageText> {
        match &self.body {
            Body::Text { text, .. } => Some(text),
            Body::Deleted(_) => None,
        }
    }

    /// When the text was last edited; `None` if it never was, or the message was deleted.
    pub fn edited_at(&self) -> Option<Timestamp> {
        match &self.body {
            Body::Text { edited_at, .. } => *edited_at,
            Body::Deleted(_) => None,
        }
    }

    /// Who deleted the message and when; `None` while it has its text.
    pub fn deletion(&self) -> Option<&Deletion> {
        match &self.body {
            Body::Text { .. } => None,
            Body::Deleted(d) => Some(d),
        }
    }

    /// The users the message was delivered to, in the order they were marked, one each.
    pub fn delivered_to(&self) -> &[Receipt] {
        &self.delivered_to
    }

    /// The users who read the message, in the order they were marked, one each.
    pub fn read_by(&self) -> &[Receipt] {
        &self.read_by
    }

    /// The key under which a send with a client message id is deduplicated, if it has one.
    pub fn idempotency_key(&self) -> Option<IdempotencyKey> {
        self.client_message_id.as_ref().map(|c| IdempotencyKey {
            request_id: self.request_id,
            sender_id: self.sender_id.clone(),
            client_message_id: c.clone(),
        })
    }

    /// The idempotency decision: whether this send repeats `stored`, the message already kept
    /// under the same [`IdempotencyKey`]. A repeat has the same text, compared exactly (every
    /// character, untrimmed); a different text means the client reused its id for another
    /// message, which must be refused rather than answered with the stored one. A stored message
    /// edited or deleted since has lost the text it was sent with: a retry of its send is taken as
    /// a repeat (answered with the message as it is now), never refused.
    pub fn repeats(&self, stored: &Message) -> bool {
        let edited_since = stored.edited_at().is_some() || stored.deletion().is_some();
        self.idempotency_key().is_some_and(|k| stored.idempotency_key() == Some(k))
            && (edited_since || self.text() == stored.text())
    }

    /// Whether `user` may mark this message of `request` with a receipt at all: the message
    /// belongs to `request` and was not sent by `user`. Ids of other requests are never touched.
    /// A deleted message takes no new receipt (it has nothing left to read).
    pub fn accepts_receipt_from(&self, request: RequestId, user: &UserId) -> bool {
        self.request_id == request && &self.sender_id != user && self.deletion().is_none()
    }

    /// Whether the message counts as unread for `user`: not deleted, not sent by them, not read
    /// by them. The one rule behind every unread count and `firstUnreadId`.
    pub fn is_unread_for(&self, user: &UserId) -> bool {
        self.deletion().is_none() && &self.sender_id != user && !self.has_receipt(ReceiptKind::Read, user)
    }

    /// Whether `user` already has a receipt of `kind` on this message.
    pub fn has_receipt(&self, kind: ReceiptKind, user: &UserId) -> bool {
        let list = match kind {
            ReceiptKind::Delivered => &self.delivered_to,
            ReceiptKind::Read => &self.read_by,
        };
        list.iter().any(|r| &r.user == user)
    }

    /// The receipt decision: marks this message as `kind` for `user` at `at`, if allowed
    /// ([`Self::accepts_receipt_from`]) and not marked yet. Marking as read also marks as
    /// delivered when it was not. Returns what was newly marked; marking twice changes nothing.
    pub fn mark(&mut self, request: RequestId, user: &UserId, kind: ReceiptKind, at: Timestamp) -> MarkOutcome {
        let mut outcome = MarkOutcome::default();
        if !self.accepts_receipt_from(request, user) {
            return outcome;
        }
        if !self.has_receipt(ReceiptKind::Delivered, user) {
            self.delivered_to.push(Receipt { user: user.clone(), at });
            outcome.delivered = true;
        }
        if kind == ReceiptKind::Read && !self.has_receipt(ReceiptKind::Read, user) {
            self.read_by.push(Receipt { user: user.clone(), at });
            outcome.read = true;
        }
        outcome
    }

    /// Adds a stored receipt, keeping the rules (see [`Message::restore`]).
    fn add(&mut self, kind: ReceiptKind, receipt: Receipt) {
        if receipt.user == self.sender_id || self.has_receipt(kind, &receipt.user) {
            return;
        }
        if kind == ReceiptKind::Read && !self.has_receipt(ReceiptKind::Delivered, &receipt.user) {
            self.delivered_to.push(receipt.clone());
        }
        match kind {
            ReceiptKind::Delivered => self.delivered_to.push(receipt),
            ReceiptKind::Read => self.read_by.push(receipt),
        }
    }

    /// The edit decision: replaces the text of this message of `request`, edited by `user` at
    /// `at`, if `user` sent it, it is not deleted, and `at` is within `window` of its sending.
    /// The text was validated by the caller ([`MessageText::parse`], the same limits as a send).
    /// Nothing changes when it is refused.
    pub fn edit(
        &mut self,
        request: RequestId,
        user: &UserId,
        text: MessageText,
        at: Timestamp,
        window: std::time::Duration,
    ) -> Result<(), EditRefused> {
        if self.request_id != request {
            return Err(EditRefused::NotInRoom);
        }
        if &self.sender_id != user {
            return Err(EditRefused::NotSender);
        }
        let Body::Text { edited_at, .. } = &self.body else {
            return Err(EditRefused::Deleted);
        };
        let age = at.unix_millis().saturating_sub(self.created_at.unix_millis());
        if u128::try_from(age).unwrap_or(0) > window.as_millis() {
            return Err(EditRefused::WindowPassed { window });
        }
        // Edits are kept in the order they are made: a clock that went back keeps the later mark.
        let at = edited_at.map_or(at, |prev| prev.max(at));
        self.body = Body::Text { text, edited_at: Some(at) };
        Ok(())
    }

    /// The delete decision: makes this message of `request` a tombstone, deleted by `user` at
    /// `at`, if `user` sent it or is a LAB user (moderation). The text is dropped, not hidden;
    /// the id, seq and receipts stay. Returns whether it was newly deleted: deleting a tombstone
    /// again changes nothing and is not refused (a retried delete succeeds).
    pub fn delete(&mut self, request: RequestId, user: &User, at: Timestamp) -> Result<bool, DeleteRefused> {
        if self.request_id != request {
            return Err(DeleteRefused::NotInRoom);
        }
        if user.id() != &self.sender_id && user.role() != Role::Lab {
            return Err(DeleteRefused::NotAllowed);
        }
        if self.deletion().is_some() {
            return Ok(false);
        }
        self.body = Body::Deleted(Deletion { at, by: user.id().clone() });
        Ok(true)
    }
}

/// Why [`Message::edit`] refused an edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditRefused {
    /// The message belongs to another room.
    #[error("no such message in this room")]
    NotInRoom,
    /// Only the sender may edit a message.
    #[error("only the sender may edit a message")]
    NotSender,
    /// A deleted message has no text to edit.
    #[error("the message was deleted")]
    Deleted,
    /// Too late: edits are allowed for a while after sending.
    #[error("a message may be edited only within {} s of sending", window.as_secs())]
    WindowPassed {
        /// The configured window.
        window: std::time::Duration,
    },
}

/// Why [`Message::delete`] refused a deletion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteRefused {
    /// The message belongs to another room.
    #[error("no such message in this room")]
    NotInRoom,
    /// Only the sender or a LAB user may delete a message.
    #[error("only the sender or a LAB user may delete a message")]
    NotAllowed,
}

/// What makes two sends "the same send": the same sender, in the same room, with the same
/// client message id. A store keeps at most one message per key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IdempotencyKey {
    /// The room.
    pub request_id: RequestId,
    /// The sender.
    pub sender_id: UserId,
    /// The client's id for the send.
    pub client_message_id: ClientMessageId,
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
