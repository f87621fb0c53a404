//! Tests of the inbox hub: notices coalesced by room, rows sent to those who may act on it,
//! never twice the same row.

use std::time::Duration;

use labchat_domain::{Request, Role};

use super::*;
use crate::MockChatStore;

fn rid(n: u32) -> RequestId {
    RequestId::parse(&format!("{n:024x}")).unwrap()
}

fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}

fn row(room: RequestId, unread: u64) -> InboxRow {
    let mut last_message = crate::chat::tests::message(99, 1);
    last_message.request_id = room;
    InboxRow { last_message, unread }
}

struct Recorder(SinkId, Mutex<Vec<InboxRow>>);
impl InboxSink for Recorder {
    fn id(&self) -> SinkId {
        self.0
    }
    fn deliver_inbox(&self, row: Arc<InboxRow>) {
        self.1.lock().unwrap().push((*row).clone());
    }
}

async fn settle(sinks: &[&Recorder], want: usize) {
    for _ in 0..200 {
        if sinks.iter().map(|s| s.1.lock().unwrap().len()).sum::<usize>() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Anything more would have arrived by now too.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[test]
fn waiting_notices_coalesce_by_room_in_the_order_of_their_first_notice() {
    let u = |s: &str| UserId::parse(s).unwrap();
    let read = |room, user: &str| InboxNotice::Read { request_id: rid(room), user: u(user) };
    let notices = vec![
        InboxNotice::Posted { request_id: rid(1) },
        read(2, "a"),
        read(1, "b"),
        read(2, "a"),
        read(2, "c"),
        read(3, "a"),
        InboxNotice::Posted { request_id: rid(3) },
        InboxNotice::Posted { request_id: rid(1) },
    ];
    assert_eq!(
        coalesce(notices),
        vec![(rid(1), Who::Everyone), (rid(2), Who::Readers(vec![u("a"), u("c")])), (rid(3), Who::Everyone),]
    );
}

#[tokio::test]
async fn notices_reach_only_the_users_who_may_act_on_the_room_and_a_read_only_its_reader() {
    let mut store = MockChatStore::new();
    store.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
    store.expect_inbox_rows().returning(|room, users| {
        let mut ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        ids.sort_unstable();
        assert!(ids == ["lab", "t1"] || ids == ["t1"], "asked for {ids:?}");
        // A read (asked for its reader alone) brought t1's count down to 0.
        let t1 = if users.len() == 1 { 0 } else { 1 };
        Ok(users.iter().map(|u| row(room, if u.as_str() == "t1" { t1 } else { 2 })).collect())
    });
    let hub = InboxHub::new(Arc::new(store));
    let (t1, t1b, t2, lab) = (
        Arc::new(Recorder(SinkId(1), Mutex::default())),
        Arc::new(Recorder(SinkId(2), Mutex::default())),
        Arc::new(Recorder(SinkId(3), Mutex::default())),
        Arc::new(Recorder(SinkId(4), Mutex::default())),
    );
    assert!(hub.subscribe(&user("t1", Role::Teacher), t1.clone()), "t1's first sink");
    assert!(!hub.subscribe(&user("t1", Role::Teacher), t1.clone()));
    assert!(!hub.subscribe(&user("t1", Role::Teacher), t1b.clone()), "t1's second sink");
    assert!(hub.subscribe(&user("t2", Role::Teacher), t2.clone()));
    assert!(hub.subscribe(&user("lab", Role::Lab), lab.clone()));
    assert_eq!(hub.subscription_count(), 4);

    hub.notice(InboxNotice::Posted { request_id: rid(1) });
    settle(&[&t1, &t1b, &t2, &lab], 3).await;
    assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 1)], "once, though subscribed twice");
    assert_eq!(*t1b.1.lock().unwrap(), [row(rid(1), 1)], "every connection of the user");
    assert_eq!(*lab.1.lock().unwrap(), [row(rid(1), 2)]);
    assert!(t2.1.lock().unwrap().is_empty(), "never another teacher's room");

    assert!(hub.unsubscribe(SinkId(2)).is_empty(), "t1 keeps a sink");
    hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
    settle(&[&t1, &t1b, &t2, &lab], 4).await;
    assert_eq!(t1.1.lock().unwrap().len(), 2, "the reader");
    assert_eq!(t1b.1.lock().unwrap().len(), 1, "unsubscribed");
    assert_eq!(lab.1.lock().unwrap().len(), 1, "others' counts did not change");
    assert!(t2.1.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_row_identical_to_the_last_one_sent_to_a_connection_is_not_sent_again() {
    // The store's rows as posts and reads change them: three posts read as one same row,
    // then a read changes the count, then a post in another room.
    let unread = Arc::new(Mutex::new(3_u64));
    let mut store = MockChatStore::new();
    store.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("t1").unwrap()))));
    let counts = Arc::clone(&unread);
    store
        .expect_inbox_rows()
        .returning(move |room, users| Ok(users.iter().map(|_| row(room, *counts.lock().unwrap())).collect()));
    let hub = InboxHub::new(Arc::new(store));
    let t1 = Arc::new(Recorder(SinkId(1), Mutex::default()));
    hub.subscribe(&user("t1", Role::Teacher), t1.clone());
    for _ in 0..3 {
        hub.notice(InboxNotice::Posted { request_id: rid(1) });
    }
    settle(&[&t1], 1).await;
    assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 3)], "three notices, one same row: sent once");
    *unread.lock().unwrap() = 0;
    hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
    hub.notice(InboxNotice::Read { request_id: rid(1), user: UserId::parse("t1").unwrap() });
    hub.notice(InboxNotice::Posted { request_id: rid(2) });
    settle(&[&t1], 3).await;
    assert_eq!(*t1.1.lock().unwrap(), [row(rid(1), 3), row(rid(1), 0), row(rid(2), 0)], "each change once");
    // A connection subscribed later was sent nothing yet: it gets the current row.
    let t1b = Arc::new(Recorder(SinkId(2), Mutex::default()));
    hub.subscribe(&user("t1", Role::Teacher), t1b.clone());
    hub.notice(InboxNotice::Posted { request_id: rid(1) });
    settle(&[&t1, &t1b], 4).await;
    assert_eq!(*t1b.1.lock().unwrap(), [row(rid(1), 0)]);
    assert_eq!(t1.1.lock().unwrap().len(), 3, "unchanged for the first connection");
}
