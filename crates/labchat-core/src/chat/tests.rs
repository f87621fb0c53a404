//! Interaction tests of the use cases with the ports' mockall mocks.

use std::sync::Arc;

use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, HistoryPage, Message, MessageId, MessageRecord, MessageText, ReceiptKind,
    Request, RequestId, Role, RoomEvent, Timestamp, User, UserId,
};
use mockall::Sequence;
use mockall::predicate::eq;

use super::*;
use crate::{
    BroadcastError, FailureKind, Inserted, JoinError, Marked, MockBroadcaster, MockChatStore, MockClock, MockRoomSink,
    RoomSink, StoreError,
};

pub(super) fn rid(n: u32) -> RequestId {
    RequestId::parse(&format!("{n:024x}")).unwrap()
}
pub(super) fn mid(n: u32) -> MessageId {
    MessageId::parse(&format!("{n:024x}")).unwrap()
}
pub(super) fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}
fn text(s: &str) -> MessageText {
    MessageText::parse(s, 100).unwrap()
}

pub(super) fn clock() -> MockClock {
    let mut c = MockClock::new();
    c.expect_now().return_const(Timestamp::from_unix_millis(1_700_000_000_000));
    c
}

/// A store whose only request is `rid(1)`, created by teacher `t1`.
pub(super) fn store_with_request() -> MockChatStore {
    let mut s = MockChatStore::new();
    s.expect_find_request()
        .returning(|id| Ok((id == rid(1)).then(|| Request::new(rid(1), UserId::parse("t1").unwrap()))));
    s
}

/// The joining user has nothing unread.
pub(super) fn nothing_unread(store: &mut MockChatStore) {
    store.expect_unread_count().returning(|_, _| Ok(0));
    store.expect_first_unread().never();
}

/// A join with `after` = message `n` (of seq `seq`) finds nothing changed since it.
pub(super) fn nothing_changed(store: &mut MockChatStore, n: u32, seq: u64) {
    store
        .expect_message()
        .withf(move |r, id| *r == rid(1) && *id == mid(n))
        .returning(move |_, _| Ok(Some(message(n, seq))));
    store.expect_changed().returning(|_, _, _| Ok(HistoryPage::default()));
}

pub(super) fn chat(store: MockChatStore, broadcaster: MockBroadcaster) -> Chat {
    Chat::new(Arc::new(store), Arc::new(broadcaster), Arc::new(clock()), HistoryLimit::DEFAULT)
}

#[tokio::test]
async fn an_unauthorized_post_never_reaches_the_store_or_the_broadcaster() {
    for (who, request) in [(user("t2", Role::Teacher), rid(1)), (user("lab", Role::Lab), rid(2))] {
        let mut store = store_with_request();
        store.expect_insert_message().never();
        let mut b = MockBroadcaster::new();
        b.expect_publish().never();
        let err = chat(store, b).post(&who, request, text("hi"), None).await.unwrap_err();
        assert!(matches!(err, ChatError::Forbidden), "{who:?} on {request}: {err:?}");
    }
}

#[tokio::test]
async fn a_stored_message_is_broadcast_once_after_it_is_stored() {
    let mut seq = Sequence::new();
    let mut store = store_with_request();
    store
        .expect_insert_message()
        .withf(|m| {
            m.sender_id.as_str() == "t1"
                && m.sender_role == Role::Teacher
                && m.text().map(MessageText::as_str).unwrap_or_default() == "hi"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Inserted::New(labchat_domain::Seq::new(7).unwrap())));
    store
        .expect_count_posted()
        .withf(|m, s| m.text().map(MessageText::as_str) == Some("hi") && s.get() == 7)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut b = MockBroadcaster::new();
    b.expect_publish()
        .withf(|e| {
            matches!(e, RoomEvent::MessagePosted(m)
                if m.text().map(MessageText::as_str).unwrap_or_default() == "hi" && m.request_id == rid(1) && m.seq.map(|s| s.get()) == Some(7))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let posted = chat(store, b).post(&user("t1", Role::Teacher), rid(1), text("hi"), None).await.unwrap();
    assert!(!posted.duplicate);
    assert_eq!(posted.message.seq.map(|s| s.get()), Some(7), "the message carries the seq the store gave it");
    assert_eq!(posted.message.created_at, Timestamp::from_unix_millis(1_700_000_000_000));
}

#[tokio::test]
async fn a_repeated_send_broadcasts_nothing_and_returns_the_original_another_text_is_refused() {
    let original = Message::restore(MessageRecord {
        id: mid(7),
        request_id: rid(1),
        seq: Some(labchat_domain::Seq::FIRST),
        sender_id: UserId::parse("lab").unwrap(),
        sender_role: Role::Lab,
        text: Some(text("first")),
        created_at: Timestamp::from_unix_millis(1),
        client_message_id: Some(ClientMessageId::parse("c1").unwrap()),
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap();
    let mut store = store_with_request();
    let o = original.clone();
    store.expect_insert_message().times(2).returning(move |_| Ok(Inserted::Duplicate(o.clone())));
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let chat = chat(store, b);
    let cid = Some(ClientMessageId::parse("c1").unwrap());
    let posted = chat.post(&user("lab", Role::Lab), rid(1), text("first"), cid.clone()).await.unwrap();
    assert_eq!(posted, Posted { message: original, duplicate: true });
    let err = chat.post(&user("lab", Role::Lab), rid(1), text("another"), cid).await.unwrap_err();
    assert!(matches!(err, ChatError::ClientMessageIdReused), "{err:?}");
    assert_eq!(err.kind(), FailureKind::BadRequest);
}

#[tokio::test]
async fn a_store_outage_fails_the_post_and_broadcasts_nothing() {
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Err(StoreError::unavailable("insert a message", "connection refused")));
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    // One node: a post whose outcome is unknown is never published (`follow_up.rs`).
    b.expect_backplane().return_const(None);
    let err = chat(store, b).post(&user("lab", Role::Lab), rid(1), text("x"), None).await.unwrap_err();
    assert!(matches!(&err, ChatError::Store { source, .. } if source.is_retryable()), "{err:?}");
    assert_eq!(err.kind(), FailureKind::Unavailable);
}

#[tokio::test]
async fn a_broadcast_failure_does_not_fail_a_stored_post() {
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Ok(Inserted::New(labchat_domain::Seq::FIRST)));
    store.expect_count_posted().returning(|_, _| Ok(()));
    let mut b = MockBroadcaster::new();
    b.expect_publish().times(1).returning(|_| Err(BroadcastError("bus down".into())));
    assert!(chat(store, b).post(&user("lab", Role::Lab), rid(1), text("x"), None).await.is_ok());
}

#[tokio::test]
async fn reading_announces_new_deliveries_first_then_reads() {
    let mut seq = Sequence::new();
    let mut store = store_with_request();
    store
        .expect_mark()
        .withf(|r, u, k, ids, _| {
            *r == rid(1) && u.as_str() == "lab" && *k == ReceiptKind::Read && ids == [mid(1), mid(2)]
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(Marked { delivered: vec![mid(2)], read: vec![mid(1), mid(2)] }));
    store
        .expect_count_read()
        .withf(|r, u, n| *r == rid(1) && u.as_str() == "lab" && *n == 2)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut b = MockBroadcaster::new();
    b.expect_publish()
        .withf(|e| matches!(e, RoomEvent::Delivered { messages, .. } if messages == &[mid(2)]))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    b.expect_publish()
        .withf(|e| matches!(e, RoomEvent::Read { messages, user_id, .. } if messages == &[mid(1), mid(2)] && user_id.as_str() == "lab"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    // The duplicate id is sent to the store once.
    let got = chat(store, b)
        .mark(&user("lab", Role::Lab), rid(1), ReceiptKind::Read, &[mid(1), mid(2), mid(1)])
        .await
        .unwrap();
    assert_eq!(got, vec![mid(1), mid(2)]);
}

#[tokio::test]
async fn marking_nothing_new_broadcasts_nothing() {
    let mut store = store_with_request();
    store.expect_mark().returning(|_, _, _, _, _| Ok(Marked::default()));
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let got = chat(store, b).mark(&user("t1", Role::Teacher), rid(1), ReceiptKind::Delivered, &[mid(9)]).await.unwrap();
    assert!(got.is_empty());
}

#[tokio::test]
async fn a_forbidden_mark_never_touches_the_store() {
    let mut store = store_with_request();
    store.expect_mark().never();
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let err = chat(store, b).mark(&user("t2", Role::Teacher), rid(1), ReceiptKind::Read, &[mid(1)]).await.unwrap_err();
    assert!(matches!(err, ChatError::Forbidden));
}

pub(crate) fn message(n: u32, seq: u64) -> Message {
    Message::restore(MessageRecord {
        id: mid(n),
        request_id: rid(1),
        seq: Some(labchat_domain::Seq::new(seq).unwrap()),
        sender_id: UserId::parse("lab").unwrap(),
        sender_role: Role::Lab,
        text: Some(text("m")),
        created_at: Timestamp::from_unix_millis(1),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

fn quiet_sink(id: u64) -> Arc<dyn RoomSink> {
    let mut s = MockRoomSink::new();
    s.expect_id().return_const(SinkId(id));
    s.expect_deliver().never();
    Arc::new(s)
}

#[tokio::test]
async fn join_subscribes_then_reads_history_and_forbidden_join_does_neither() {
    let mut order = Sequence::new();
    let mut store = store_with_request();
    nothing_unread(&mut store);
    let mut b = MockBroadcaster::new();
    b.expect_subscribe()
        .withf(|r, s| *r == rid(1) && s.id() == SinkId(42))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(()));
    store
        .expect_history()
        .withf(|r, q| *r == rid(1) && q.cursor == Cursor::After(mid(3)) && q.limit == HistoryLimit::DEFAULT)
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(Some(HistoryPage { messages: vec![message(4, 4), message(5, 5)], has_more: false })));
    nothing_changed(&mut store, 3, 3);
    b.expect_unsubscribe().never();
    b.expect_publish().times(1).withf(|e| matches!(e, RoomEvent::MemberJoined { .. })).returning(|_| Ok(()));
    let chat = chat(store, b);
    let joined = chat.join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(42), false).await.unwrap();
    assert_eq!(joined.history.messages.len(), 2);
    assert_eq!(joined.covered.map(|s| s.get()), Some(5), "the page covers up to its last message");
    drop(joined);
    let err = chat.join(&user("t2", Role::Teacher), rid(1), None, quiet_sink(42), false).await.unwrap_err();
    assert!(matches!(err, JoinError::Chat(ChatError::Forbidden)));
}

#[tokio::test]
async fn an_empty_page_after_a_message_covers_up_to_that_message() {
    let mut store = store_with_request();
    nothing_unread(&mut store);
    store
        .expect_history()
        .withf(|_, q| q.cursor == Cursor::After(mid(3)))
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage::default())));
    // mid(3) is the message of seq 7, read once, for the cover and the catch-up alike.
    store.expect_message().times(1).returning(|_, _| Ok(Some(message(3, 7))));
    store.expect_changed().times(1).returning(|_, _, _| Ok(HistoryPage::default()));
    store
        .expect_history()
        .withf(|_, q| q.cursor == Cursor::Latest)
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage::default())));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_backplane().return_const(Some(crate::BackplaneStatus { connected: true, detail: String::new() }));
    // The first join of the user announces them; the second, from the same sink, does not.
    b.expect_publish().times(1).withf(|e| matches!(e, RoomEvent::MemberJoined { .. })).returning(|_| Ok(()));
    let chat = chat(store, b);
    let joined = chat.join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(1), false).await.unwrap();
    assert!(joined.history.messages.is_empty());
    assert_eq!(joined.covered.map(|s| s.get()), Some(7));
    drop(joined);
    let empty_room = chat.join(&user("t1", Role::Teacher), rid(1), None, quiet_sink(1), false).await.unwrap();
    assert_eq!(empty_room.covered, None, "an empty room's history covers nothing");
}

#[tokio::test]
async fn a_cursor_that_is_no_message_of_the_room_refuses_the_join() {
    let mut store = store_with_request();
    store.expect_history().times(1).returning(|_, _| Ok(Some(HistoryPage::default())));
    store.expect_message().times(1).returning(|_, _| Ok(None));
    store.expect_changed().never();
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_unsubscribe().times(1).returning(|_, _| Ok(()));
    let err =
        chat(store, b).join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(1), false).await.unwrap_err();
    assert!(matches!(err, JoinError::Chat(ChatError::NotInRoom(_))), "{err:?}");
}

#[tokio::test]
async fn a_join_after_a_message_replays_what_changed_since_it() {
    let mut store = store_with_request();
    nothing_unread(&mut store);
    store.expect_history().times(1).returning(|_, _| Ok(Some(HistoryPage::default())));
    let last = message(3, 3);
    let created = last.created_at;
    store.expect_message().times(1).returning(move |_, _| Ok(Some(message(3, 3))));
    // Message 2, read by t1 after message 3 was stored.
    let at = Timestamp::from_unix_millis(created.unix_millis() + 60_000);
    let mut read = message(2, 2);
    read.mark(rid(1), &UserId::parse("t1").unwrap(), labchat_domain::ReceiptKind::Read, at);
    let page = HistoryPage { messages: vec![read], has_more: true };
    let want = labchat_domain::CatchUp {
        up_to: labchat_domain::Seq::new(3).unwrap(),
        since: Timestamp::from_unix_millis(created.unix_millis() - labchat_domain::CATCH_UP_MARGIN_MILLIS),
    };
    store
        .expect_changed()
        .withf(move |r, c, limit| *r == rid(1) && *c == want && *limit == HistoryLimit::DEFAULT)
        .times(1)
        .returning(move |_, _, _| Ok(page.clone()));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_backplane().return_const(None);
    b.expect_publish().returning(|_| Ok(()));
    let joined =
        chat(store, b).join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(1), false).await.unwrap();
    let events = joined.catch_up.events(0);
    let kinds: Vec<_> = events.iter().map(RoomEvent::kind).collect();
    assert_eq!(kinds, [labchat_domain::RoomEventKind::Delivered, labchat_domain::RoomEventKind::Read]);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, RoomEvent::Delivered { at: t, .. } | RoomEvent::Read { at: t, .. } if *t == at))
    );
    // The store left older changes out: the held messages below the first it gave may be stale.
    assert_eq!(joined.catch_up.stale_below, Some(labchat_domain::Seq::new(2).unwrap()));
}

#[tokio::test]
async fn a_failed_catch_up_read_still_joins_and_says_every_held_message_may_be_stale() {
    let mut store = store_with_request();
    nothing_unread(&mut store);
    store.expect_history().times(1).returning(|_, _| Ok(Some(HistoryPage::default())));
    store.expect_message().times(1).returning(|_, _| Ok(Some(message(3, 3))));
    store.expect_changed().times(1).returning(|_, _, _| Err(StoreError::unavailable("scan", "timed out")));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_backplane().return_const(None);
    b.expect_unsubscribe().never();
    b.expect_publish().returning(|_| Ok(()));
    let joined =
        chat(store, b).join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(1), false).await.unwrap();
    assert!(joined.catch_up.events(0).is_empty());
    assert_eq!(joined.catch_up.stale_below, Some(labchat_domain::Seq::MAX));
}

#[tokio::test]
async fn a_failed_history_read_unsubscribes_a_new_member_but_not_a_rejoining_one() {
    for rejoin in [false, true] {
        let mut store = store_with_request();
        store.expect_history().returning(|_, _| Ok(None));
        let mut b = MockBroadcaster::new();
        b.expect_subscribe().times(1).returning(|_, _| Ok(()));
        b.expect_unsubscribe().with(eq(rid(1)), eq(SinkId(5))).times(usize::from(!rejoin)).returning(|_, _| Ok(()));
        let err = chat(store, b)
            .join(&user("lab", Role::Lab), rid(1), Some(mid(9)), quiet_sink(5), rejoin)
            .await
            .unwrap_err();
        assert!(matches!(err, JoinError::Chat(ChatError::NotInRoom(_))), "rejoin {rejoin}: {err:?}");
    }
}

#[tokio::test]
async fn history_never_exceeds_the_configured_limit() {
    let mut store = store_with_request();
    store
        .expect_history()
        .withf(|_, q| q.cursor == Cursor::Before(mid(5)) && q.limit.get() == 200)
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage::default())));
    let chat = chat(store, MockBroadcaster::new());
    let limit = Some(HistoryLimit::new(5000).unwrap());
    chat.history(&user("lab", Role::Lab), rid(1), labchat_domain::Cursor::Before(mid(5)), limit).await.unwrap();
}

#[tokio::test]
async fn a_store_outage_during_authorization_is_reported_as_such() {
    let mut store = MockChatStore::new();
    store
        .expect_find_request()
        .with(eq(rid(1)))
        .returning(|_| Err(StoreError::unavailable("find a request", "timeout")));
    let err = chat(store, MockBroadcaster::new()).check_access(&user("lab", Role::Lab), rid(1)).await.unwrap_err();
    assert!(matches!(err, ChatError::Store { source: StoreError::Unavailable { .. }, .. }), "{err:?}");
    assert_eq!(err.kind(), FailureKind::Unavailable);
}

#[tokio::test]
async fn leaving_needs_no_authorization() {
    let mut store = MockChatStore::new();
    store.expect_find_request().never();
    let mut b = MockBroadcaster::new();
    b.expect_unsubscribe().with(eq(rid(1)), eq(SinkId(7))).times(1).returning(|_, _| Ok(()));
    chat(store, b).leave(&user("t1", Role::Teacher), rid(1), SinkId(7)).await.unwrap();
}

#[tokio::test]
async fn a_failed_subscription_fails_the_join_as_unavailable() {
    let mut store = store_with_request();
    store.expect_history().returning(|_, _| Ok(Some(HistoryPage::default())));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Err(BroadcastError("bus down".into())));
    let mut sink = MockRoomSink::new();
    sink.expect_id().return_const(SinkId(1));
    let err = chat(store, b).join(&user("lab", Role::Lab), rid(1), None, Arc::new(sink), false).await.unwrap_err();
    assert!(matches!(err, JoinError::Subscribe(_)), "{err:?}");
    assert_eq!(err.kind(), FailureKind::Unavailable);
}

#[tokio::test]
async fn a_found_request_is_looked_up_once_per_ttl() {
    let mut store = MockChatStore::new();
    store.expect_find_request().times(1).returning(|_| Ok(Some(Request::new(rid(1), UserId::parse("t1").unwrap()))));
    let chat = chat(store, MockBroadcaster::new());
    for _ in 0..3 {
        chat.check_access(&user("t1", Role::Teacher), rid(1)).await.unwrap();
        chat.check_access(&user("lab", Role::Lab), rid(1)).await.unwrap();
    }
}

#[tokio::test]
async fn with_a_zero_ttl_every_call_looks_the_request_up() {
    let mut store = MockChatStore::new();
    store.expect_find_request().times(2).returning(|_| Ok(Some(Request::new(rid(1), UserId::parse("t1").unwrap()))));
    let chat = chat(store, MockBroadcaster::new()).with_access_ttl(std::time::Duration::ZERO);
    chat.check_access(&user("t1", Role::Teacher), rid(1)).await.unwrap();
    chat.check_access(&user("t1", Role::Teacher), rid(1)).await.unwrap();
}

/// The request is reassigned from t1 to t2 in the store after it was cached: t2 is allowed at
/// once (the refusal by the cached entry is confirmed with a fresh lookup, which refreshes the
/// cache), and from then on t1 is refused.
#[tokio::test]
async fn a_refusal_is_confirmed_with_a_fresh_lookup_which_refreshes_the_cache() {
    let mut seq = Sequence::new();
    let mut store = MockChatStore::new();
    let by = |u: &str| Ok(Some(Request::new(rid(1), UserId::parse(u).unwrap())));
    store.expect_find_request().times(1).in_sequence(&mut seq).returning(move |_| by("t1"));
    store.expect_find_request().times(2).in_sequence(&mut seq).returning(move |_| by("t2"));
    let chat = chat(store, MockBroadcaster::new());
    chat.check_access(&user("t1", Role::Teacher), rid(1)).await.unwrap();
    chat.check_access(&user("t2", Role::Teacher), rid(1)).await.unwrap();
    chat.check_access(&user("t2", Role::Teacher), rid(1)).await.unwrap();
    let err = chat.check_access(&user("t1", Role::Teacher), rid(1)).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Forbidden);
}

/// While the store's lookups fail, a request kept past its lifetime (up to twice it) still
/// allows, without a lookup that would fail too; past twice the lifetime the store is asked.
#[tokio::test]
async fn while_lookups_fail_a_kept_request_allows_for_one_lifetime_more() {
    let ttl = std::time::Duration::from_secs(1);
    let mut seq = Sequence::new();
    let mut store = MockChatStore::new();
    let by = |u: &str| Ok(Some(Request::new(rid(1), UserId::parse(u).unwrap())));
    store.expect_find_request().with(eq(rid(1))).times(1).in_sequence(&mut seq).returning(move |_| by("t1"));
    let down = || Err(StoreError::unavailable("find a request", "timeout"));
    store.expect_find_request().with(eq(rid(2))).times(1).in_sequence(&mut seq).returning(move |_| down());
    // A refusal by the kept request is still confirmed in the store, which fails.
    store.expect_find_request().with(eq(rid(1))).times(1).in_sequence(&mut seq).returning(move |_| down());
    store.expect_find_request().with(eq(rid(1))).times(1).in_sequence(&mut seq).returning(move |_| by("t1"));
    // The refresh of the entry used past half its lifetime fails too.
    store.expect_find_requests().returning(|_| Err(StoreError::unavailable("find requests", "timeout")));
    let chat = chat(store, MockBroadcaster::new()).with_access_ttl(ttl);
    let t1 = user("t1", Role::Teacher);
    chat.check_access(&t1, rid(1)).await.unwrap();
    assert_eq!(chat.check_access(&t1, rid(2)).await.unwrap_err().kind(), FailureKind::Unavailable);
    tokio::time::sleep(ttl.mul_f64(1.3)).await;
    chat.check_access(&t1, rid(1)).await.unwrap(); // past its lifetime: no lookup
    let t2 = user("t2", Role::Teacher);
    assert_eq!(chat.check_access(&t2, rid(1)).await.unwrap_err().kind(), FailureKind::Unavailable);
    tokio::time::sleep(ttl).await;
    chat.check_access(&t1, rid(1)).await.unwrap(); // twice its lifetime: looked up
}

#[tokio::test]
async fn a_missing_request_is_looked_up_every_time() {
    let mut store = MockChatStore::new();
    store.expect_find_request().times(2).returning(|_| Ok(None));
    let chat = chat(store, MockBroadcaster::new());
    for _ in 0..2 {
        let err = chat.check_access(&user("lab", Role::Lab), rid(9)).await.unwrap_err();
        assert!(matches!(err, ChatError::Forbidden));
    }
}

/// Messages 1..=4 of room 1: 1 by t1 (the joining teacher), 2 read by t1, 3 and 4 unread.
fn page_with_two_unread_for_t1(has_more: bool) -> HistoryPage {
    let mut messages: Vec<Message> = (1..=4).map(|n| message(n, u64::from(n))).collect();
    messages[0].sender_id = UserId::parse("t1").unwrap();
    let at = Timestamp::from_unix_millis(5);
    messages[1].mark(rid(1), &UserId::parse("t1").unwrap(), ReceiptKind::Read, at);
    HistoryPage { messages, has_more }
}

#[tokio::test]
async fn a_join_tells_the_unread_count_and_finds_the_first_unread_in_its_page_when_it_holds_them_all() {
    // Older messages exist before the page: the count is the store's.
    let page = || page_with_two_unread_for_t1(true);
    for (count, from_store, want) in [(2, None, Some(mid(3))), (3, Some(mid(9)), Some(mid(9))), (0, None, None)] {
        let mut store = store_with_request();
        store.expect_history().returning(move |_, _| Ok(Some(page())));
        store.expect_unread_count().times(1).returning(move |_, _| Ok(count));
        // Asked only when the page does not hold every unread message.
        store.expect_first_unread().times(usize::from(from_store.is_some())).returning(move |_, _| Ok(from_store));
        let mut b = MockBroadcaster::new();
        b.expect_subscribe().returning(|_, _| Ok(()));
        // The joining user's first tab: `memberJoined` is published.
        b.expect_publish().returning(|_| Ok(()));
        let joined = chat(store, b).join(&user("t1", Role::Teacher), rid(1), None, quiet_sink(1), false).await.unwrap();
        assert_eq!(joined.unread, Unread { count, first: want }, "count {count}");
    }
}

#[tokio::test]
async fn a_join_whose_latest_page_holds_the_whole_room_tells_its_unread_from_the_page_alone() {
    let cases = [
        (page_with_two_unread_for_t1(false), Unread { count: 2, first: Some(mid(3)) }),
        (HistoryPage::default(), Unread::default()),
    ];
    for (page, want) in cases {
        let mut store = store_with_request();
        store.expect_history().times(1).returning(move |_, _| Ok(Some(page.clone())));
        store.expect_unread_count().never();
        store.expect_first_unread().never();
        let mut b = MockBroadcaster::new();
        b.expect_subscribe().returning(|_, _| Ok(()));
        b.expect_publish().returning(|_| Ok(()));
        let joined = chat(store, b).join(&user("t1", Role::Teacher), rid(1), None, quiet_sink(1), false).await.unwrap();
        assert_eq!(joined.unread, want);
    }
}

#[tokio::test]
async fn a_join_after_a_message_asks_the_store_for_the_unread_count_even_when_its_page_is_the_last() {
    let mut store = store_with_request();
    store
        .expect_history()
        .withf(|_, q| q.cursor == Cursor::After(mid(3)))
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage { messages: vec![message(4, 4)], has_more: false })));
    nothing_changed(&mut store, 3, 3);
    // Messages before `after` may be unread: the page does not tell them.
    store.expect_unread_count().times(1).returning(|_, _| Ok(5));
    store.expect_first_unread().times(1).returning(|_, _| Ok(Some(mid(1))));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_publish().returning(|_| Ok(()));
    let joined =
        chat(store, b).join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), quiet_sink(1), false).await.unwrap();
    assert_eq!(joined.unread, Unread { count: 5, first: Some(mid(1)) });
}
