//! MongoDB: rooms stored before the inbox existed (no summaries, no counters) get them at
//! start-up, built from their messages and read receipts, so their inbox is right at once (a
//! deleted message unread for no one).
//!
//! Needs `LABCHAT_TEST_MONGO_URI`: run it with `scripts/test.sh -p labchat-tests --test
//! e2e -- store_inbox_migration::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use labchat_core::{ChatStore, Inserted, MessageIdGenerator};
use labchat_domain::{
    InboxQuery, Message, MessageRecord, MessageText, ReceiptKind, RequestId, Role, Timestamp, User, UserId,
};
use labchat_store_mongo::{MongoStore, ROOMS_COLLECTION, SEEN_COLLECTION};
use labchat_tests::contract::{Creator, StoreFixture};
use labchat_tests::mongo::MongoFixture;
use mongodb::bson::Document;

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn message(ids: &MessageIdGenerator, room: RequestId, sender: &str, at: i64) -> Message {
    let now = Timestamp::from_unix_millis(1_733_000_000_000 + at);
    Message::restore(MessageRecord {
        id: ids.next(now),
        request_id: room,
        seq: None,
        sender_id: uid(sender),
        sender_role: if sender.starts_with("lab") { Role::Lab } else { Role::Teacher },
        text: Some(MessageText::parse("hello", 100).unwrap()),
        created_at: now,
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

/// Every user's inbox as the store gives it: (room, last message id, unread) per row.
async fn inboxes(store: &dyn ChatStore) -> Vec<Vec<(RequestId, String, u64)>> {
    let mut all = Vec::new();
    for user in
        [User::new(uid("t1"), Role::Teacher), User::new(uid("lab1"), Role::Lab), User::new(uid("lab2"), Role::Lab)]
    {
        let page = store.inbox(&user, InboxQuery::default()).await.unwrap();
        all.push(page.rows.iter().map(|r| (r.request_id(), r.last_message.id.to_hex(), r.unread)).collect());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_without_summaries_get_them_built_at_start_up() {
    let fixture = MongoFixture::new("inbox_migration").await;
    let rooms: Vec<RequestId> = (1..=3).map(|n| RequestId::parse(&format!("6751b6df{n:016x}")).unwrap()).collect();
    for r in &rooms {
        fixture.add_request(*r, Creator::Text("t1".into())).await;
    }
    let store = fixture.store();
    let ids = MessageIdGenerator::with_random_bytes([1, 2, 3]);
    let mut stored = Vec::new();
    for (i, (room, sender)) in
        [(0, "lab1"), (0, "t1"), (1, "lab2"), (0, "lab1"), (2, "t1"), (1, "lab1")].into_iter().enumerate()
    {
        let m = message(&ids, rooms[room], sender, i64::try_from(i).unwrap() * 10);
        let Inserted::New(seq) = store.insert_message(&m).await.unwrap() else { panic!("a duplicate") };
        store.count_posted(&m, seq).await.unwrap();
        stored.push(m);
    }
    let at = Timestamp::from_unix_millis(1_733_000_001_000);
    for (room, user, id) in [(rooms[0], "t1", stored[0].id), (rooms[1], "lab1", stored[2].id)] {
        let marked = store.mark(room, &uid(user), ReceiptKind::Read, &[id], at).await.unwrap();
        store.count_read(room, &uid(user), u64::try_from(marked.read.len()).unwrap()).await.unwrap();
    }
    store.mark(rooms[0], &uid("lab2"), ReceiptKind::Delivered, &[stored[0].id], at).await.unwrap();
    // lab1's first message, read by t1, is deleted: unread for no one.
    let mut tombstone = store.message(rooms[0], stored[0].id).await.unwrap().unwrap();
    assert!(tombstone.delete(rooms[0], &User::new(uid("lab1"), Role::Lab), at).unwrap());
    assert!(store.update_message(&tombstone).await.unwrap());
    store.count_deleted(&tombstone).await.unwrap();
    let before = inboxes(&*store).await;
    assert_eq!(before[0].iter().map(|r| r.2).collect::<Vec<_>>(), [2, 0, 1], "t1: rooms 1, 2, 0 by activity");
    let lab2_room0 = before[2].iter().find(|r| r.0 == rooms[0]).map(|r| r.2);
    assert_eq!(lab2_room0, Some(2), "lab2: three messages in room 0, one of them deleted");

    // As if the messages had been stored by a labchat without the inbox.
    let db = fixture.database();
    db.collection::<Document>(ROOMS_COLLECTION).drop().await.unwrap();
    db.collection::<Document>(SEEN_COLLECTION).drop().await.unwrap();
    assert_ne!(inboxes(&*store).await, before, "without summaries the inbox is empty");

    let rebuilt = MongoStore::connect(fixture.settings().clone()).await.unwrap();
    assert_eq!(inboxes(&rebuilt).await, before, "rebuilt from the messages and the read receipts");
    // Once built, a later start-up leaves everything as it is, and live counts go on from there.
    let again = MongoStore::connect(fixture.settings().clone()).await.unwrap();
    let m = message(&ids, rooms[2], "lab2", 500);
    let Inserted::New(seq) = again.insert_message(&m).await.unwrap() else { panic!("a duplicate") };
    again.count_posted(&m, seq).await.unwrap();
    let after = inboxes(&again).await;
    assert_eq!(after[0][0].2, 1, "t1 has one unread in the room just posted in");
    assert_eq!(after[0].len(), 3);
}
