//! `roomHistory` frames, bounded in bytes as well as in messages, and the catch-up replayed after
//! a join's page.
//!
//! A page of the history limit's size can be far larger than a connection's outbound queue
//! accepts (200 messages of 4000 characters that JSON escapes to 6 bytes each make 4.8 MB), and
//! a frame the queue refuses closes the connection: the room would be unjoinable. So a page is
//! cut to a byte budget, from the end farthest from its cursor, and says `hasMore: true`; the
//! client pages on as it does for a page cut by count.

use labchat_core::{CaughtUp, MembersPage};
use labchat_domain::{Cursor, HistoryPage, Message, RequestId, Seq};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ServerEvent;
use super::encode::{ENCODING_FAILED, WireMember, WireMessage, frame, room_event};

/// Which end of a history page to keep when the page is cut to fit its byte budget.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// The newest messages, dropping the oldest: for the latest page and a page `before` a
    /// message. `hasMore` then says older messages exist: the client asks for
    /// `history {before: <the oldest id it has>}`.
    Newest,
    /// The oldest messages, dropping the newest: for `joinRoom {after}` and `history {after}`.
    /// `hasMore` then says newer messages exist: the client asks for
    /// `history {after: <the newest id it has>}`.
    Oldest,
}

impl Keep {
    /// The end a page at `cursor` keeps: the oldest when catching up after a message, else the
    /// newest.
    pub fn for_cursor(cursor: Cursor) -> Self {
        if matches!(cursor, Cursor::After(_)) { Self::Oldest } else { Self::Newest }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct History<'a> {
    request_id: String,
    messages: &'a [Box<RawValue>],
    has_more: bool,
    /// Only in reply to `joinRoom`: the first page of the room's members.
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<&'a [WireMember<'a>]>,
    /// Only in reply to `joinRoom`: how many members the room has in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    members_count: Option<usize>,
    /// Only in reply to `joinRoom`: the `after` of the next `members` page, `null` when the
    /// page holds every member.
    #[serde(skip_serializing_if = "Option::is_none")]
    members_next: Option<Option<&'a str>>,
}

/// A `roomHistory` frame of `page`, at most `max_bytes` long: when the whole page does not fit,
/// the messages at the end `keep` does not name are left out and `hasMore` is true. Messages are
/// encoded once each, from the kept end, and only until the budget is spent. The frame holds at
/// least one message when the page has any, so paging always moves on; one message is bounded
/// by the text limit and its receipts.
pub fn room_history(
    request_id: RequestId,
    page: &HistoryPage,
    keep: Keep,
    max_bytes: usize,
    id: Option<&Value>,
) -> String {
    room_history_with_more(request_id, page, keep, max_bytes, id, None).0
}

/// [`room_history`], and the frame's `hasMore`; with `members` (in reply to `joinRoom`), the
/// frame lists them as `members: [{userId, role}]`, with `membersCount` and `membersNext`.
pub fn room_history_with_more(
    request_id: RequestId,
    page: &HistoryPage,
    keep: Keep,
    max_bytes: usize,
    id: Option<&Value>,
    members: Option<&MembersPage>,
) -> (String, bool) {
    let name = ServerEvent::RoomHistory.as_str();
    let request_id = request_id.to_hex();
    let roster = members;
    let members: Option<Vec<WireMember<'_>>> = roster
        .map(|p| p.members.iter().map(|m| WireMember { user_id: m.user_id.as_str(), role: m.role.as_str() }).collect());
    let members = members.as_deref();
    let members_count = roster.map(|p| p.count);
    let members_next = roster.map(|p| p.next().map(|u| u.as_str()));
    // The bytes of the frame around its messages, which depend on `hasMore`.
    let around = |has_more: bool| {
        let h =
            History { request_id: request_id.clone(), messages: &[], has_more, members, members_count, members_next };
        frame(name, h, id).len()
    };
    // A cut page says `true`, one byte shorter than `false`: the larger room.
    let mut budget = Budget::new(max_bytes.saturating_sub(around(true)));
    let from_kept_end: Box<dyn Iterator<Item = &Message>> = match keep {
        Keep::Newest => Box::new(page.messages.iter().rev()),
        Keep::Oldest => Box::new(page.messages.iter()),
    };
    let mut kept = Vec::new();
    for m in from_kept_end {
        let Ok(raw) = serde_json::value::to_raw_value(&WireMessage::from(m)) else {
            return (ENCODING_FAILED.to_owned(), true);
        };
        if !budget.take(raw.get().len()) {
            break;
        }
        kept.push(raw);
    }
    let mut cut = kept.len() < page.messages.len();
    // Whole, the page keeps its own `hasMore`, which may be the longer `false`.
    if !cut && budget.used() > max_bytes.saturating_sub(around(page.has_more)) && kept.len() > 1 {
        kept.pop();
        cut = true;
    }
    if keep == Keep::Newest {
        kept.reverse();
    }
    let has_more = page.has_more || cut;
    let h = History { request_id, messages: &kept, has_more, members, members_count, members_next };
    (frame(name, h, id), has_more)
}

/// The bytes left for a page's messages: each message costs its size, plus one separator byte
/// after the first.
#[derive(Debug)]
pub(super) struct Budget {
    room: usize,
    used: usize,
    taken: usize,
}

impl Budget {
    /// A budget of `room` bytes.
    pub(super) fn new(room: usize) -> Self {
        Self { room, used: 0, taken: 0 }
    }

    /// Takes a message of `size` bytes if it fits, and always the first one (so that paging
    /// moves on); `false` once one does not fit.
    pub(super) fn take(&mut self, size: usize) -> bool {
        let total = self.used.checked_add(size).and_then(|t| t.checked_add(usize::from(self.taken > 0)));
        match total {
            Some(total) if self.taken == 0 || total <= self.room => {
                self.used = total;
                self.taken += 1;
                true
            }
            _ => false,
        }
    }

    /// The bytes taken so far.
    pub(super) fn used(&self) -> usize {
        self.used
    }
}

/// The frames that replay a join's catch-up (what changed on the messages up to its `after`),
/// oldest change first, each with its server event, within `budget` bytes and `max_frames`
/// frames (receipts marked one at a time make many small frames): the changes of as many of the
/// changed messages as fit, keeping the highest seqs (those nearest `after`, the ones a client
/// shows). Also the seq below which the held messages may be stale once the replay is sent
/// (`changesFrom`), `None` when it left nothing out.
pub fn replay(caught_up: &CaughtUp, budget: usize, max_frames: usize) -> (Vec<(ServerEvent, String)>, Option<Seq>) {
    let frames = |from: usize| -> Vec<(ServerEvent, String)> {
        caught_up.events(from).iter().map(|e| (ServerEvent::of(e.kind()), room_event(e))).collect()
    };
    let fits = |f: &[(ServerEvent, String)]| {
        f.len() <= max_frames && f.iter().map(|(_, frame)| frame.len()).sum::<usize>() <= budget
    };
    let all = frames(0);
    if fits(&all) {
        return (all, caught_up.stale_below_keeping(0));
    }
    // Dropping the lowest seqs only shrinks the replay, and dropping them all fits: the fewest to
    // drop, by bisection.
    let (mut lo, mut hi) = (1, caught_up.changed.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(&frames(mid)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (frames(hi), caught_up.stale_below_keeping(hi))
}
