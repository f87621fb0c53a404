//! The inbox: the rooms a user may act on that hold messages, most recent activity first, each
//! with the user's unread count.

use std::cmp::Ordering;
use std::fmt;

use crate::{Message, MessageId, RequestId, Timestamp, UserId};

/// An inbox limit out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an inbox limit must be an integer from 1 to {max}, got {got}", max = InboxLimit::MAX)]
pub struct InboxLimitError {
    /// The refused value.
    pub got: u64,
}

/// How many rooms one inbox page may hold: 1 to [`InboxLimit::MAX`] (default
/// [`InboxLimit::DEFAULT`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct InboxLimit(usize);

impl InboxLimit {
    /// The largest page.
    pub const MAX: usize = 100;
    /// The page size when none is given.
    pub const DEFAULT: Self = Self(50);

    /// Validates a page size.
    pub fn new(n: u64) -> Result<Self, InboxLimitError> {
        match usize::try_from(n) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(InboxLimitError { got: n }),
        }
    }

    /// The page size.
    pub const fn get(self) -> usize {
        self.0
    }
}

impl Default for InboxLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A string that is not an inbox cursor this server could have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an inbox cursor: pass the `next` of a previous inbox reply unchanged")]
pub struct InboxCursorError;

/// Where an inbox page starts: strictly after the room with this activity time and id in the
/// inbox order (see [`InboxKey`]). Opaque to clients: [`InboxCursor::encode`] gives its only
/// valid string form, and [`InboxCursor::parse`] accepts nothing else.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InboxCursor(InboxKey);

/// The form's prefix: names the cursor's version, so another form can follow.
const CURSOR_PREFIX: &str = "i1.";

impl InboxCursor {
    /// The cursor after the room with this key.
    pub const fn after(key: InboxKey) -> Self {
        Self(key)
    }

    /// The key of the last room of the previous page.
    pub const fn key(&self) -> InboxKey {
        self.0
    }

    /// The cursor's string form: `i1.` then the activity time (milliseconds since the epoch, 16
    /// lowercase hex digits of its two's complement) and the request id (24 lowercase hex).
    pub fn encode(&self) -> String {
        let millis = u64::from_ne_bytes(self.0.last_activity_at.unix_millis().to_ne_bytes());
        format!("{CURSOR_PREFIX}{millis:016x}{}", self.0.request_id.to_hex())
    }

    /// Reads a cursor from its string form: only what [`InboxCursor::encode`] produces (exact
    /// length, lowercase hex, the prefix) is accepted.
    pub fn parse(s: &str) -> Result<Self, InboxCursorError> {
        let body = s.strip_prefix(CURSOR_PREFIX).ok_or(InboxCursorError)?;
        let lower_hex = |p: &str| p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if body.len() != 40 || !lower_hex(body) {
            return Err(InboxCursorError);
        }
        let (millis, id) = body.split_at(16);
        let millis = u64::from_str_radix(millis, 16).map_err(|_| InboxCursorError)?;
        let millis = i64::from_ne_bytes(millis.to_ne_bytes());
        let request_id = RequestId::parse(id).map_err(|_| InboxCursorError)?;
        Ok(Self(InboxKey { last_activity_at: Timestamp::from_unix_millis(millis), request_id }))
    }
}

impl fmt::Display for InboxCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A room's place in an inbox: most recent activity first, ties by request id descending.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InboxKey {
    /// When the room's last message was created.
    pub last_activity_at: Timestamp,
    /// The room.
    pub request_id: RequestId,
}

impl Ord for InboxKey {
    /// The inbox order: a key is *less* when it comes *first* in the inbox.
    fn cmp(&self, other: &Self) -> Ordering {
        other.last_activity_at.cmp(&self.last_activity_at).then_with(|| other.request_id.cmp(&self.request_id))
    }
}

impl PartialOrd for InboxKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What an inbox page asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct InboxQuery {
    /// The most rooms to return.
    pub limit: InboxLimit,
    /// Only rooms after this one in the inbox order; `None`: from the first.
    pub before: Option<InboxCursor>,
}

/// One room of an inbox, for one user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InboxRow {
    /// The room's last message (highest seq), with its receipts.
    pub last_message: Message,
    /// The room's messages neither sent nor read by the user.
    pub unread: u64,
}

impl InboxRow {
    /// The room.
    pub const fn request_id(&self) -> RequestId {
        self.last_message.request_id
    }

    /// The room's last activity: its last message's creation time.
    pub const fn last_activity_at(&self) -> Timestamp {
        self.last_message.created_at
    }

    /// The row's place in the inbox order.
    pub const fn key(&self) -> InboxKey {
        InboxKey { last_activity_at: self.last_activity_at(), request_id: self.request_id() }
    }
}

/// One page of an inbox.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct InboxPage {
    /// The rooms, in the inbox order.
    pub rows: Vec<InboxRow>,
    /// Where the following page starts, or `None` when no room follows. A page may hold fewer
    /// rows than its limit and still have a following one.
    pub next: Option<InboxCursor>,
}

/// A user's unread messages in one room, as a join tells them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Unread {
    /// How many messages of the room the user neither sent nor read.
    pub count: u64,
    /// The oldest of them in seq order, if any.
    pub first: Option<MessageId>,
}

impl Unread {
    /// `user`'s unread messages among `in_seq_order` (a room's messages in seq order, oldest
    /// first), each decided by [`Message::is_unread_for`]. When they are all of the room's
    /// messages, what the store's unread count and first unread tell; else a lower bound.
    pub fn among(in_seq_order: &[Message], user: &UserId) -> Self {
        let mut unread = in_seq_order.iter().filter(|m| m.is_unread_for(user));
        let first = unread.next().map(|m| m.id);
        let rest = u64::try_from(unread.count()).unwrap_or(u64::MAX);
        Self { count: first.map_or(0, |_| rest.saturating_add(1)), first }
    }
}

/// Picks an inbox page from `rows` (any order, each room once): the rooms after `query.before`
/// in the inbox order, at most `query.limit`, and the cursor of the following page. The paging
/// decision that every store's inbox must agree with.
pub fn select_page(mut rows: Vec<InboxRow>, query: InboxQuery) -> InboxPage {
    if let Some(c) = query.before {
        rows.retain(|r| r.key() > c.key());
    }
    rows.sort_by_key(InboxRow::key);
    let n = query.limit.get();
    let next = (rows.len() > n).then(|| InboxCursor::after(rows[n - 1].key()));
    rows.truncate(n);
    InboxPage { rows, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    #[test]
    fn limits_are_1_to_100() {
        assert_eq!(InboxLimit::new(1).unwrap().get(), 1);
        assert_eq!(InboxLimit::new(100).unwrap().get(), 100);
        assert_eq!(InboxLimit::default().get(), 50);
        for bad in [0, 101, u64::MAX] {
            assert_eq!(InboxLimit::new(bad), Err(InboxLimitError { got: bad }));
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_everything_else() {
        for millis in [0, 1_733_400_000_123, -5, i64::MAX, i64::MIN] {
            let c = InboxCursor::after(InboxKey {
                last_activity_at: Timestamp::from_unix_millis(millis),
                request_id: rid(0xabc),
            });
            let s = c.encode();
            assert_eq!(InboxCursor::parse(&s), Ok(c), "{s}");
            assert_eq!(s.len(), 43);
        }
        let good =
            InboxCursor::after(InboxKey { last_activity_at: Timestamp::from_unix_millis(7), request_id: rid(1) })
                .encode();
        let mut bad = vec![
            String::new(),
            "i1.".into(),
            good.to_uppercase(),
            good.replacen("i1.", "i2.", 1),
            format!("{good}0"),
            good[..good.len() - 1].to_owned(),
            good.replace('0', "g"),
            format!(" {good}"),
            "i1.+000000000000007000000000000000000000001".into(),
        ];
        bad.push(good.replacen('0', "A", 1));
        for s in bad {
            assert_eq!(InboxCursor::parse(&s), Err(InboxCursorError), "{s:?}");
        }
    }

    #[test]
    fn the_unread_among_messages_leaves_out_own_read_and_deleted_ones() {
        use crate::{MessageRecord, Receipt, Role, Seq};
        let user = |s: &str| UserId::parse(s).unwrap();
        let at = Timestamp::from_unix_millis(1);
        let message = |n: u32, sender: &str, read_by: &[&str], deleted: bool| {
            Message::restore(MessageRecord {
                id: MessageId::parse(&format!("{n:024x}")).unwrap(),
                request_id: rid(1),
                seq: Some(Seq::new(u64::from(n)).unwrap()),
                sender_id: user(sender),
                sender_role: Role::Lab,
                text: (!deleted).then(|| crate::MessageText::restore("m").unwrap()),
                created_at: at,
                client_message_id: None,
                edited_at: None,
                deleted_at: deleted.then_some(at),
                deleted_by: deleted.then(|| user(sender)),
                delivered_to: vec![],
                read_by: read_by.iter().map(|u| Receipt { user: user(u), at }).collect(),
            })
            .unwrap()
        };
        let room = [
            message(1, "t1", &[], false),
            message(2, "lab", &["t1"], false),
            message(3, "lab", &[], true),
            message(4, "lab", &["lab2"], false),
            message(5, "lab2", &[], false),
        ];
        let t1 = Unread::among(&room, &user("t1"));
        assert_eq!(t1, Unread { count: 2, first: Some(room[3].id) });
        let lab = Unread::among(&room, &user("lab"));
        assert_eq!(lab, Unread { count: 2, first: Some(room[0].id) });
        assert_eq!(Unread::among(&room[..4], &user("lab")), Unread { count: 1, first: Some(room[0].id) });
        assert_eq!(Unread::among(&room[1..3], &user("t1")), Unread::default());
        assert_eq!(Unread::among(&[], &user("t1")), Unread::default());
    }

    #[test]
    fn the_order_is_latest_activity_first_then_request_id_descending() {
        let k = |t: i64, n: u32| InboxKey { last_activity_at: Timestamp::from_unix_millis(t), request_id: rid(n) };
        let mut keys = vec![k(1, 1), k(3, 1), k(2, 1), k(2, 9), k(2, 5)];
        keys.sort();
        assert_eq!(keys, vec![k(3, 1), k(2, 9), k(2, 5), k(2, 1), k(1, 1)]);
    }
}
