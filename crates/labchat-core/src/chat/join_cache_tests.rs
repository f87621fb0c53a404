//! Interaction tests of the join cache (`join_cache.rs`) with the ports' mockall mocks: a burst
//! of joins reads a room's history once, and nothing of the room that a later join would miss
//! lets it be served an earlier page.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_domain::{Cursor, HistoryPage, MessageId, ReceiptKind, Role, RoomEvent, UserId};

use super::Chat;
use super::tests::{chat, message, mid, nothing_unread, rid, store_with_request, user};
use crate::{BackplaneStatus, Marked, MockBroadcaster, MockChatStore, MockRoomSink, Published, RoomSink, SinkId};

type Sinks = Arc<Mutex<Vec<Arc<dyn RoomSink>>>>;

/// A broadcaster (mocked) that keeps the sinks subscribed and hands published events to them, as
/// a real one does; with a backplane whose state `up` says.
fn keeping_broadcaster(up: Option<Arc<Mutex<bool>>>) -> (MockBroadcaster, Sinks) {
    let sinks: Sinks = Arc::default();
    let mut b = MockBroadcaster::new();
    let kept = Arc::clone(&sinks);
    b.expect_subscribe().returning(move |_, s| {
        kept.lock().unwrap().push(s);
        Ok(())
    });
    let kept = Arc::clone(&sinks);
    b.expect_unsubscribe().returning(move |_, id| {
        kept.lock().unwrap().retain(|s| s.id() != id);
        Ok(())
    });
    let kept = Arc::clone(&sinks);
    b.expect_publish().returning(move |e| {
        deliver(&kept, e);
        Ok(())
    });
    b.expect_backplane().returning(move || {
        up.as_ref().map(|u| BackplaneStatus { connected: *u.lock().unwrap(), detail: String::new() })
    });
    (b, sinks)
}

/// Hands `event` to every kept sink (an event of the room reaching this node).
fn deliver(sinks: &Sinks, event: RoomEvent) {
    let published = Published::new(event);
    for s in sinks.lock().unwrap().iter() {
        s.deliver(Arc::clone(&published));
    }
}

fn sink(id: u64) -> Arc<dyn RoomSink> {
    let mut s = MockRoomSink::new();
    s.expect_id().return_const(SinkId(id));
    s.expect_deliver().return_const(());
    Arc::new(s)
}

/// A store whose room holds messages 4 and 5, expecting `reads` reads of its latest page.
fn store_reading_latest(reads: usize) -> MockChatStore {
    let mut store = store_with_request();
    nothing_unread(&mut store);
    store
        .expect_history()
        .withf(|r, q| *r == rid(1) && q.cursor == Cursor::Latest)
        .times(reads)
        .returning(|_, _| Ok(Some(HistoryPage { messages: vec![message(4, 4), message(5, 5)], has_more: false })));
    store
}

/// Joins `n` lab users (`lab{first}`…) to room 1 one after another with `after`, each from its
/// own sink; returns the covers.
async fn join_each(chat: &Chat, first: u64, n: u64, after: Option<MessageId>) -> Vec<Option<u64>> {
    let mut covers = Vec::new();
    for i in first..first + n {
        let joined = chat.join(&user(&format!("lab{i}"), Role::Lab), rid(1), after, sink(i), false).await.unwrap();
        covers.push(joined.covered.map(|s| s.get()));
    }
    covers
}

#[tokio::test]
async fn a_burst_of_joins_with_the_same_query_reads_the_history_once() {
    let (b, _sinks) = keeping_broadcaster(None);
    let chat = chat(store_reading_latest(1), b);
    assert_eq!(join_each(&chat, 1, 5, None).await, [Some(5); 5]);
    assert_eq!(chat.history_reuses(), 4);
    assert_eq!(chat.joins.len(), 1);
}

#[tokio::test]
async fn a_join_served_a_kept_page_asks_the_store_for_its_unread_even_when_the_page_is_the_whole_room() {
    let (b, _sinks) = keeping_broadcaster(None);
    let mut store = store_with_request();
    store
        .expect_history()
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage { messages: vec![message(4, 4), message(5, 5)], has_more: false })));
    // The first join read the page: its unread (both messages) from the page. The second is
    // served the kept page, whose receipts are as of the first read: its unread from the store.
    store.expect_unread_count().times(1).returning(|_, _| Ok(1));
    store.expect_first_unread().times(0);
    let chat = chat(store, b);
    let first = chat.join(&user("lab1", Role::Lab), rid(1), None, sink(1), false).await.unwrap();
    assert_eq!((first.unread.count, first.unread.first), (2, Some(mid(4))));
    drop(first);
    let second = chat.join(&user("lab2", Role::Lab), rid(1), None, sink(2), false).await.unwrap();
    assert_eq!(chat.history_reuses(), 1);
    assert_eq!(second.unread.count, 1, "the store's count, not the page's 2");
}

#[tokio::test]
async fn the_pages_of_a_burst_are_given_back_after_their_lifetime_with_nothing_else_happening() {
    let (b, _sinks) = keeping_broadcaster(None);
    let chat = chat(store_reading_latest(1), b).with_join_reuse(Duration::from_millis(50));
    join_each(&chat, 1, 3, None).await;
    assert_eq!(chat.joins.len(), 1, "the burst's page is kept");
    // No join, no event from here on: only the sweep can drop the page.
    for _ in 0..500 {
        if chat.joins.len() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the page of the burst is still kept 10 s after its 50 ms lifetime");
}

#[tokio::test]
async fn joins_with_after_read_the_page_the_cursor_and_the_catch_up_once_each_and_another_after_reads_its_own() {
    let (b, _sinks) = keeping_broadcaster(None);
    let mut store = store_with_request();
    nothing_unread(&mut store);
    for after in [3, 4] {
        store
            .expect_history()
            .withf(move |_, q| q.cursor == Cursor::After(mid(after)))
            .times(1)
            .returning(|_, _| Ok(Some(HistoryPage { messages: vec![message(5, 5)], has_more: false })));
        store
            .expect_message()
            .withf(move |_, id| *id == mid(after))
            .times(1)
            .returning(move |_, _| Ok(Some(message(after, u64::from(after)))));
    }
    store.expect_changed().times(2).returning(|_, _, _| Ok(HistoryPage::default()));
    let chat = chat(store, b);
    assert_eq!(join_each(&chat, 1, 3, Some(mid(3))).await, [Some(5); 3]);
    assert_eq!(join_each(&chat, 4, 3, Some(mid(4))).await, [Some(5); 3]);
    assert_eq!(chat.history_reuses(), 4);
}

#[tokio::test]
async fn a_stored_change_of_the_room_between_two_joins_makes_the_second_read_again() {
    let (b, sinks) = keeping_broadcaster(None);
    let mut store = store_reading_latest(4);
    store.expect_mark().returning(|_, _, _, ids, _| Ok(Marked { delivered: vec![], read: ids.to_vec() }));
    store.expect_count_read().returning(|_, _, _| Ok(()));
    let chat = chat(store, b);
    join_each(&chat, 1, 1, None).await;
    // Typing and presence change nothing stored: the page still serves.
    let typing = RoomEvent::Typing { request_id: rid(1), user_id: UserId::parse("lab1").unwrap(), role: Role::Lab };
    deliver(&sinks, typing);
    join_each(&chat, 2, 1, None).await;
    assert_eq!(chat.history_reuses(), 1);
    // A receipt marked on this node, a message of another node, an edit: each reaches the
    // room's sinks, and the next join reads afresh.
    chat.mark(&user("lab1", Role::Lab), rid(1), ReceiptKind::Read, &[mid(5)]).await.unwrap();
    join_each(&chat, 3, 1, None).await;
    deliver(&sinks, RoomEvent::MessagePosted(message(6, 6)));
    join_each(&chat, 4, 1, None).await;
    deliver(&sinks, RoomEvent::MessageEdited(message(5, 5)));
    join_each(&chat, 5, 1, None).await;
    assert_eq!(chat.history_reuses(), 1, "four reads for five joins");
}

#[tokio::test]
async fn a_page_lapses_after_its_lifetime_and_when_a_sink_leaves() {
    let (b, _sinks) = keeping_broadcaster(None);
    let chat = chat(store_reading_latest(2), b).with_join_reuse(Duration::from_millis(1));
    join_each(&chat, 1, 1, None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    join_each(&chat, 2, 1, None).await;
    assert_eq!(chat.history_reuses(), 0, "read again once the lifetime is over");

    let (b, sinks) = keeping_broadcaster(None);
    let chat = super::tests::chat(store_reading_latest(3), b);
    join_each(&chat, 1, 2, None).await;
    assert_eq!(chat.history_reuses(), 1);
    // Any sink leaving may be the room's last on this node (then the node no longer hears the
    // room): the pages lapse.
    chat.leave(&user("lab1", Role::Lab), rid(1), SinkId(1)).await.unwrap();
    join_each(&chat, 3, 1, None).await;
    assert_eq!(chat.history_reuses(), 1, "read again after a sink left");
    for (who, id) in [("lab2", 2), ("lab3", 3)] {
        chat.leave(&user(who, Role::Lab), rid(1), SinkId(id)).await.unwrap();
    }
    assert!(sinks.lock().unwrap().is_empty());
    join_each(&chat, 4, 1, None).await;
    assert_eq!(chat.history_reuses(), 1, "no page outlives the room's last sink");
}

#[tokio::test]
async fn a_page_is_not_reused_while_the_backplane_is_down_nor_after_a_failed_catch_up() {
    let up = Arc::new(Mutex::new(false));
    let (b, _sinks) = keeping_broadcaster(Some(Arc::clone(&up)));
    let chat = chat(store_reading_latest(2), b);
    join_each(&chat, 1, 2, None).await;
    assert_eq!(chat.history_reuses(), 0);
    *up.lock().unwrap() = true;
    join_each(&chat, 3, 1, None).await;
    assert_eq!(chat.history_reuses(), 1);

    let (b, _sinks) = keeping_broadcaster(None);
    let mut store = store_with_request();
    nothing_unread(&mut store);
    store.expect_history().times(2).returning(|_, _| Ok(Some(HistoryPage::default())));
    store.expect_message().times(2).returning(|_, _| Ok(Some(message(3, 3))));
    store
        .expect_changed()
        .times(2)
        .returning(|_, _, _| Err(crate::StoreError::Unavailable { context: "reading".into(), source: None }));
    let chat = super::tests::chat(store, b);
    join_each(&chat, 1, 2, Some(mid(3))).await;
    assert_eq!(chat.history_reuses(), 0, "a catch-up that failed is not kept");
}
