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
    /// The oldest messages strictly after this one (catching up after a reconnect).
    After(MessageId),
    /// The newest messages strictly before this one (scrolling back).
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
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// For [`Cursor::Latest`] and [`Cursor::Before`]: older messages exist before the page.
    /// For [`Cursor::After`]: newer messages exist after the page.
    pub has_more: bool,
}

impl HistoryQuery {
    /// The paging decision, over all of a room's messages sorted by id (oldest first):
    /// selects the page this query asks for. Stores that cannot push the query down use it
    /// as it is; the others must return the same page.
    pub fn select(&self, sorted: &[Message]) -> HistoryPage {
        let n = self.limit.get();
        let (slice, has_more) = match self.cursor {
            Cursor::Latest => tail(sorted, n),
            Cursor::Before(id) => tail(&sorted[..sorted.partition_point(|m| m.id < id)], n),
            Cursor::After(id) => {
                let rest = &sorted[sorted.partition_point(|m| m.id <= id)..];
                (&rest[..rest.len().min(n)], rest.len() > n)
            }
        };
        HistoryPage { messages: slice.to_vec(), has_more }
    }
}

fn tail(s: &[Message], n: usize) -> (&[Message], bool) {
    let start = s.len().saturating_sub(n);
    (&s[start..], start > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageText, RequestId, Role, Timestamp, UserId};

    fn msgs(n: u8) -> Vec<Message> {
        (1..=n)
            .map(|i| Message {
                id: MessageId::parse(&format!("{i:024x}")).unwrap(),
                request_id: RequestId::parse(&format!("{:024x}", 999)).unwrap(),
                sender_id: UserId::parse("u").unwrap(),
                sender_role: Role::Lab,
                text: MessageText::parse(format!("m{i}"), 100).unwrap(),
                created_at: Timestamp::from_unix_millis(i.into()),
                client_message_id: None,
                delivered_to: vec![],
                read_by: vec![],
            })
            .collect()
    }
    fn id(i: u8) -> MessageId {
        MessageId::parse(&format!("{i:024x}")).unwrap()
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
            (Cursor::After(id(0)), 5, vec![1, 2, 3, 4, 5], false),
            (Cursor::Before(id(4)), 2, vec![2, 3], true),
            (Cursor::Before(id(3)), 2, vec![1, 2], false),
            (Cursor::Before(id(1)), 2, vec![], false),
        ];
        for (cursor, n, want, more) in cases {
            let page = HistoryQuery { cursor, limit: lim(n) }.select(&all);
            let got: Vec<u8> = page.messages.iter().map(|m| m.id.object_id().bytes()[11]).collect();
            assert_eq!((got, page.has_more), (want, more), "{cursor:?} limit {n}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert!(HistoryLimit::new(0).is_err());
        assert!(HistoryLimit::new(HistoryLimit::MAX + 1).is_err());
        assert_eq!(HistoryLimit::new(7).unwrap().get(), 7);
    }
}
