//! The inbox on the wire: the `inbox` reply, `inboxUpdate`, and the unread fields a join adds to
//! its `roomHistory`.

use labchat_domain::{InboxCursor, InboxKey, InboxPage, InboxRow, Seq, Unread};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ServerEvent;
use super::encode::{ENCODING_FAILED, WireMessage, frame, rfc3339};
use super::history::Budget;

/// An inbox row: `{requestId, lastMessage, unread, lastActivityAt}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRow {
    request_id: String,
    last_message: WireMessage,
    unread: u64,
    last_activity_at: String,
}

impl From<&InboxRow> for WireRow {
    fn from(r: &InboxRow) -> Self {
        Self {
            request_id: r.request_id().to_hex(),
            last_message: WireMessage::from(&r.last_message),
            unread: r.unread,
            last_activity_at: rfc3339(r.last_activity_at()),
        }
    }
}

/// The reply to `inbox`: `ack {rooms, next}`, carrying `id` when the frame had one (and sent
/// without one otherwise: it is the only frame holding the result), at most `max_bytes` long
/// (as a history page, see [`super::room_history`]): when the whole page does not fit, the rows
/// past the budget are left out and `next` is the cursor after the last row kept, so the client
/// pages on as for a page cut by count. The reply holds at least one row when the page has any.
pub fn inbox_ack(page: &InboxPage, max_bytes: usize, id: Option<&Value>) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        rooms: &'a [Box<RawValue>],
        next: Option<String>,
    }
    // The bytes around the rows, with the longest `next` (a cursor rather than `null`).
    let longest = InboxCursor::after(InboxKey {
        last_activity_at: labchat_domain::Timestamp::from_unix_millis(0),
        request_id: labchat_domain::RequestId::from_object_id(labchat_domain::ObjectIdBytes::from_bytes([0; 12])),
    });
    let around = frame(ServerEvent::Ack.as_str(), Data { rooms: &[], next: Some(longest.encode()) }, id).len();
    let mut budget = Budget::new(max_bytes.saturating_sub(around));
    let mut rooms = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        let Ok(raw) = serde_json::value::to_raw_value(&WireRow::from(row)) else {
            return ENCODING_FAILED.to_owned();
        };
        if !budget.take(raw.get().len()) {
            break;
        }
        rooms.push(raw);
    }
    let next = match page.rows.get(rooms.len()) {
        // Cut: the page goes on after the last row kept.
        Some(_) => rooms.len().checked_sub(1).and_then(|i| page.rows.get(i)).map(|r| InboxCursor::after(r.key())),
        None => page.next,
    };
    frame(ServerEvent::Ack.as_str(), Data { rooms: &rooms, next: next.map(|c| c.encode()) }, id)
}

/// The reply to `members`, an `ack` frame (sent without an id too): `{requestId, members:
/// [{userId, role}], membersCount, next}`, `next` the `after` of the next page or `null`.
pub fn members_ack(
    request_id: labchat_domain::RequestId,
    page: &labchat_core::MembersPage,
    id: Option<&Value>,
) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        request_id: String,
        members: Vec<super::encode::WireMember<'a>>,
        members_count: usize,
        next: Option<&'a str>,
    }
    let members = page
        .members
        .iter()
        .map(|m| super::encode::WireMember { user_id: m.user_id.as_str(), role: m.role.as_str() })
        .collect();
    let data = Data {
        request_id: request_id.to_hex(),
        members,
        members_count: page.count,
        next: page.next().map(|u| u.as_str()),
    };
    frame(ServerEvent::Ack.as_str(), data, id)
}

/// An `inboxUpdate` frame: a room's row for the connection's user.
pub fn inbox_update(row: &InboxRow) -> String {
    frame(ServerEvent::InboxUpdate.as_str(), WireRow::from(row), None)
}

/// What a join's `roomHistory` starts its data with: `"unread":N,"firstUnreadId":ID|null,`, and
/// for a join with `after` (`changes` is `Some`), `"changesCut":false,` when the catch-up replayed
/// every change, else `"changesCut":true,"changesFrom":SEQ|null,` (the held messages below `SEQ`
/// may be stale; `null`: all of them).
fn join_fields(unread: &Unread, changes: Option<Option<Seq>>) -> String {
    let first = unread.first.map_or_else(|| "null".to_owned(), |id| format!("\"{}\"", id.to_hex()));
    let cut = match changes {
        None => String::new(),
        Some(None) => "\"changesCut\":false,".to_owned(),
        Some(Some(Seq::MAX)) => "\"changesCut\":true,\"changesFrom\":null,".to_owned(),
        Some(Some(from)) => format!("\"changesCut\":true,\"changesFrom\":{from},"),
    };
    format!("\"unread\":{},\"firstUnreadId\":{first},{cut}", unread.count)
}

/// How many bytes [`with_join_fields`] adds to a `roomHistory` frame at most (so that the page can
/// be cut to leave room for them), for a join with `after` or without.
pub fn join_fields_len(unread: &Unread, with_after: bool) -> usize {
    let longest = Seq::new(u64::MAX - 1).ok();
    join_fields(unread, with_after.then_some(longest)).len()
}

/// The `roomHistory` frame of a join (as [`super::room_history`] made it) with the joining
/// user's `unread` and `firstUnreadId` (and with `after`, `changesCut` and `changesFrom`) as the
/// first fields of its data.
pub fn with_join_fields(room_history: String, unread: &Unread, changes: Option<Option<Seq>>) -> String {
    let head = format!("{{\"event\":\"{}\",\"data\":{{", ServerEvent::RoomHistory.as_str());
    // Not a roomHistory (the encoder's fallback error frame): left as it is.
    if !room_history.starts_with(&head) {
        return room_history;
    }
    let at = head.len();
    let mut out = String::with_capacity(room_history.len() + 64);
    out.push_str(&room_history[..at]);
    out.push_str(&join_fields(unread, changes));
    out.push_str(&room_history[at..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use labchat_domain::{HistoryPage, MessageId, RequestId};
    use serde_json::json;

    use super::*;
    use crate::protocol::{Keep, room_history};

    #[test]
    fn join_fields_lead_the_data_of_a_room_history() {
        let rid = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        let page = HistoryPage::default();
        for (unread, first) in [
            (Unread::default(), Value::Null),
            (
                Unread { count: 3, first: Some(MessageId::parse("6751b6df1ad14eaa13a03314").unwrap()) },
                json!("6751b6df1ad14eaa13a03314"),
            ),
        ] {
            let plain = room_history(rid, &page, Keep::Newest, usize::MAX, Some(&json!(7)));
            let joined = with_join_fields(plain.clone(), &unread, None);
            assert_eq!(joined.len(), plain.len() + join_fields_len(&unread, false));
            let v: Value = serde_json::from_str(&joined).unwrap();
            assert_eq!(
                v,
                json!({"event":"roomHistory","id":7,"data":{"requestId":rid.to_hex(),"messages":[],"hasMore":false,
                    "unread":unread.count,"firstUnreadId":first}})
            );
        }
    }
}
