//! `roomHistory` pages cut to a byte budget.

use labchat_domain::{
    Cursor, HistoryPage, Message, MessageId, MessageRecord, MessageText, Receipt, RequestId, Role, Seq, Timestamp,
    UserId,
};
use serde_json::{Value, json};

use super::RID;
use std::ops::Range;

use crate::protocol::history::Budget;
use crate::protocol::{Keep, room_history};

/// The items of `sizes` (oldest first) a budget of `room` bytes keeps, from the end `keep` names.
fn fit(sizes: &[usize], room: usize, keep: Keep) -> Range<usize> {
    let mut budget = Budget::new(room);
    let mut ordered: Box<dyn Iterator<Item = &usize>> =
        if keep == Keep::Newest { Box::new(sizes.iter().rev()) } else { Box::new(sizes.iter()) };
    let n = ordered.by_ref().take_while(|s| budget.take(**s)).count();
    if keep == Keep::Newest { sizes.len() - n..sizes.len() } else { 0..n }
}

#[test]
fn a_budget_keeps_what_the_budget_holds_from_the_kept_end() {
    // Sizes 10, 20, 30, 40 (oldest first); a separator costs one byte between two items.
    let sizes = [10, 20, 30, 40];
    let cases = [
        (1000, Keep::Newest, 0..4),
        (1000, Keep::Oldest, 0..4),
        (103, Keep::Newest, 0..4), // 10+20+30+40 + 3 separators
        (102, Keep::Newest, 1..4),
        (102, Keep::Oldest, 0..3),
        (71, Keep::Newest, 2..4),
        (70, Keep::Newest, 3..4),
        (62, Keep::Oldest, 0..3),
        (61, Keep::Oldest, 0..2),
        (60, Keep::Oldest, 0..2),
        // The kept end's item alone is always kept, so paging moves on.
        (5, Keep::Newest, 3..4),
        (0, Keep::Oldest, 0..1),
    ];
    for (room, keep, want) in cases {
        assert_eq!(fit(&sizes, room, keep), want, "room {room}, {keep:?}");
    }
    assert_eq!(fit(&[], 0, Keep::Newest), 0..0);
    assert_eq!(fit(&[usize::MAX, usize::MAX], usize::MAX, Keep::Oldest), 0..1, "no overflow");
}

fn messages(n: u8, text: &str) -> Vec<Message> {
    (1..=n)
        .map(|i| {
            Message::restore(MessageRecord {
                id: MessageId::parse(&format!("{i:024x}")).unwrap(),
                request_id: RequestId::parse(RID).unwrap(),
                seq: Some(Seq::new(i.into()).unwrap()),
                sender_id: UserId::parse("lab-1").unwrap(),
                sender_role: Role::Lab,
                text: Some(MessageText::parse(text, 4000).unwrap()),
                created_at: Timestamp::from_unix_millis(i.into()),
                client_message_id: None,
                delivered_to: vec![Receipt { user: UserId::parse("t").unwrap(), at: Timestamp::from_unix_millis(9) }],
                read_by: vec![],
                edited_at: None,
                deleted_at: None,
                deleted_by: None,
            })
            .unwrap()
        })
        .collect()
}

fn ids(frame: &Value) -> Vec<u64> {
    frame["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| u64::from_str_radix(m["id"].as_str().unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn a_page_that_fits_is_sent_whole_and_keeps_its_has_more() {
    let rid = RequestId::parse(RID).unwrap();
    for has_more in [false, true] {
        let page = HistoryPage { messages: messages(3, "hi"), has_more };
        let text = room_history(rid, &page, Keep::Newest, 1 << 20, Some(&json!("q")));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((ids(&v), &v["data"]["hasMore"], &v["id"]), (vec![1, 2, 3], &json!(has_more), &json!("q")));
        assert_eq!((&v["event"], &v["data"]["requestId"]), (&json!("roomHistory"), &json!(RID)));
        // The exact budget of the whole page still holds it.
        assert_eq!(room_history(rid, &page, Keep::Oldest, text.len(), Some(&json!("q"))), text);
        // One byte less: the farthest message is left out, and the page says so.
        for (keep, want) in [(Keep::Newest, vec![2, 3]), (Keep::Oldest, vec![1, 2])] {
            let cut = room_history(rid, &page, keep, text.len() - 1, Some(&json!("q")));
            assert!(cut.len() < text.len(), "{keep:?}");
            let v: Value = serde_json::from_str(&cut).unwrap();
            assert_eq!((ids(&v), &v["data"]["hasMore"]), (want, &json!(true)), "{keep:?}");
        }
    }
}

#[test]
fn a_page_over_budget_is_cut_from_the_far_end_and_says_has_more() {
    let rid = RequestId::parse(RID).unwrap();
    let text = "\u{1}".repeat(4000);
    let page = HistoryPage { messages: messages(200, &text), has_more: false };
    let whole = room_history(rid, &page, Keep::Newest, usize::MAX, None);
    assert!(whole.len() > 4 << 20, "the whole page is {} bytes", whole.len());
    let budget = 1 << 20;
    for (keep, id) in [(Keep::Newest, None), (Keep::Oldest, Some(json!(12345)))] {
        let cut = room_history(rid, &page, keep, budget, id.as_ref());
        assert!(cut.len() <= budget, "{keep:?}: {} bytes", cut.len());
        let v: Value = serde_json::from_str(&cut).unwrap();
        let got = ids(&v);
        let n = u64::try_from(got.len()).unwrap();
        let want: Vec<u64> = match keep {
            Keep::Newest => (201 - n..=200).collect(),
            Keep::Oldest => (1..=n).collect(),
        };
        assert_eq!(got, want, "{keep:?}");
        assert!(n > 1 && n < 200);
        assert_eq!(v["data"]["hasMore"], true);
        assert_eq!(v["data"]["messages"][0]["message"].as_str().unwrap(), text, "messages are whole");
        assert_eq!(v.get("id"), id.as_ref());
        // One more message would not have fitted.
        let one_more = cut.len() + (whole.len() / 200);
        assert!(one_more > budget, "{keep:?} left room for another message");
    }
}

#[test]
fn join_keeps_the_oldest_only_when_catching_up() {
    let id = MessageId::parse(RID).unwrap();
    assert_eq!(Keep::for_cursor(Cursor::Latest), Keep::Newest);
    assert_eq!(Keep::for_cursor(Cursor::Before(id)), Keep::Newest);
    assert_eq!(Keep::for_cursor(Cursor::After(id)), Keep::Oldest);
}
