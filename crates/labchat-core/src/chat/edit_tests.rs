//! Interaction tests of the edit and delete use cases with the ports' mockall mocks: what is
//! written, what is published, and that a refusal touches neither.

use std::sync::Arc;

use labchat_domain::{
    HistoryLimit, Message, MessageId, MessageText, NewMessage, Request, RequestId, Role, RoomEvent, Timestamp, User,
    UserId,
};

use super::*;
use crate::{FailureKind, InboxNotice, MockBroadcaster, MockChatStore, MockClock, StoreError};

const NOW: i64 = 1_700_000_000_000;

fn rid() -> RequestId {
    RequestId::parse(&format!("{:024x}", 1)).unwrap()
}
fn mid() -> MessageId {
    MessageId::parse(&format!("{:024x}", 7)).unwrap()
}
fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}
fn text(s: &str) -> MessageText {
    MessageText::parse(s, 100).unwrap()
}

/// Message `mid()` of `rid()`, sent by teacher `t1` `age_ms` before now.
fn stored(age_ms: i64) -> Message {
    Message::new(NewMessage {
        id: mid(),
        request_id: rid(),
        sender_id: UserId::parse("t1").unwrap(),
        sender_role: Role::Teacher,
        text: text("draft"),
        created_at: Timestamp::from_unix_millis(NOW - age_ms),
        client_message_id: None,
    })
    .with_seq(labchat_domain::Seq::FIRST)
}

/// A store holding request `rid()` of `t1` and `message`.
fn store(message: Message) -> MockChatStore {
    let mut s = MockChatStore::new();
    s.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
    s.expect_message().returning(move |_, _| Ok(Some(message.clone())));
    s
}

fn chat(store: MockChatStore, broadcaster: MockBroadcaster) -> Chat {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(Timestamp::from_unix_millis(NOW));
    Chat::new(Arc::new(store), Arc::new(broadcaster), Arc::new(clock), HistoryLimit::DEFAULT)
}

#[tokio::test]
async fn an_edit_is_stored_then_published_with_the_new_text() {
    let mut s = store(stored(1_000));
    s.expect_update_message()
        .withf(|m| m.text().map(MessageText::as_str) == Some("final") && m.edited_at().is_some())
        .times(1)
        .returning(|_| Ok(true));
    let mut b = MockBroadcaster::new();
    b.expect_publish()
        .withf(|e| matches!(e, RoomEvent::MessageEdited(m) if m.text().map(MessageText::as_str) == Some("final")))
        .times(1)
        .returning(|_| Ok(()));
    let edited = chat(s, b).edit(&user("t1", Role::Teacher), rid(), mid(), text("final")).await.unwrap();
    assert_eq!(edited.edited_at(), Some(Timestamp::from_unix_millis(NOW)));
}

#[tokio::test]
async fn a_refused_edit_writes_and_publishes_nothing() {
    for (who, age_ms, kind) in [
        (user("lab-1", Role::Lab), 1_000, FailureKind::Forbidden),
        (user("t1", Role::Teacher), 16 * 60 * 1000, FailureKind::Forbidden),
    ] {
        let mut s = store(stored(age_ms));
        s.expect_update_message().never();
        let mut b = MockBroadcaster::new();
        b.expect_publish().never();
        let e = chat(s, b).edit(&who, rid(), mid(), text("x")).await.unwrap_err();
        assert!(matches!(e, ChatError::EditRefused(_)), "{e:?}");
        assert_eq!(e.kind(), kind);
    }
    let mut s = MockChatStore::new();
    s.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
    s.expect_message().returning(|_, _| Ok(None));
    s.expect_update_message().never();
    let e = chat(s, MockBroadcaster::new()).edit(&user("t1", Role::Teacher), rid(), mid(), text("x")).await;
    assert!(matches!(e, Err(ChatError::NoSuchMessage)));
}

#[tokio::test]
async fn a_delete_counts_and_publishes_once_and_a_failed_count_is_left_to_the_recount() {
    let mut s = store(stored(1_000));
    s.expect_update_message().withf(|m| m.deletion().is_some() && m.text().is_none()).times(1).returning(|_| Ok(true));
    s.expect_count_deleted().times(1).returning(|_| Err(StoreError::unavailable("count", "timed out")));
    let mut b = MockBroadcaster::new();
    b.expect_publish().withf(|e| matches!(e, RoomEvent::MessageDeleted(_))).times(1).returning(|_| Ok(()));
    let chat = chat(s, b);
    let tombstone = chat.delete(&user("lab-1", Role::Lab), rid(), mid()).await.unwrap();
    assert_eq!(tombstone.deletion().map(|d| d.by.as_str()), Some("lab-1"));
    assert_eq!(chat.recounts_waiting(), 1, "the sender's count waits for a recount");
}

#[tokio::test]
async fn deleting_a_tombstone_again_answers_with_it_and_does_nothing() {
    let mut tombstone = stored(1_000);
    tombstone.delete(rid(), &user("t1", Role::Teacher), Timestamp::from_unix_millis(NOW - 10)).unwrap();
    let mut s = store(tombstone.clone());
    s.expect_update_message().never();
    s.expect_count_deleted().never();
    let mut b = MockBroadcaster::new();
    b.expect_publish().never();
    let again = chat(s, b).delete(&user("lab-1", Role::Lab), rid(), mid()).await.unwrap();
    assert_eq!(again, tombstone);
}

#[tokio::test]
async fn a_failed_count_is_recounted_in_the_background_and_the_task_gives_its_memory_back() {
    let mut s = store(stored(1_000));
    s.expect_update_message().times(1).returning(|_| Ok(true));
    s.expect_count_deleted().times(1).returning(|_| Err(StoreError::unavailable("count", "timed out")));
    s.expect_recount().times(1).returning(|_, _| Ok(()));
    let mut b = MockBroadcaster::new();
    b.expect_publish().returning(|_| Ok(()));
    // Each recount's notice goes to every node's inbox.
    b.expect_notify_inbox().times(1).withf(|n| *n == InboxNotice::Posted { request_id: rid() }).return_const(());
    let chat = chat(s, b);
    chat.delete(&user("lab-1", Role::Lab), rid(), mid()).await.unwrap();
    assert_eq!(chat.recounts_waiting(), 1);
    // The recount runs once the failure settled.
    let deadline = std::time::Instant::now() + recount::SETTLE + Duration::from_secs(5);
    while chat.recounts.capacity() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chat.recounts_waiting(), 0, "recounted and forgotten");
    assert_eq!(chat.recounts.capacity(), 0, "the task ended and gave the map's memory back");
}
