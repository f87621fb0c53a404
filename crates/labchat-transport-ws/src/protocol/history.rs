//! `roomHistory` frames, bounded in bytes as well as in messages.
//!
//! A page of the history limit's size can be far larger than a connection's outbound queue
//! accepts (200 messages of 4000 characters that JSON escapes to 6 bytes each make 4.8 MB), and
//! a frame the queue refuses closes the connection: the room would be unjoinable. So a page is
//! cut to a byte budget, from the end farthest from its cursor, and says `hasMore: true`; the
//! client pages on as it does for a page cut by count.

use std::ops::Range;

use labchat_domain::{HistoryPage, MessageId, RequestId};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ServerEvent;
use super::encode::{ENCODING_FAILED, WireMessage, frame};

/// Which end of a history page to keep when the page is cut to fit its byte budget.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// The newest messages, dropping the oldest: for the latest page and a page `before` a
    /// message. `hasMore` then says older messages exist: the client asks for
    /// `history {before: <the oldest id it has>}`.
    Newest,
    /// The oldest messages, dropping the newest: for `joinRoom {after}`. `hasMore` then says
    /// newer messages exist: the client joins again `after` the last id it has.
    Oldest,
}

impl Keep {
    /// The end a `joinRoom` page keeps: the oldest when catching up `after` a message, else the
    /// newest.
    pub fn for_join(after: Option<MessageId>) -> Self {
        if after.is_some() { Self::Oldest } else { Self::Newest }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct History<'a> {
    request_id: String,
    messages: &'a [Box<RawValue>],
    has_more: bool,
}

/// A `roomHistory` frame of `page`, at most `max_bytes` long: when the whole page does not fit,
/// the messages at the end `keep` does not name are left out and `hasMore` is true. Each message
/// is encoded once. The frame holds at least one message when the page has any, so paging always
/// moves on; one message is bounded by the text limit and its receipts.
pub fn room_history(
    request_id: RequestId,
    page: &HistoryPage,
    keep: Keep,
    max_bytes: usize,
    id: Option<&Value>,
) -> String {
    let encoded: Result<Vec<Box<RawValue>>, _> =
        page.messages.iter().map(|m| serde_json::value::to_raw_value(&WireMessage::from(m))).collect();
    let Ok(encoded) = encoded else {
        return ENCODING_FAILED.to_owned();
    };
    let name = ServerEvent::RoomHistory.as_str();
    let request_id = request_id.to_hex();
    // The bytes of the frame around its messages, which depend on `hasMore`.
    let around =
        |has_more: bool| frame(name, History { request_id: request_id.clone(), messages: &[], has_more }, id).len();
    let sizes: Vec<usize> = encoded.iter().map(|m| m.get().len()).collect();
    let mut kept = fit(&sizes, max_bytes.saturating_sub(around(page.has_more)), keep);
    let cut = kept.len() < sizes.len();
    if cut {
        kept = fit(&sizes, max_bytes.saturating_sub(around(true)), keep);
    }
    frame(name, History { request_id, messages: &encoded[kept], has_more: page.has_more || cut }, id)
}

/// The items of `sizes` (bytes, oldest first) to keep from the end `keep` names so that they,
/// with one separator byte between each two, take at most `room` bytes. At least one item is
/// kept when there is any.
pub(super) fn fit(sizes: &[usize], room: usize, keep: Keep) -> Range<usize> {
    let fitting = |sizes: &mut dyn Iterator<Item = usize>| {
        let mut used = 0usize;
        let mut n = 0usize;
        for size in sizes {
            let total = used.checked_add(size).and_then(|t| t.checked_add(usize::from(n > 0)));
            match total {
                Some(total) if n == 0 || total <= room => used = total,
                _ => break,
            }
            n += 1;
        }
        n
    };
    match keep {
        Keep::Oldest => 0..fitting(&mut sizes.iter().copied()),
        Keep::Newest => sizes.len() - fitting(&mut sizes.iter().rev().copied())..sizes.len(),
    }
}
