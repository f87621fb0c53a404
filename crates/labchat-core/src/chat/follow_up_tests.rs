//! Follow-ups of posts whose outcome is unknown, with the ports' mocks and paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_domain::{Message, MessageText, Role, RoomEvent, Seq};

use super::CHECKS;
use crate::chat::tests::{chat, rid, store_with_request, user};
use crate::{BackplaneStatus, MockBroadcaster, MockChatStore, StoreError};

fn backplane(present: bool) -> Option<BackplaneStatus> {
    present.then(|| BackplaneStatus { connected: true, detail: "test".to_owned() })
}

/// A store whose insert times out (keeping the message it was given), and whose reads of that
/// message answer `found` in turn (`true`: stored with seq 7), then `false`.
fn store_that_times_out(found: Vec<bool>, kept: Arc<Mutex<Option<Message>>>) -> MockChatStore {
    let mut store = store_with_request();
    let k = Arc::clone(&kept);
    store.expect_insert_message().returning(move |m| {
        *k.lock().unwrap() = Some(m.clone());
        Err(StoreError::unavailable("insert a message", "timed out"))
    });
    store.expect_recount().returning(|_, _| Ok(()));
    let mut answers = found.into_iter();
    store.expect_message().returning(move |_, id| {
        let m = kept.lock().unwrap().clone().filter(|m| m.id == id);
        Ok(m.filter(|_| answers.next().unwrap_or(false)).map(|m| m.with_seq(Seq::new(7).unwrap())))
    });
    store
}

async fn post(chat: &crate::Chat) {
    let text = MessageText::parse("late", 100).unwrap();
    let err = chat.post(&user("lab", Role::Lab), rid(1), text, None).await.unwrap_err();
    assert!(err.to_string().contains("store"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn with_a_backplane_a_post_answered_as_failed_but_stored_later_is_published_once() {
    let kept = Arc::new(Mutex::new(None));
    let store = store_that_times_out(vec![false, true], Arc::clone(&kept));
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut b = MockBroadcaster::new();
    b.expect_backplane().returning(|| backplane(true));
    let p = Arc::clone(&published);
    b.expect_publish().returning(move |e| {
        p.lock().unwrap().push(e);
        Ok(())
    });
    let chat = chat(store, b);
    post(&chat).await;
    assert_eq!(chat.posts_followed_up(), 1);
    tokio::time::sleep(CHECKS[0] + Duration::from_secs(1)).await;
    assert!(published.lock().unwrap().is_empty(), "not stored at the first check: nothing published");
    assert_eq!(chat.posts_followed_up(), 1, "still followed up");
    tokio::time::sleep(CHECKS[1]).await;
    let sent = published.lock().unwrap().clone();
    let id = kept.lock().unwrap().as_ref().map(|m| m.id);
    assert!(
        matches!(sent.as_slice(), [RoomEvent::MessagePosted(m)] if Some(m.id) == id && m.seq == Seq::new(7).ok()),
        "the stored message, once: {sent:?}"
    );
    assert_eq!(chat.posts_followed_up(), 0, "forgotten once published");
    tokio::time::sleep(CHECKS[2] * 2).await;
    assert_eq!(published.lock().unwrap().len(), 1, "never published again");
}

#[tokio::test(start_paused = true)]
async fn a_post_never_stored_is_forgotten_after_the_last_check_and_never_published() {
    let store = store_that_times_out(vec![false, false, false], Arc::new(Mutex::new(None)));
    let mut b = MockBroadcaster::new();
    b.expect_backplane().returning(|| backplane(true));
    b.expect_publish().never();
    let chat = chat(store, b);
    post(&chat).await;
    tokio::time::sleep(CHECKS[CHECKS.len() - 1] + Duration::from_secs(1)).await;
    assert_eq!(chat.posts_followed_up(), 0);
    assert_eq!(chat.follow_ups.lock().capacity(), 0, "the task ended and gave the map's memory back");
}

#[tokio::test(start_paused = true)]
async fn without_a_backplane_nothing_is_followed_up() {
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Err(StoreError::unavailable("insert a message", "timed out")));
    store.expect_message().never();
    store.expect_recount().returning(|_, _| Ok(()));
    let mut b = MockBroadcaster::new();
    b.expect_backplane().returning(|| backplane(false));
    b.expect_publish().never();
    let chat = chat(store, b);
    post(&chat).await;
    assert_eq!(chat.posts_followed_up(), 0);
    tokio::time::sleep(CHECKS[CHECKS.len() - 1] * 2).await;
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_reads_keep_failing_is_read_once_per_check_and_then_forgotten() {
    let reads = Arc::new(Mutex::new(0));
    let mut store = store_with_request();
    store.expect_insert_message().returning(|_| Err(StoreError::unavailable("insert a message", "timed out")));
    store.expect_recount().returning(|_, _| Ok(()));
    let r = Arc::clone(&reads);
    store.expect_message().returning(move |_, _| {
        *r.lock().unwrap() += 1;
        Err(StoreError::unavailable("read a message", "down"))
    });
    let mut b = MockBroadcaster::new();
    b.expect_backplane().returning(|| backplane(true));
    b.expect_publish().never();
    let chat = chat(store, b);
    post(&chat).await;
    tokio::time::sleep(CHECKS[1] + Duration::from_secs(1)).await;
    assert_eq!((*reads.lock().unwrap(), chat.posts_followed_up()), (2, 1), "one read per check so far");
    tokio::time::sleep(CHECKS[2]).await;
    assert_eq!((*reads.lock().unwrap(), chat.posts_followed_up()), (3, 0), "forgotten after its last check");
}
