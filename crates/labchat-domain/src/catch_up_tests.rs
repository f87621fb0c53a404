//! The catch-up decision: which changes of held messages are replayed, and in what order.

use std::time::Duration;

use super::*;
use crate::{MessageText, NewMessage, Role, User};

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}
fn room() -> RequestId {
    RequestId::parse("6751b6df1ad14eaa13a03313").unwrap()
}
fn t(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

/// Message `n` of the room (seq `n`), sent by `teacher` at `100 n` seconds.
fn message(n: u8) -> Message {
    Message::new(NewMessage {
        id: MessageId::parse(&format!("{n:024x}")).unwrap(),
        request_id: room(),
        sender_id: uid("teacher"),
        sender_role: Role::Teacher,
        text: MessageText::parse("hi", 10).unwrap(),
        created_at: t(i64::from(n) * 100_000),
        client_message_id: None,
    })
    .with_seq(Seq::new(u64::from(n)).unwrap())
}

fn mark(m: &mut Message, user: &str, kind: ReceiptKind, at: i64) {
    m.mark(room(), &uid(user), kind, t(at));
}

const SKEW: i64 = CATCH_UP_MARGIN_MILLIS;

#[test]
fn starts_before_the_last_held_message_by_the_clock_skew() {
    let after = message(20);
    let c = CatchUp::after(&after, t(5_000_000)).unwrap();
    assert_eq!(c.up_to, Seq::new(20).unwrap());
    assert_eq!(c.since, t(2_000_000 - SKEW));
    // Stored by a node whose clock ran ahead of this one's: from this node's now.
    assert_eq!(CatchUp::after(&after, t(1_500_000)).unwrap().since, t(1_500_000 - SKEW));
    let mut unnumbered = message(1);
    unnumbered.seq = None;
    assert_eq!(CatchUp::after(&unnumbered, t(5_000_000)), None);
}

#[test]
fn replays_receipts_made_after_the_client_left_grouped_as_marked() {
    let (mut a, mut b, mut c) = (message(1), message(2), message(3));
    // Long before: seen live, not replayed.
    mark(&mut a, "lab", ReceiptKind::Read, 1_500);
    // The client left after message 2; "lab" read 2 and 3 together, "lab2" got 2 later.
    mark(&mut b, "lab", ReceiptKind::Read, 260_000);
    mark(&mut c, "lab", ReceiptKind::Read, 260_000);
    mark(&mut b, "lab2", ReceiptKind::Delivered, 261_000);
    let catch_up = CatchUp::after(&b, t(1_000_000)).unwrap();
    // Message 3 is past `after`: it comes whole in the history page.
    let events = catch_up.events(&[c.clone(), b.clone(), a.clone()]);
    let ids = |ms: &[&Message]| ms.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        events,
        vec![
            RoomEvent::Delivered { request_id: room(), user_id: uid("lab"), messages: ids(&[&b]), at: t(260_000) },
            RoomEvent::Read { request_id: room(), user_id: uid("lab"), messages: ids(&[&b]), at: t(260_000) },
            RoomEvent::Delivered { request_id: room(), user_id: uid("lab2"), messages: ids(&[&b]), at: t(261_000) },
        ]
    );
    assert!(!catch_up.includes(&a), "changed before the catch-up starts");
    assert!(catch_up.includes(&b));
    assert!(!catch_up.includes(&c), "after the held messages");
}

#[test]
fn one_instant_lists_its_messages_in_seq_order() {
    let (mut a, mut b) = (message(1), message(2));
    mark(&mut b, "lab", ReceiptKind::Delivered, 9_000);
    mark(&mut a, "lab", ReceiptKind::Delivered, 9_000);
    let catch_up = CatchUp { up_to: Seq::new(2).unwrap(), since: t(0) };
    assert_eq!(
        catch_up.events(&[b.clone(), a.clone()]),
        vec![RoomEvent::Delivered {
            request_id: room(),
            user_id: uid("lab"),
            messages: vec![a.id, b.id],
            at: t(9_000)
        }]
    );
}

#[test]
fn replays_edits_and_deletions_as_the_message_is_now() {
    let window = Duration::from_secs(3600);
    let (mut a, mut b, mut c, d) = (message(1), message(2), message(3), message(4));
    a.edit(room(), &uid("teacher"), MessageText::parse("fixed", 10).unwrap(), t(450_000), window).unwrap();
    // Edited, then deleted: only the tombstone.
    b.edit(room(), &uid("teacher"), MessageText::parse("oops", 10).unwrap(), t(451_000), window).unwrap();
    b.delete(room(), &User::new(uid("lab"), Role::Lab), t(452_000)).unwrap();
    // Edited before the client's last message: the history it held already had it.
    c.edit(room(), &uid("teacher"), MessageText::parse("old", 10).unwrap(), t(400_000 - SKEW - 1), window).unwrap();
    let catch_up = CatchUp::after(&d, t(1_000_000)).unwrap();
    let events = catch_up.events(&[a.clone(), b.clone(), c.clone(), d.clone()]);
    assert_eq!(events, vec![RoomEvent::MessageEdited(a), RoomEvent::MessageDeleted(b)]);
    assert!(!catch_up.includes(&c));
    assert!(!catch_up.includes(&d), "nothing changed on the last held message");
}

#[test]
fn changes_come_oldest_first_across_kinds() {
    let window = Duration::from_secs(3600);
    let (mut a, mut b) = (message(1), message(2));
    mark(&mut a, "lab", ReceiptKind::Read, 30_000);
    b.edit(room(), &uid("teacher"), MessageText::parse("later", 10).unwrap(), t(40_000), window).unwrap();
    mark(&mut b, "lab", ReceiptKind::Read, 40_000);
    let catch_up = CatchUp { up_to: Seq::new(2).unwrap(), since: t(0) };
    let kinds: Vec<_> = catch_up.events(&[b.clone(), a.clone()]).iter().map(RoomEvent::kind).collect();
    use crate::RoomEventKind as K;
    assert_eq!(kinds, [K::Delivered, K::Read, K::MessageEdited, K::Delivered, K::Read]);
}
