//! The unit tests of `tally.rs`: how a batch of posts becomes statements, how each statement's
//! outcome is read from the reply of its `update` command and reaches its posts, and which posts
//! are written when callers give up.

use std::sync::Mutex;

use mongodb::bson::{self, doc};

use super::*;

fn post(room: &str, seq: i64, sender: &str) -> Post {
    Post { room: room.to_owned(), seq, at: 1_000 + seq, id: ObjectId::from_bytes([0; 12]), sender: sender.to_owned() }
}

fn seq_of(statement: &Document) -> i64 {
    statement.get_document("q").and_then(|q| q.get_document("lastSeq")).and_then(|s| s.get_i64("$lt")).unwrap()
}

fn inc_of(statement: &Document) -> (String, i64) {
    let id = statement.get_document("q").and_then(|q| q.get_str("_id")).unwrap().to_owned();
    let n = statement.get_document("u").and_then(|u| u.get_document("$inc")).and_then(|i| i.get_i64("seen")).unwrap();
    (id, n)
}

#[test]
fn a_batch_writes_each_room_once_at_its_latest_post_and_each_counter_once_by_its_posts() {
    let (a, b) = ("a".repeat(24), "b".repeat(24));
    // Room a's posts out of seq order (two nodes' posts may be), one sender twice.
    let posts = [post(&a, 5, "t1"), post(&b, 1, "t1"), post(&a, 3, "t1"), post(&a, 4, "lab:1")];
    let p = plan(&posts);
    assert_eq!(p.summaries.len(), 2, "one statement per room");
    assert_eq!(seq_of(&p.summaries[0]), 5, "room a moves to its latest post, whatever the order");
    assert_eq!(seq_of(&p.summaries[1]), 1);
    assert!(p.summaries.iter().all(|s| s.get_bool("upsert") == Ok(true)));
    let counters: Vec<(String, i64)> = p.counters.iter().map(inc_of).collect();
    assert_eq!(counters, [(format!("{a}:t1"), 2), (format!("{b}:t1"), 1), (format!("{a}:lab:1"), 1)]);
    assert_eq!(p.of_post, [(0, 0), (1, 1), (0, 0), (0, 2)], "each post names its two statements");
}

#[test]
fn a_lone_post_is_one_statement_of_each_as_the_single_writes() {
    let room = "c".repeat(24);
    let p = plan(&[post(&room, 7, "t1")]);
    let (q, u) = crate::summary_writes::advance_write(&room, 7, 1_007, ObjectId::from_bytes([0; 12]));
    assert_eq!(p.summaries, [doc! {"q": q, "u": u, "upsert": true}]);
    let (q, u) = crate::summary_writes::seen_write(&room, "t1", 1);
    assert_eq!(p.counters, [doc! {"q": q, "u": u, "upsert": true}]);
}

fn reply(d: Document) -> UpdateReply {
    bson::from_document(d).unwrap()
}

fn kinds(out: &[Option<Arc<StoreError>>]) -> Vec<&'static str> {
    out.iter()
        .map(|o| match o {
            None => "ok",
            Some(e) if e.is_retryable() => "unavailable",
            Some(_) => "internal",
        })
        .collect()
}

#[test]
fn each_statement_is_answered_from_its_own_write_error() {
    let r = reply(doc! {"ok": 1, "n": 2, "writeErrors": [
        {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"},
        {"index": 2, "code": 2, "errmsg": "bad value"},
        {"index": 3, "code": 91, "errmsg": "shutting down"},
    ]});
    let (each, duplicates) = outcomes(4, &r, true);
    assert_eq!(kinds(&each), ["ok", "ok", "internal", "unavailable"], "a summary's duplicate key is no error");
    assert_eq!(duplicates, [1], "but is told, to be sent again");
    let (each, duplicates) = outcomes(4, &r, false);
    assert_eq!(kinds(&each), ["ok", "internal", "internal", "unavailable"], "a counter's is an error");
    assert!(duplicates.is_empty());
    assert_eq!(kinds(&outcomes(2, &reply(doc! {"ok": 1, "n": 2}), true).0), ["ok", "ok"]);
}

#[test]
fn a_write_concern_failure_or_a_reply_naming_no_statement_fails_them_all() {
    let r = reply(doc! {"ok": 1, "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}});
    assert_eq!(kinds(&outcomes(2, &r, true).0), ["unavailable", "unavailable"]);
    for code in [2, 11000] {
        let r = reply(doc! {"ok": 1, "writeErrors": [{"index": 9, "code": code, "errmsg": "?"}]});
        assert_eq!(kinds(&outcomes(2, &r, true).0), ["internal", "internal"], "code {code}");
    }
}

#[test]
fn each_post_is_answered_from_its_own_two_statements() {
    let (summary, counter) =
        (Arc::new(StoreError::internal("s", "summary 1")), Arc::new(StoreError::internal("c", "counter 1")));
    let s: Outcomes = Ok(vec![None, Some(Arc::clone(&summary))]);
    let c: Outcomes = Ok(vec![None, Some(Arc::clone(&counter)), None]);
    let got = answers(&[(0, 0), (0, 1), (1, 2), (0, 2)], &s, &c);
    let which = |a: &Answer| match a {
        Ok(()) => "ok",
        Err(e) if Arc::ptr_eq(e, &summary) => "summary",
        Err(e) if Arc::ptr_eq(e, &counter) => "counter",
        Err(_) => "other",
    };
    assert_eq!(got.iter().map(which).collect::<Vec<_>>(), ["ok", "counter", "summary", "ok"]);
    let failed = Arc::new(StoreError::unavailable("c", "no answer"));
    let got = answers(&[(0, 0), (1, 2)], &Ok(vec![None, None]), &Err(Arc::clone(&failed)));
    assert!(got.iter().all(|a| matches!(a, Err(e) if Arc::ptr_eq(e, &failed))), "a failed command fails every post");
}

/// The seqs of each batch written, in the order the batches were taken.
type Written = Arc<Mutex<Vec<Vec<i64>>>>;

/// A tally with an operation timeout of 1 s whose writes each take `takes` and succeed.
fn slow_tally(takes: Duration) -> (Arc<Tally>, Written) {
    let written: Written = Arc::default();
    let seen = Arc::clone(&written);
    let tally = Tally::start_with(Duration::from_secs(1), move |posts: Vec<Post>| {
        seen.lock().unwrap().push(posts.iter().map(|p| p.seq).collect());
        async move {
            tokio::time::sleep(takes).await;
            posts.iter().map(|_| Ok(())).collect()
        }
    });
    (Arc::new(tally), written)
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_caller_gave_up_before_a_batch_took_it_is_never_written() {
    let (tally, written) = slow_tally(Duration::from_secs(10));
    let count = |seq| {
        let tally = Arc::clone(&tally);
        tokio::spawn(async move { tally.count(post(&"a".repeat(24), seq, "t1")).await })
    };
    let first = count(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = count(2);
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Both batches in flight: the third waits for a slot, and its caller gives up first.
    let started = tokio::time::Instant::now();
    let third = count(3).await.unwrap();
    assert!(third.is_err_and(|e| e.is_retryable()), "told it timed out");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    // The first two were taken: each is answered with what its batch did, past the timeout.
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(*written.lock().unwrap(), [vec![1], vec![2]], "the third post is never written");
}

#[tokio::test(start_paused = true)]
async fn posts_queued_while_the_batches_are_in_flight_go_together() {
    let (tally, written) = slow_tally(Duration::from_millis(100));
    let tasks: Vec<_> = (1..=600)
        .map(|seq| {
            let tally = Arc::clone(&tally);
            tokio::spawn(async move { tally.count(post(&"b".repeat(24), seq, "t1")).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    let written = written.lock().unwrap();
    assert_eq!(written.iter().map(Vec::len).sum::<usize>(), 600, "every post written once");
    assert!(written.len() <= 600 / MAX_POSTS + IN_FLIGHT + 1, "600 posts took {} batches", written.len());
    assert!(written.iter().all(|b| b.len() <= MAX_POSTS));
}
