//! Interaction tests of the use cases with the ports' mockall mocks.

use std::sync::Arc;

use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, HistoryPage, Message, MessageId, MessageText, ReceiptKind, Request,
    RequestId, Role, RoomEvent, Timestamp, User, UserId,
};
use mockall::Sequence;
use mockall::predicate::eq;

use super::*;
use crate::{Marked, MockBroadcaster, MockChatStore, MockClock, MockRoomSink};

fn rid(n: u32) -> RequestId {
    RequestId::parse(&format!("{n:024x}")).unwrap()
}
fn mid(n: u32) -> MessageId {
    MessageId::parse(&format!("{n:024x}")).unwrap()
}
fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}
fn text(s: &str) -> MessageText {
    MessageText::parse(s, 100).unwrap()
}

fn clock() -> MockClock {
    let mut c = MockClock::new();
    c.expect_now().return_const(Timestamp::from_unix_millis(1_700_000_000_000));
    c
}

/// A store whose only request is `rid(1)`, created by teacher `t1`.
fn store_with_request() -> MockChatStore {
    let mut s = MockChatStore::new();
    s.expect_find_request()
        .returning(|id| Ok((id == rid(1)).then(|| Request::new(rid(1), UserId::parse("t1").unwrap()))));
    s
}

fn chat(store: MockChatStore, broadcaster: MockBroadcaster) -> Chat {
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
        assert!(matches!(err, PostError::Forbidden), "{who:?} on {request}: {err:?}");
    }
}

#[tokio::test]
async fn a_stored_message_is_broadcast_once_after_it_is_stored() {
    let mut seq = Sequence::new();
    let mut store = store_with_request();
    store
        .expect_insert_message()
        .withf(|m| m.sender_id.as_str() == "t1" && m.sender_role == Role::Teacher && m.text.as_str() == "hi")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Inserted::New(labchat_domain::Seq::new(7).unwrap())));
    let mut b = MockBroadcaster::new();
    b.expect_publish()
        .withf(|e| {
            matches!(e, RoomEvent::MessagePosted(m)
                if m.text.as_str() == "hi" && m.request_id == rid(1) && m.seq.map(|s| s.get()) == Some(7))
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
async fn a_duplicate_send_broadcasts_nothing_and_returns_the_original() {
    let original = Message {
        id: mid(7),
        request_id: rid(1),
        seq: Some(labchat_domain::Seq::FIRST),
        sender_id: UserId::parse("lab").unwrap(),
        sender_role: Role::Lab,
        text: text("first"),
        created_at: Timestamp::from_unix_millis(1),
        client_message_id: Some(ClientMessageId::parse("c1").unwrap()),
        delivered_to: vec![],
        read_by: vec![],
    };
    let mut store = store_with_request();
    let o = original.clone();
    store.expect_insert_message().times(1).returning(move |_| Ok(Inserted::Duplicate(o.clone())));
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let cid = Some(ClientMessageId::parse("c1").unwrap());
    let posted = chat(store, b).post(&user("lab", Role::Lab), rid(1), text("retry"), cid).await.unwrap();
    assert_eq!(posted, Posted { message: original, duplicate: true });
}

#[tokio::test]
async fn a_store_outage_fails_the_post_and_broadcasts_nothing() {
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Err(StoreError::unavailable("insert a message", "connection refused")));
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let err = chat(store, b).post(&user("lab", Role::Lab), rid(1), text("x"), None).await.unwrap_err();
    assert!(matches!(&err, PostError::Store(e) if e.is_retryable()), "{err:?}");
}

#[tokio::test]
async fn a_broadcast_failure_does_not_fail_a_stored_post() {
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Ok(Inserted::New(labchat_domain::Seq::FIRST)));
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
    assert!(matches!(err, MarkError::Forbidden));
}

#[tokio::test]
async fn join_reads_history_then_subscribes_and_forbidden_join_does_neither() {
    let mut store = store_with_request();
    store
        .expect_history()
        .withf(|r, q| *r == rid(1) && q.cursor == Cursor::After(mid(3)) && q.limit == HistoryLimit::DEFAULT)
        .times(1)
        .returning(|_, _| Ok(Some(HistoryPage { messages: vec![], has_more: false })));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().withf(|r, s| *r == rid(1) && s.id() == SinkId(42)).times(1).returning(|_, _| Ok(()));
    let chat = chat(store, b);
    let sink = || {
        let mut s = MockRoomSink::new();
        s.expect_id().return_const(SinkId(42));
        s.expect_deliver().never();
        Arc::new(s) as Arc<dyn RoomSink>
    };
    let joined = chat.join(&user("t1", Role::Teacher), rid(1), Some(mid(3)), sink()).await.unwrap();
    assert!(joined.history.messages.is_empty());
    drop(joined);
    let err = chat.join(&user("t2", Role::Teacher), rid(1), None, sink()).await.unwrap_err();
    assert!(matches!(err, JoinError::Forbidden));
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
    chat.history(&user("lab", Role::Lab), rid(1), Some(mid(5)), limit).await.unwrap();
}

#[tokio::test]
async fn a_store_outage_during_authorization_is_reported_as_such() {
    let mut store = MockChatStore::new();
    store
        .expect_find_request()
        .with(eq(rid(1)))
        .returning(|_| Err(StoreError::unavailable("find a request", "timeout")));
    let err = chat(store, MockBroadcaster::new()).leave(&user("lab", Role::Lab), rid(1), SinkId(1)).await.unwrap_err();
    assert!(matches!(err, LeaveError::Store(StoreError::Unavailable { .. })));
}
