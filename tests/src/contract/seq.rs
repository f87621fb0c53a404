//! The checks of the room order: every store gives each room's messages the seqs 1, 2, 3, …
//! (no holes, no repeats, also under concurrent inserts), history follows them, a history
//! cursor must be a message of the room, and `latest_since` reads rooms' highest seqs at once,
//! for a few rooms as for many.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use labchat_core::Inserted;
use labchat_domain::{Cursor, HistoryLimit, HistoryPage, Message, MessageId, RequestId, Seq, Timestamp};

use super::{StoreFixture, assert_room_matches, history, history_at, insert_new, open, rid, seq, seqs};

/// Seqs count each room's messages on its own: 1 for a room's first message, then 2, 3, … with
/// no holes, whatever other rooms do in between; history carries them.
pub async fn seqs_are_dense_per_room<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    let (store, mk, mut model) = open(f, "t", &[room, other]).await;
    for i in 0..30 {
        let request = if i % 3 == 2 { other } else { room };
        // insert_new checks the returned seq against the model's (the room's count + 1).
        insert_new(&*store, &mut model, mk.message(request, "t", &format!("m{i}"), None)).await;
    }
    for (r, n) in [(room, 20), (other, 10)] {
        let page = history(&*store, r, Cursor::Latest, 100).await;
        assert_eq!(seqs(&page.messages), (1..=n).collect::<Vec<_>>(), "{r:?}");
    }
    assert_room_matches(&*store, &model, room, "room").await;
    assert_room_matches(&*store, &model, other, "other room").await;
}

/// Concurrent inserts into one room (8 tasks of 25 sends each) get the seqs 1..=200, each once,
/// and history holds every message in that order, each with the seq its insert returned.
pub async fn concurrent_inserts_into_one_room_are_dense<F: StoreFixture>(f: &F) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let room = rid(1);
    let (store, mk, _) = open(f, "t", &[room]).await;
    let tasks = (0..TASKS).map(|t| {
        let messages: Vec<Message> =
            (0..EACH).map(|i| mk.message(room, "t", &format!("task {t} message {i}"), None)).collect();
        let store = Arc::clone(&store);
        async move {
            let mut got = Vec::with_capacity(EACH);
            for m in messages {
                match store.insert_message(&m).await {
                    Ok(Inserted::New(n)) => got.push((m.id, n)),
                    other => panic!("task {t}: insert {:?}: {other:?}", m.id),
                }
            }
            got
        }
    });
    let mut stored: Vec<(MessageId, Seq)> = join_all(tasks).await.into_iter().flatten().collect();
    stored.sort_by_key(|(_, n)| *n);
    let total = u64::try_from(TASKS * EACH).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<u64> = stored.iter().map(|(_, n)| n.get()).collect();
    assert_eq!(got, (1..=total).collect::<Vec<_>>(), "seqs are dense and unique");
    let page = history(&*store, room, Cursor::Latest, HistoryLimit::MAX).await;
    let listed: Vec<(MessageId, Seq)> = page.messages.iter().map(|m| (m.id, m.seq.unwrap_or(Seq::FIRST))).collect();
    assert_eq!(listed, stored, "history in seq order, with the seqs the inserts returned");
}

/// A repeated send returns the original with its seq, and takes no seq itself: the next new
/// message follows the original with no hole.
pub async fn a_duplicate_keeps_its_seq_and_leaves_no_hole<F: StoreFixture>(f: &F) {
    let room = rid(1);
    let (store, mk, mut model) = open(f, "t", &[room]).await;
    insert_new(&*store, &mut model, mk.message(room, "t", "first", None)).await;
    let original = mk.message(room, "t", "second", Some("c-2"));
    insert_new(&*store, &mut model, original.clone()).await;
    for _ in 0..3 {
        let retry = mk.message(room, "t", "second, again", Some("c-2"));
        match store.insert_message(&retry).await.unwrap_or_else(|e| panic!("{e:?}")) {
            Inserted::Duplicate(o) => assert_eq!((o.id, o.seq), (original.id, Some(seq(2))), "the original"),
            other => panic!("a repeated send was stored: {other:?}"),
        }
    }
    insert_new(&*store, &mut model, mk.message(room, "t", "third", None)).await;
    let page = history(&*store, room, Cursor::Latest, 10).await;
    assert_eq!(seqs(&page.messages), [1, 2, 3]);
    assert_room_matches(&*store, &model, room, "after repeats").await;
}

/// A history cursor must be a message of the room: an id of another room's message or an
/// unknown id is reported (`None`), for both directions, and never taken as a position.
pub async fn a_cursor_outside_the_room_is_reported<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    let (store, mk, mut model) = open(f, "t", &[room, other]).await;
    let foreign = mk.message(other, "t", "elsewhere", None);
    insert_new(&*store, &mut model, foreign.clone()).await;
    for i in 0..3 {
        insert_new(&*store, &mut model, mk.message(room, "t", &format!("m{i}"), None)).await;
    }
    let unknown = mk.message(room, "t", "never stored", None).id;
    for id in [foreign.id, unknown] {
        for cursor in [Cursor::After(id), Cursor::Before(id)] {
            assert_eq!(history_at(&*store, room, cursor, 10).await, None, "{cursor:?}");
        }
    }
    // The room's own ids work, and the foreign one works in its own room.
    let own = model.room(room);
    let page = history(&*store, room, Cursor::After(own[0].id), 10).await;
    assert_eq!(seqs(&page.messages), [2, 3]);
    let page = history(&*store, other, Cursor::Before(foreign.id), 10).await;
    assert_eq!(page, HistoryPage::default());
}

/// `latest_since` gives, for the rooms asked about, the highest seq among the messages created
/// at or after the instant (not the seq of the latest-created one), leaves out rooms with none
/// and rooms not asked about, and answers an empty list with nothing.
pub async fn latest_since_gives_each_rooms_highest_seq_since_an_instant<F: StoreFixture>(f: &F) {
    let (busy, old, empty, other) = (rid(1), rid(2), rid(3), rid(4));
    let (store, mk, mut model) = open(f, "t", &[busy, old, empty, other]).await;
    let t0 = mk.now().unix_millis();
    // Seconds apart: a store may compare dates to the second.
    let at = |s: i64| Timestamp::from_unix_millis(t0 + s * 1_000);
    for (room, secs) in [(busy, 0), (busy, 20), (busy, 10), (old, 0), (old, 2), (other, 30)] {
        let mut m = mk.message(room, "t", &format!("at {secs}"), None);
        m.created_at = at(secs);
        insert_new(&*store, &mut model, m).await;
    }
    let ask = [busy, old, empty];
    let latest = |since: i64| {
        let store = Arc::clone(&store);
        async move {
            let mut got = store.latest_since(&ask, at(since)).await.unwrap_or_else(|e| panic!("latest_since: {e}"));
            got.sort();
            got.into_iter().map(|(r, s)| (r, s.get())).collect::<Vec<_>>()
        }
    };
    assert_eq!(latest(0).await, vec![(busy, 3), (old, 2)], "every message counts");
    assert_eq!(latest(5).await, vec![(busy, 3)], "busy: seqs 2 and 3 are since; old: none");
    assert_eq!(latest(15).await, vec![(busy, 2)], "the highest seq among those since, not the latest made");
    assert_eq!(latest(25).await, vec![], "nothing since, and the other room is not asked about");
    let none = store.latest_since(&[], at(0)).await.unwrap_or_else(|e| panic!("latest_since of no room: {e}"));
    assert!(none.is_empty(), "no room asked, no answer: {none:?}");
}

/// `latest_since` of many rooms, some quiet, some not asked about, answers as room by room: for
/// 80, 64 and 10 rooms asked about, at instants before, among and after 83 messages (created in
/// another order than their seqs, 5 of them in a room not asked about). On the MongoDB store
/// (which reads the messages created since the instant for 64 rooms or more, while they are no
/// more than the rooms, and else reads the rooms) these take both reads: the rooms' for 10 rooms,
/// and for 80 and 64 rooms since the first message (83 created since); the recent messages' for
/// 80 and 64 rooms from the 19th second on (64 created since: for 64 rooms, the boundary).
pub async fn latest_since_of_many_rooms_answers_as_room_by_room<F: StoreFixture>(f: &F) {
    let asked: Vec<RequestId> = (1..=80).map(rid).collect();
    let not_asked = rid(81);
    let mut rooms = asked.clone();
    rooms.push(not_asked);
    let (store, mk, mut model) = open(f, "t", &rooms).await;
    let t0 = mk.now().unix_millis();
    // Seconds apart: a store may compare dates to the second.
    let at = |s: i64| Timestamp::from_unix_millis(t0 + s * 1_000);
    // Room i of the first 12 gets i messages, the room not asked about 5: 83 in all, created
    // in a shuffled order of seconds (7 is prime to 83).
    let posts: Vec<RequestId> = (1..=12)
        .flat_map(|i| std::iter::repeat_n(rid(i), i as usize))
        .chain(std::iter::repeat_n(not_asked, 5))
        .collect();
    let n = i64::try_from(posts.len()).unwrap_or(i64::MAX);
    let mut stamps: Vec<(RequestId, u64, i64)> = Vec::new();
    for (k, room) in (0_i64..).zip(posts) {
        let secs = (k * 7) % n;
        let mut m = mk.message(room, "t", &format!("at {secs}"), None);
        m.created_at = at(secs);
        insert_new(&*store, &mut model, m).await;
        stamps.push((room, model.room(room).len() as u64, secs));
    }
    for ask in [&asked[..], &asked[..64], &asked[..10]] {
        for since in [0, 19, 40, 70, n] {
            let mut highest: BTreeMap<RequestId, u64> = BTreeMap::new();
            for &(room, seq, _) in stamps.iter().filter(|s| s.2 >= since && ask.contains(&s.0)) {
                let h = highest.entry(room).or_default();
                *h = (*h).max(seq);
            }
            let want: Vec<(RequestId, u64)> = highest.into_iter().collect();
            let mut got = store
                .latest_since(ask, at(since))
                .await
                .unwrap_or_else(|e| panic!("latest_since of {} rooms since {since} s: {e}", ask.len()));
            got.sort();
            let got: Vec<(RequestId, u64)> = got.into_iter().map(|(r, s)| (r, s.get())).collect();
            assert_eq!(got, want, "{} rooms asked about, since {since} s", ask.len());
        }
    }
}
