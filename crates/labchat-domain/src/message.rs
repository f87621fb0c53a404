use crate::{ClientMessageId, MessageId, RequestId, Role, Seq, Timestamp, UserId};

/// Why a message text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageTextError {
    /// Nothing but white space.
    #[error("message must not be empty")]
    Empty,
    /// Longer than the configured maximum, in characters.
    #[error("message must be at most {max} characters, got {len}")]
    TooLong {
        /// The text's length in characters.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// The text of a chat message: not empty after trimming, and at most a configured number of
/// characters (Unicode scalar values). The text is stored exactly as sent, untrimmed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageText(String);

impl MessageText {
    /// The default maximum length, in characters.
    pub const DEFAULT_MAX_CHARS: usize = 4000;

    /// Validates `text` against `max_chars`.
    pub fn parse(text: impl Into<String>, max_chars: usize) -> Result<Self, MessageTextError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(MessageTextError::Empty);
        }
        // Cheap bound first: a string of at most max bytes has at most max chars.
        if text.len() > max_chars {
            let len = text.chars().count();
            if len > max_chars {
                return Err(MessageTextError::TooLong { len, max: max_chars });
            }
        }
        Ok(Self(text))
    }

    /// Rebuilds a text that was validated before it was stored, without re-checking its length
    /// (the limit may have changed since). Empty text is still refused.
    pub fn restore(text: impl Into<String>) -> Result<Self, MessageTextError> {
        Self::parse(text, usize::MAX)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
/// All fields are validated types, so any value is a valid message; receipts are kept in the
/// order they were marked, one per user and kind. A room's messages are ordered by [`Message::seq`],
/// which the store assigns.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "camelCase"))]
pub struct Message {
    /// The message's id, unique across rooms. Ids are made by the node that takes the message, so
    /// ids of one room made on different nodes need not sort like [`Message::seq`]: order by seq.
    pub id: MessageId,
    /// The request whose room the message belongs to.
    pub request_id: RequestId,
    /// The message's position in its room: `None` until a store assigned it (a message being
    /// posted); every message a store returns has one.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub seq: Option<Seq>,
    /// Who sent it (from the sender's token, never from the payload).
    pub sender_id: UserId,
    /// The sender's role when they sent it.
    pub sender_role: Role,
    /// The text.
    pub text: MessageText,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The sender's idempotency id, when one was given.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub client_message_id: Option<ClientMessageId>,
    /// Users the message was delivered to.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Vec::is_empty"))]
    pub delivered_to: Vec<Receipt>,
    /// Users who read the message.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Vec::is_empty"))]
    pub read_by: Vec<Receipt>,
}

impl Message {
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
    /// message, which must be refused rather than answered with the stored one.
    pub fn repeats(&self, stored: &Message) -> bool {
        self.idempotency_key().is_some_and(|k| stored.idempotency_key() == Some(k)) && self.text == stored.text
    }

    /// Whether `user` may mark this message of `request` with a receipt at all: the message
    /// belongs to `request` and was not sent by `user`. Ids of other requests are never touched.
    pub fn accepts_receipt_from(&self, request: RequestId, user: &UserId) -> bool {
        self.request_id == request && &self.sender_id != user
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
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn rid(n: u8) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    fn message(sender: &str) -> Message {
        Message {
            id: MessageId::parse("6751b6df1ad14eaa13a03313").unwrap(),
            request_id: rid(1),
            seq: None,
            sender_id: uid(sender),
            sender_role: Role::Teacher,
            text: MessageText::parse("hi", 10).unwrap(),
            created_at: Timestamp::from_unix_millis(1),
            client_message_id: None,
            delivered_to: vec![],
            read_by: vec![],
        }
    }

    #[test]
    fn message_text_rules() {
        let cases: [(&str, usize, Result<(), MessageTextError>); 7] = [
            ("hello", 4000, Ok(())),
            ("", 4000, Err(MessageTextError::Empty)),
            (" \n\t ", 4000, Err(MessageTextError::Empty)),
            ("abcd", 4, Ok(())),
            ("abcde", 4, Err(MessageTextError::TooLong { len: 5, max: 4 })),
            ("éééé", 4, Ok(())),
            ("ééééé", 4, Err(MessageTextError::TooLong { len: 5, max: 4 })),
        ];
        for (text, max, want) in cases {
            assert_eq!(MessageText::parse(text, max).map(|_| ()), want, "{text:?} max {max}");
        }
        assert_eq!(MessageText::parse("  padded  ", 100).unwrap().as_str(), "  padded  ");
    }

    #[test]
    fn receipt_decisions() {
        let t = Timestamp::from_unix_millis(5);
        struct Case {
            name: &'static str,
            request: RequestId,
            user: &'static str,
            kind: ReceiptKind,
            pre: fn(&mut Message),
            want: MarkOutcome,
        }
        let none = MarkOutcome::default();
        let cases = [
            Case {
                name: "deliver to other",
                request: rid(1),
                user: "b",
                kind: ReceiptKind::Delivered,
                pre: |_| {},
                want: MarkOutcome { delivered: true, read: false },
            },
            Case {
                name: "read implies delivered",
                request: rid(1),
                user: "b",
                kind: ReceiptKind::Read,
                pre: |_| {},
                want: MarkOutcome { delivered: true, read: true },
            },
            Case {
                name: "sender cannot mark own",
                request: rid(1),
                user: "a",
                kind: ReceiptKind::Read,
                pre: |_| {},
                want: none,
            },
            Case {
                name: "other request untouched",
                request: rid(2),
                user: "b",
                kind: ReceiptKind::Read,
                pre: |_| {},
                want: none,
            },
            Case {
                name: "already delivered",
                request: rid(1),
                user: "b",
                kind: ReceiptKind::Delivered,
                pre: |m| {
                    m.mark(rid(1), &uid("b"), ReceiptKind::Delivered, Timestamp::from_unix_millis(1));
                },
                want: none,
            },
            Case {
                name: "read after delivered",
                request: rid(1),
                user: "b",
                kind: ReceiptKind::Read,
                pre: |m| {
                    m.mark(rid(1), &uid("b"), ReceiptKind::Delivered, Timestamp::from_unix_millis(1));
                },
                want: MarkOutcome { delivered: false, read: true },
            },
            Case {
                name: "already read",
                request: rid(1),
                user: "b",
                kind: ReceiptKind::Read,
                pre: |m| {
                    m.mark(rid(1), &uid("b"), ReceiptKind::Read, Timestamp::from_unix_millis(1));
                },
                want: none,
            },
        ];
        for c in cases {
            let mut m = message("a");
            (c.pre)(&mut m);
            let before = m.clone();
            let got = m.mark(c.request, &uid(c.user), c.kind, t);
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(m.delivered_to.len(), before.delivered_to.len() + usize::from(got.delivered), "{}", c.name);
            assert_eq!(m.read_by.len(), before.read_by.len() + usize::from(got.read), "{}", c.name);
        }
    }

    #[test]
    fn idempotency_key_only_with_client_id() {
        let mut m = message("a");
        assert_eq!(m.idempotency_key(), None);
        m.client_message_id = Some(ClientMessageId::parse("c1").unwrap());
        let k = m.idempotency_key().unwrap();
        assert_eq!((k.request_id, k.sender_id.as_str(), k.client_message_id.as_str()), (rid(1), "a", "c1"));
    }

    #[test]
    fn a_repeat_has_the_same_key_and_exactly_the_same_text() {
        let with_id = |text: &str, cid: Option<&str>| {
            let mut m = message("a");
            m.text = MessageText::parse(text, 100).unwrap();
            m.client_message_id = cid.map(|c| ClientMessageId::parse(c).unwrap());
            m
        };
        let stored = with_id("hello", Some("c1"));
        assert!(with_id("hello", Some("c1")).repeats(&stored));
        assert!(!with_id("hello ", Some("c1")).repeats(&stored), "untrimmed: a space differs");
        assert!(!with_id("Hello", Some("c1")).repeats(&stored));
        assert!(!with_id("hello", Some("c2")).repeats(&stored), "another key is no repeat");
        assert!(!with_id("hello", None).repeats(&with_id("hello", None)), "no key, no repeat");
    }
}
