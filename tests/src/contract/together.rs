//! Reads asked for all at once: each caller gets what it would get alone (a store may answer
//! many such reads with one query: the MongoDB store does, for requests, unread counts and
//! history cursors).

use futures_util::future::join_all;
use labchat_core::ChatStore;
use labchat_domain::{Cursor, HistoryPage, Request, RequestId, UserId};

use super::inbox::unread_in;
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
