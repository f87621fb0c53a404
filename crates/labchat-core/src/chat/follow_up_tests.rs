//! Follow-ups of posts whose outcome is unknown, with the ports' mocks and paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_domain::{Message, MessageText, Role, RoomEvent, Seq};

use super::CHECKS;
use crate::chat::tests::{chat, rid, store_with_request, user};
use crate::{BackplaneStatus, MockBroadcaster, MockChatStore, StoreError};

/// What the ports were asked, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn backplane(present: bool) -> Option<BackplaneStatus> {
    present.then(|| BackplaneStatus { connected: true, detail: "test".to_owned() })
}

/// A store whose insert times out (keeping the message it was given), and whose reads of that
/// message answer `found` in turn (`true`: stored with seq 7), then `false`.
fn store_that_times_out(found: Vec<bool>, kept: Arc<Mutex<Option<Message>>>) -> MockChatStore {
    store_counting_recounts(found, kept, Arc::default())
}

/// The same, logging each recount in `log` as `recount <room> <user>`.
fn store_counting_recounts(found: Vec<bool>, kept: Arc<Mutex<Option<Message>>>, log: Log) -> MockChatStore {
    let mut store = store_with_request();
    let k = Arc::clone(&kept);
    store.expect_insert_message().returning(move |m| {
        *k.lock().unwrap() = Some(m.clone());
        Err(StoreError::unavailable("insert a message", "timed out"))
    });
    store.expect_recount().returning(move |r, u| {
        log.lock().unwrap().push(format!("recount {r} {u}"));
        Ok(())
    });
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
    b.expect_notify_inbox().return_const(());
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
    b.expect_notify_inbox().return_const(());
    b.expect_backplane().returning(|| backplane(true));
    b.expect_publish().never();
    let chat = chat(store, b);
    post(&chat).await;
    tokio::time::sleep(CHECKS[CHECKS.len() - 1] + Duration::from_secs(1)).await;
    assert_eq!(chat.posts_followed_up(), 0);
    assert_eq!(chat.follow_ups.lock().capacity(), 0, "the task ended and gave the map's memory back");
}

/// The recount that follows the failure runs before the message is stored; the one after the
/// check that finds it counts it (with a backplane or without).
async fn a_post_stored_after_its_failure_was_recounted_is_recounted_again(with_backplane: bool) {
    let (kept, log) = (Arc::new(Mutex::new(None)), Log::default());
    let store = store_counting_recounts(vec![false, true], Arc::clone(&kept), Arc::clone(&log));
    let mut b = MockBroadcaster::new();
    b.expect_backplane().returning(move || backplane(with_backplane));
    let l = Arc::clone(&log);
    b.expect_publish().returning(move |_| {
        l.lock().unwrap().push("publish".to_owned());
        Ok(())
    });
    let l = Arc::clone(&log);
    b.expect_notify_inbox().returning(move |n| l.lock().unwrap().push(format!("notify {}", n.request_id())));
    let recount = format!("recount {} lab", rid(1));
    let chat = chat(store, b);
    post(&chat).await;
    assert_eq!(chat.posts_followed_up(), 1);
    tokio::time::sleep(CHECKS[0] + Duration::from_secs(1)).await;
    let notify = format!("notify {}", rid(1));
    assert_eq!(
        *log.lock().unwrap(),
        [recount.clone(), notify.clone()],
        "the failure's own recount, before it was stored"
    );
    tokio::time::sleep(CHECKS[1]).await;
    // Recounted again once found stored, every node's inbox told, before it is published (only
    // with a backplane), so that every node's inbox reads rows that count it.
    let mut want = vec![recount.clone(), notify.clone(), recount, notify];
    if with_backplane {
        want.push("publish".to_owned());
    }
    assert_eq!(*log.lock().unwrap(), want);
    assert_eq!(chat.posts_followed_up(), 0);
    tokio::time::sleep(CHECKS[2] * 2).await;
    assert_eq!(*log.lock().unwrap(), want, "nothing more");
}

#[tokio::test(start_paused = true)]
async fn with_a_backplane_a_post_stored_late_is_recounted_and_published() {
    a_post_stored_after_its_failure_was_recounted_is_recounted_again(true).await;
}

#[tokio::test(start_paused = true)]
async fn without_a_backplane_a_post_stored_late_is_recounted_and_never_published() {
    a_post_stored_after_its_failure_was_recounted_is_recounted_again(false).await;
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
    b.expect_notify_inbox().return_const(());
    b.expect_backplane().returning(|| backplane(true));
    b.expect_publish().never();
    let chat = chat(store, b);
    post(&chat).await;
    tokio::time::sleep(CHECKS[1] + Duration::from_secs(1)).await;
    assert_eq!((*reads.lock().unwrap(), chat.posts_followed_up()), (2, 1), "one read per check so far");
    tokio::time::sleep(CHECKS[2]).await;
    assert_eq!((*reads.lock().unwrap(), chat.posts_followed_up()), (3, 0), "forgotten after its last check");
}
