//! Tests of the reorder buffer: events are delivered in each room's order, gaps wait and are
//! filled, overflows and holes are reported.

use labchat_domain::{MessageRecord, MessageText, RequestId, Role, Timestamp, UserId};

use super::*;

fn room() -> RequestId {
    RequestId::parse(&format!("{:024x}", 7)).unwrap()
}

/// Message number `n` of the room; ids do not sort like seqs (as with several nodes).
fn msg(n: u64, text: &str) -> Message {
    Message::restore(MessageRecord {
        id: id(n),
        request_id: room(),
        seq: Some(Seq::new(n).unwrap()),
        sender_id: UserId::parse("u").unwrap(),
        sender_role: Role::Lab,
        text: Some(MessageText::parse(text, 100).unwrap()),
        created_at: Timestamp::from_unix_millis(n as i64),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

fn id(n: u64) -> MessageId {
    MessageId::parse(&format!("{:024x}", 1_000_000 - n)).unwrap()
}

fn posted(n: u64) -> RoomEvent {
    RoomEvent::MessagePosted(msg(n, "live"))
}

fn read(ns: &[u64]) -> RoomEvent {
    RoomEvent::Read {
        request_id: room(),
        user_id: UserId::parse("reader").unwrap(),
        messages: ns.iter().map(|&n| id(n)).collect(),
        at: Timestamp::from_unix_millis(0),
    }
}

fn step(deliver: Vec<RoomEvent>, fill: Fill) -> Step {
    Step { deliver, fill }
}

fn started(latest: u64) -> RoomOrder {
    let mut o = RoomOrder::new();
    let latest = (latest > 0).then(|| (Seq::new(latest).unwrap(), id(latest)));
    assert_eq!(o.start(latest), step(vec![], Fill::No));
    o
}

#[test]
fn in_order_messages_are_delivered_at_once() {
    let mut o = started(0);
    for n in 1..=3 {
        assert_eq!(o.offer(posted(n)), step(vec![posted(n)], Fill::No));
    }
    assert_eq!(o.last_seq(), 3);
    assert!(!o.needs_fill());
}

#[test]
fn duplicates_and_messages_up_to_the_starting_point_are_dropped() {
    let mut o = started(4);
    assert_eq!(o.offer(posted(3)), step(vec![], Fill::No));
    assert_eq!(o.offer(posted(4)), step(vec![], Fill::No));
    assert_eq!(o.offer(posted(5)), step(vec![posted(5)], Fill::No));
    assert_eq!(o.offer(posted(5)), step(vec![], Fill::No));
}

#[test]
fn a_gap_filled_by_a_late_event_delivers_both_in_order() {
    let mut o = started(0);
    assert_eq!(o.offer(posted(1)), step(vec![posted(1)], Fill::No));
    assert_eq!(o.offer(posted(3)), step(vec![], Fill::AfterWait));
    assert_eq!(o.offer(posted(4)), step(vec![], Fill::AfterWait));
    assert!(o.needs_fill());
    assert_eq!(o.offer(posted(2)), step(vec![posted(2), posted(3), posted(4)], Fill::No));
    assert!(!o.needs_fill());
}

#[test]
fn a_gap_filled_by_the_store_delivers_in_order_and_keeps_live_copies() {
    let mut o = started(0);
    o.offer(posted(1));
    assert_eq!(o.offer(posted(4)), step(vec![], Fill::AfterWait));
    let plan = o.plan_fill();
    assert_eq!((plan.after, plan.last_seq), (Some(id(1)), 1));
    // The store's page: 2..=4, as stored (message 4's live copy was received first).
    let page = vec![msg(2, "stored"), msg(3, "stored"), msg(4, "stored")];
    let expected =
        vec![RoomEvent::MessagePosted(msg(2, "stored")), RoomEvent::MessagePosted(msg(3, "stored")), posted(4)];
    assert_eq!(o.filled(page, plan, true), step(expected, Fill::No));
    // A late live copy of a filled message is a duplicate.
    assert_eq!(o.offer(posted(3)), step(vec![], Fill::No));
    assert_eq!(o.offer(posted(5)), step(vec![posted(5)], Fill::No));
}

#[test]
fn a_fill_in_several_pages_delivers_each_page_and_skips_what_was_delivered_meanwhile() {
    let mut o = started(0);
    o.offer(posted(1));
    o.offer(posted(5));
    let plan = o.plan_fill();
    assert_eq!(o.filled(vec![msg(2, "s"), msg(3, "s")], plan, false).deliver.len(), 2);
    // A live 4 arrives between the pages: 4 and 5 go out at once.
    assert_eq!(o.offer(posted(4)), step(vec![posted(4), posted(5)], Fill::No));
    assert_eq!(o.filled(vec![msg(4, "s"), msg(5, "s")], plan, true), step(vec![], Fill::No));
    assert_eq!(o.last_seq(), 5);
}

#[test]
fn a_receipt_is_held_until_the_messages_it_names_are_delivered() {
    let mut o = started(0);
    assert_eq!(o.offer(read(&[1, 2])), step(vec![], Fill::Now));
    assert_eq!(o.offer(posted(1)), step(vec![posted(1)], Fill::Now));
    assert_eq!(o.offer(posted(2)), step(vec![posted(2), read(&[1, 2])], Fill::No));
    // Known messages: at once.
    assert_eq!(o.offer(read(&[2])), step(vec![read(&[2])], Fill::No));
}

#[test]
fn held_receipts_keep_their_order_behind_the_first_one() {
    let mut o = started(0);
    o.offer(posted(1));
    assert_eq!(o.offer(read(&[2])), step(vec![], Fill::Now));
    assert_eq!(o.offer(read(&[1])), step(vec![], Fill::Now));
    assert_eq!(o.offer(posted(2)), step(vec![posted(2), read(&[2]), read(&[1])], Fill::No));
}

#[test]
fn a_complete_fill_started_after_a_receipt_releases_it_even_for_old_messages() {
    // Message 3 is older than anything this node delivered: the store has nothing newer.
    let mut o = started(5);
    assert_eq!(o.offer(read(&[3])), step(vec![], Fill::Now));
    let plan = o.plan_fill();
    assert_eq!(o.filled(vec![], plan, false), step(vec![], Fill::Now));
    assert_eq!(o.filled(vec![], plan, true), step(vec![read(&[3])], Fill::No));
}

#[test]
fn a_fill_started_before_a_receipt_arrived_does_not_release_it() {
    let mut o = started(0);
    o.offer(posted(1));
    o.offer(posted(3));
    let early = o.plan_fill();
    assert_eq!(o.offer(read(&[4])), step(vec![], Fill::Now));
    let stored = vec![msg(2, "s"), msg(3, "s")];
    assert_eq!(o.filled(stored, early, true), step(vec![RoomEvent::MessagePosted(msg(2, "s")), posted(3)], Fill::Now));
    let late = o.plan_fill();
    assert_eq!(
        o.filled(vec![msg(4, "s")], late, true),
        step(vec![RoomEvent::MessagePosted(msg(4, "s")), read(&[4])], Fill::No)
    );
}

#[test]
fn events_before_the_starting_point_wait_for_it() {
    let mut o = RoomOrder::new();
    assert_eq!(o.offer(posted(5)), step(vec![], Fill::No));
    assert_eq!(o.offer(read(&[5])), step(vec![], Fill::No));
    assert_eq!(o.offer(posted(7)), step(vec![], Fill::No));
    assert!(!o.needs_fill());
    // The store's latest was 5: 5 is in the history, 7 waits for 6; the receipt goes out.
    assert_eq!(o.start(Some((Seq::new(5).unwrap(), id(5)))), step(vec![read(&[5])], Fill::AfterWait));
    assert_eq!(o.offer(posted(6)), step(vec![posted(6), posted(7)], Fill::No));
}

#[test]
fn a_message_without_seq_is_delivered_as_it_comes() {
    let mut o = started(0);
    let mut m = msg(1, "x");
    m.seq = None;
    let e = RoomEvent::MessagePosted(m);
    assert_eq!(o.offer(e.clone()), step(vec![e], Fill::No));
    assert_eq!(o.last_seq(), 0);
}

#[test]
fn the_recent_ids_ring_is_bounded() {
    let mut o = started(0);
    for n in 1..=(RECENT as u64 + 10) {
        o.offer(posted(n));
    }
    assert_eq!(o.offer(read(&[RECENT as u64 + 10])).fill, Fill::No);
    // The oldest ids are forgotten: a receipt for one needs a fill.
    assert_eq!(o.offer(read(&[1])).fill, Fill::Now);
}

fn edited(n: u64) -> RoomEvent {
    RoomEvent::MessageEdited(msg(n, "edited"))
}

#[test]
fn an_edit_or_deletion_of_a_message_delivered_long_ago_or_before_the_start_goes_out_at_once() {
    // Message 10 was stored before this node served the room (it started past 5000).
    let mut o = started(5000);
    assert_eq!(o.offer(edited(10)), step(vec![edited(10)], Fill::No));
    let deleted = RoomEvent::MessageDeleted(msg(10, "gone"));
    assert_eq!(o.offer(deleted.clone()), step(vec![deleted], Fill::No));
    // Message 5001 was delivered here, more messages ago than the recent ids remember.
    for n in 5001..=5001 + RECENT as u64 {
        o.offer(posted(n));
    }
    assert_eq!(o.offer(edited(5001)), step(vec![edited(5001)], Fill::No));
    // A receipt carries no seq: checked by its ids, which the ring forgot, so it needs a fill.
    assert_eq!(o.offer(read(&[5001])), step(vec![], Fill::Now));
}

#[test]
fn an_edit_of_a_message_not_delivered_yet_waits_for_it_and_keeps_its_place() {
    let mut o = started(1);
    assert_eq!(o.offer(edited(3)), step(vec![], Fill::Now));
    // Behind a held change, even a change of a known message waits.
    assert_eq!(o.offer(edited(1)), step(vec![], Fill::Now));
    assert_eq!(o.offer(posted(2)), step(vec![posted(2)], Fill::Now));
    assert_eq!(o.offer(posted(3)), step(vec![posted(3), edited(3), edited(1)], Fill::No));
}

#[test]
fn typing_and_presence_pass_a_gap_and_held_receipts_and_never_ask_for_a_fill() {
    let ephemeral = [
        RoomEvent::Typing { request_id: room(), user_id: UserId::parse("t").unwrap(), role: Role::Teacher },
        RoomEvent::MemberJoined { request_id: room(), user_id: UserId::parse("t").unwrap(), role: Role::Teacher },
        RoomEvent::MemberLeft { request_id: room(), user_id: UserId::parse("t").unwrap() },
    ];
    let mut o = RoomOrder::new();
    // Before the room's start: delivered at once, not held.
    for e in &ephemeral {
        assert_eq!(o.offer(e.clone()), Step { deliver: vec![e.clone()], fill: Fill::No });
    }
    o.start(None);
    // A gap (message 2 before 1) and a held receipt.
    assert_eq!(o.offer(posted(2)).fill, Fill::AfterWait);
    assert_eq!(o.offer(read(&[2])).fill, Fill::Now);
    for e in &ephemeral {
        assert_eq!(o.offer(e.clone()), Step { deliver: vec![e.clone()], fill: Fill::No }, "{e:?}");
    }
    // The message and the receipt still come in order once the gap closes.
    assert_eq!(o.offer(posted(1)).deliver, vec![posted(1), posted(2), read(&[2])]);
}

#[test]
fn past_its_cap_the_buffer_is_dropped_and_the_store_fills_the_room_in_order() {
    let mut o = RoomOrder::with_max_ahead(3);
    o.start(None);
    for n in 2..=4 {
        assert_eq!(o.offer(posted(n)), Step { deliver: vec![], fill: Fill::AfterWait });
    }
    assert_eq!(o.offer(posted(5)), Step { deliver: vec![], fill: Fill::Now }, "the fourth held message");
    assert_eq!(o.take_overflows(), 1);
    assert!(!o.needs_fill(), "nothing held any more");
    let plan = o.plan_fill();
    let step = o.filled((1..=5).map(|n| msg(n, "stored")).collect(), plan, true);
    let seqs: Vec<u64> = step.deliver.iter().map(|e| e.seq().map_or(0, Seq::get)).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(o.offer(posted(5)).deliver, vec![], "no duplicate");
    assert_eq!(o.offer(posted(6)).deliver, vec![posted(6)]);
}

fn seqs_of(step: &Step) -> Vec<u64> {
    step.deliver.iter().filter_map(|e| e.seq().map(Seq::get)).collect()
}

#[test]
fn a_hole_the_store_cannot_fill_is_moved_past_after_three_complete_fills() {
    let mut o = RoomOrder::new();
    o.start(None);
    let plan = o.plan_fill();
    o.filled(vec![msg(1, "stored")], plan, true);
    // Seq 2 was taken and never stored; 3 and 4 are; an envelope claims 1,000 (never stored).
    o.offer(posted(1000));
    o.offer(posted(3));
    let stored = || vec![msg(3, "stored"), msg(4, "stored")];
    for _ in 0..2 {
        let plan = o.plan_fill();
        assert_eq!(seqs_of(&o.filled(stored(), plan, true)), Vec::<u64>::new(), "still waiting for seq 2");
    }
    let plan = o.plan_fill();
    assert_eq!(seqs_of(&o.filled(stored(), plan, true)), [3, 4], "moved past the hole");
    assert_eq!(o.take_holes_skipped(), 1);
    assert!(o.needs_fill(), "the unconfirmed 1,000 is still held");
    for _ in 0..3 {
        let plan = o.plan_fill();
        o.filled(vec![], plan, true);
    }
    assert!(!o.needs_fill(), "an envelope the store never confirmed is dropped");
    assert_eq!(o.take_holes_skipped(), 1);
    assert_eq!(o.offer(posted(5)).deliver, vec![posted(5)], "real posts flow again");
}

#[test]
fn dropped_for_the_nodes_bound_the_store_fills_the_room_in_order() {
    let mut waiting = RoomOrder::new();
    waiting.offer(posted(3));
    assert!(!waiting.drop_held(), "before the start nothing is dropped");
    assert_eq!(waiting.held(), 1);
    let mut o = started(1);
    assert!(!o.drop_held(), "nothing held");
    o.offer(posted(3));
    o.offer(posted(4));
    assert_eq!(o.held(), 2);
    assert!(o.drop_held());
    assert_eq!((o.held(), o.needs_fill()), (0, false));
    let plan = o.plan_fill();
    assert_eq!(seqs_of(&o.filled((2..=4).map(|n| msg(n, "stored")).collect(), plan, true)), [2, 3, 4]);
    assert_eq!(o.offer(posted(4)).deliver, vec![], "no duplicate");
    assert_eq!(o.offer(posted(5)).deliver, vec![posted(5)]);
}
