//! Reads asked for, and posts counted, all at once: each caller gets what it would get alone (a
//! store may answer many such reads with one query, and write many posts' counts with one write:
//! the MongoDB store does, for requests, unread counts and history cursors, and for counts).

use futures_util::future::join_all;
use labchat_core::{ChatStore, Inserted};
use labchat_domain::{Cursor, HistoryPage, Message, Request, RequestId, Seq, UserId};

use super::inbox::{assert_unread, unread_in};
use super::{Creator, Gen, Model, StoreFixture, history_at, insert_new, rid, uid};

/// One read of a join, and its answer.
#[derive(Clone, Debug, PartialEq)]
enum Read {
    Request(RequestId),
    Unread(RequestId, UserId),
    Page(RequestId, Cursor),
}

#[derive(Debug, PartialEq)]
enum Answer {
    Request(Option<Request>),
    Unread(u64),
    Page(Option<HistoryPage>),
}

async fn answer(store: &dyn ChatStore, read: Read) -> Answer {
    match read {
        Read::Request(id) => Answer::Request(store.find_request(id).await.unwrap_or_else(|e| panic!("{id}: {e:?}"))),
        Read::Unread(room, user) => Answer::Unread(
            store.unread_count(room, &user).await.unwrap_or_else(|e| panic!("unread {room} {user}: {e:?}")),
        ),
        Read::Page(room, cursor) => Answer::Page(history_at(store, room, cursor, 10).await),
    }
}

/// Requests, unread counts and pages before or after a cursor, many of each asked for at once
/// (each twice, in rooms with and without messages, for users whose ids hold `:`, with cursors
/// of another room): every answer is the one the same read gets alone, and the unread counts
/// are the domain's.
pub async fn reads_asked_together_answer_each_as_alone<F: StoreFixture>(f: &F) {
    let (room, other, quiet, missing) = (rid(1), rid(2), rid(3), rid(4));
    f.add_request(room, Creator::Text("t1".into())).await;
    f.add_request(other, Creator::Text("t:2".into())).await;
    f.add_request(quiet, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let users = ["t1", "lab:1", "lab1", "t:2"];
    let mut posted = Vec::new();
    for (i, who) in ["t1", "lab:1", "t1", "lab1"].into_iter().enumerate() {
        let m = mk.message(room, who, &format!("m{i}"), None);
        posted.push(m.id);
        insert_new(&*store, &mut model, m).await;
    }
    let m = mk.message(other, "t:2", "elsewhere", None);
    posted.push(m.id);
    insert_new(&*store, &mut model, m).await;

    let mut reads = Vec::new();
    for id in [room, other, quiet, missing] {
        reads.push(Read::Request(id));
        for user in users {
            reads.push(Read::Unread(id, uid(user)));
        }
    }
    for id in &posted {
        for asked in [room, other] {
            reads.push(Read::Page(asked, Cursor::Before(*id)));
            reads.push(Read::Page(asked, Cursor::After(*id)));
        }
    }
    let reads: Vec<Read> = reads.iter().chain(&reads).cloned().collect();

    let mut alone = Vec::with_capacity(reads.len());
    for read in &reads {
        alone.push(answer(&*store, read.clone()).await);
    }
    let together = join_all(reads.iter().cloned().map(|read| answer(&*store, read))).await;
    for ((read, alone), together) in reads.iter().zip(&alone).zip(&together) {
        assert_eq!(together, alone, "{read:?}: asked with {} other reads", reads.len() - 1);
        if let (Read::Unread(room, user), Answer::Unread(n)) = (read, together) {
            assert_eq!(*n, unread_in(&model, *room, user), "{read:?}: the domain's count");
        }
    }
    // The reads told apart what they should: a request found or not, a cursor of another room.
    assert!(alone.contains(&Answer::Request(None)), "the missing request is not found");
    assert!(alone.contains(&Answer::Page(None)), "a cursor of another room is reported");
    assert!(alone.iter().any(|a| matches!(a, Answer::Unread(n) if *n > 0)), "someone has unread messages");
}

async fn stored(store: &dyn ChatStore, m: &Message) -> Seq {
    match store.insert_message(m).await.unwrap_or_else(|e| panic!("insert {:?}: {e:?}", m.id)) {
        Inserted::New(seq) => seq,
        other => panic!("insert {:?}: {other:?}", m.id),
    }
}

/// Posts in many rooms at once, each room's one after the other as the chat use case makes them
/// (the insert, then its count), then posts of one room counted all at once, not in the order
/// stored: every user's unread count, first unread message and inbox row (the room's last
/// message) are the domain's.
pub async fn posts_counted_together_count_as_alone<F: StoreFixture>(f: &F) {
    let rooms: Vec<RequestId> = (1..=24).map(rid).collect();
    for room in &rooms {
        f.add_request(*room, Creator::Text("t1".into())).await;
    }
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let senders = ["t1", "lab1", "lab:2"];
    let messages: Vec<Vec<Message>> = rooms
        .iter()
        .map(|room| (0..5).map(|i| mk.message(*room, senders[i % senders.len()], &format!("m{i}"), None)).collect())
        .collect();
    let seqs = join_all(messages.iter().map(|posts| {
        let store = &store;
        async move {
            let mut seqs = Vec::new();
            for m in posts {
                let seq = stored(&**store, m).await;
                store.count_posted(m, seq).await.unwrap_or_else(|e| panic!("count {:?}: {e:?}", m.id));
                seqs.push(seq);
            }
            seqs
        }
    }))
    .await;
    for (posts, seqs) in messages.into_iter().zip(seqs) {
        for (m, seq) in posts.into_iter().zip(seqs) {
            assert_eq!(seq, model.add(m), "each room's seqs in the order posted");
        }
    }
    // Then a dozen posts of one room stored, and counted all at once, the latest last but one.
    let late: Vec<Message> =
        (0..12).map(|i| mk.message(rooms[0], senders[i % senders.len()], &format!("late {i}"), None)).collect();
    let mut seqs = Vec::new();
    for m in &late {
        seqs.push(stored(&*store, m).await);
    }
    let mut order: Vec<usize> = (0..late.len()).collect();
    order.swap(late.len() - 2, late.len() - 1);
    let counted = join_all(order.iter().map(|&i| store.count_posted(&late[i], seqs[i]))).await;
    for (i, c) in order.iter().zip(counted) {
        c.unwrap_or_else(|e| panic!("late post {i} counted with the others: {e:?}"));
    }
    for (m, seq) in late.into_iter().zip(seqs) {
        assert_eq!(seq, model.add(m), "the late posts' seqs in the order stored");
    }
    for room in &rooms {
        for who in ["t1", "lab1", "lab:2", "lab3"] {
            assert_unread(&*store, &model, *room, who, "posts counted together").await;
        }
    }
}
