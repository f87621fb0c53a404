//! History pages: where a page starts ([`Cursor`]), how long it is ([`HistoryLimit`]), and the
//! page itself.

use crate::{Message, MessageId};

/// The configured maximum was out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a history limit must be between 1 and {max}, got {got}", max = HistoryLimit::MAX)]
pub struct HistoryLimitError {
    /// The refused value.
    pub got: usize,
}

/// How many messages one history page may hold: 1 to [`HistoryLimit::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct HistoryLimit(usize);

impl HistoryLimit {
    /// The largest page.
    pub const MAX: usize = 10_000;
    /// The default page size.
    pub const DEFAULT: Self = Self(200);

    /// Validates a page size.
    pub fn new(n: usize) -> Result<Self, HistoryLimitError> {
        if (1..=Self::MAX).contains(&n) { Ok(Self(n)) } else { Err(HistoryLimitError { got: n }) }
    }

    /// The page size.
    pub const fn get(self) -> usize {
        self.0
    }

    /// The smaller of two limits.
    pub fn min(self, other: Self) -> Self {
        Ord::min(self, other)
    }
}

/// Where a history page starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cursor {
    /// The newest messages of the room.
    Latest,
    /// The oldest messages strictly after this one (catching up after a reconnect). The id must
    /// be a message of the room.
    After(MessageId),
    /// The newest messages strictly before this one (scrolling back). The id must be a message
    /// of the room.
    Before(MessageId),
}

/// A request for one page of a room's history.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HistoryQuery {
    /// Where the page starts.
    pub cursor: Cursor,
    /// The most messages to return.
    pub limit: HistoryLimit,
}

/// One page of a room's history, oldest message first.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct HistoryPage {
    /// The messages, oldest (lowest [`Message::seq`]) first.
    pub messages: Vec<Message>,
    /// For [`Cursor::Latest`] and [`Cursor::Before`]: older messages exist before the page.
    /// For [`Cursor::After`]: newer messages exist after the page.
    pub has_more: bool,
}

impl HistoryQuery {
    /// The paging decision, over all of a room's messages in room order (ascending
    /// [`Message::seq`], oldest first): selects the page this query asks for, or `None` when the
    /// cursor's id is not one of `in_seq_order` (not a message of this room). Stores that cannot
    /// push the query down use it as it is; the others must return the same page.
    pub fn select(&self, in_seq_order: &[Message]) -> Option<HistoryPage> {
        let n = self.limit.get();
        let at = |id: MessageId| in_seq_order.iter().position(|m| m.id == id);
        let (slice, has_more) = match self.cursor {
            Cursor::Latest => tail(in_seq_order, n),
            Cursor::Before(id) => tail(&in_seq_order[..at(id)?], n),
            Cursor::After(id) => {
                let rest = &in_seq_order[at(id)? + 1..];
                (&rest[..rest.len().min(n)], rest.len() > n)
            }
        };
        Some(HistoryPage { messages: slice.to_vec(), has_more })
    }
}

fn tail(s: &[Message], n: usize) -> (&[Message], bool) {
    let start = s.len().saturating_sub(n);
    (&s[start..], start > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageText, NewMessage, RequestId, Role, Seq, Timestamp, UserId};

    /// Messages 1..=n in room order; ids do not sort like seqs (as with several nodes).
    fn msgs(n: u8) -> Vec<Message> {
        (1..=n)
            .map(|i| {
                Message::new(NewMessage {
                    id: id(i),
                    request_id: RequestId::parse(&format!("{:024x}", 999)).unwrap(),
                    sender_id: UserId::parse("u").unwrap(),
                    sender_role: Role::Lab,
                    text: MessageText::parse(format!("m{i}"), 100).unwrap(),
                    created_at: Timestamp::from_unix_millis(i.into()),
                    client_message_id: None,
                })
                .with_seq(Seq::new(i.into()).unwrap())
            })
            .collect()
    }
    fn id(i: u8) -> MessageId {
        MessageId::parse(&format!("{:024x}", 100 - i)).unwrap()
    }

    #[test]
    fn paging_table() {
        let all = msgs(5);
        let lim = |n| HistoryLimit::new(n).unwrap();
        let cases = [
            (Cursor::Latest, 10, vec![1, 2, 3, 4, 5], false),
            (Cursor::Latest, 5, vec![1, 2, 3, 4, 5], false),
            (Cursor::Latest, 2, vec![4, 5], true),
            (Cursor::After(id(2)), 10, vec![3, 4, 5], false),
            (Cursor::After(id(2)), 2, vec![3, 4], true),
            (Cursor::After(id(5)), 2, vec![], false),
            (Cursor::Before(id(4)), 2, vec![2, 3], true),
            (Cursor::Before(id(3)), 2, vec![1, 2], false),
            (Cursor::Before(id(1)), 2, vec![], false),
        ];
        for (cursor, n, want, more) in cases {
            let page = HistoryQuery { cursor, limit: lim(n) }.select(&all).unwrap();
            let got: Vec<u64> = page.messages.iter().filter_map(|m| m.seq).map(Seq::get).collect();
            assert_eq!((got, page.has_more), (want, more), "{cursor:?} limit {n}");
        }
    }

    #[test]
    fn a_cursor_outside_the_room_selects_nothing() {
        let all = msgs(5);
        let limit = HistoryLimit::DEFAULT;
        for cursor in [Cursor::After(id(0)), Cursor::Before(id(6)), Cursor::After(id(9))] {
            assert_eq!(HistoryQuery { cursor, limit }.select(&all), None, "{cursor:?}");
        }
        let empty = HistoryQuery { cursor: Cursor::Latest, limit }.select(&[]);
        assert_eq!(empty, Some(HistoryPage::default()));
    }

    #[test]
    fn limits_are_bounded() {
        assert!(HistoryLimit::new(0).is_err());
        assert!(HistoryLimit::new(HistoryLimit::MAX + 1).is_err());
        assert_eq!(HistoryLimit::new(7).unwrap().get(), 7);
    }
}
