//! The counts after posts, written together: concurrent
//! [`count_posted`](labchat_core::ChatStore::count_posted) calls share one `update` command of
//! the rooms' summaries and one of the senders' counters.
//!
//! After a message is stored, its room's summary moves to it and its sender's counter grows by
//! one (`summary.rs`): a write each, so that with inserts stored in batches (`batch.rs`) the
//! counts were two of every three writes a post cost. A background task owns these writes: it
//! waits for the first post, takes every other post already queued (at most [`MAX_POSTS`]) and
//! sends two `update` commands at once, unordered, with one statement per document: a room's
//! summary moved to the batch's latest post in that room (a summary only moves forward, so the
//! earlier ones change nothing), a counter grown by the batch's posts it counts. At most
//! [`IN_FLIGHT`] batches are in flight; while they are, the next posts gather. There is no timer:
//! a lone post is counted at once, with one round trip as before.
//!
//! Each caller is answered from its own two statements: a summary refused as a duplicate key
//! means a later message is there (as for one write); another write error fails the posts of
//! its statement; a command that fails or does not answer in time fails every post of its
//! batch. A caller waits at most twice the operation timeout (queueing included). A failed
//! count is recounted by the use case (`ChatStore::recount` sets it from the messages), as when
//! the writes went one by one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use labchat_core::StoreError;
use labchat_domain::{Message, Seq};
use mongodb::Database;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use mongodb::error::{IndexedWriteError, WriteConcernError};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::documents::{object_id, stored_seq};
use crate::errors::{DUPLICATE_KEY, TimedOut, bad_data, bounded, shared, write_error};
use crate::summary::{ROOMS_COLLECTION, SEEN_COLLECTION};
use crate::summary_writes::{advance_statement, seen_statement};

/// The most posts one batch counts.
pub(crate) const MAX_POSTS: usize = 256;

/// The most batches in flight at once.
pub(crate) const IN_FLIGHT: usize = 2;

/// How many posts may wait for a batch before callers wait to queue theirs.
const QUEUE: usize = IN_FLIGHT * MAX_POSTS;

const CONTEXT: &str = "count a posted message";

/// What counting one post writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Post {
    /// The room, as 24 lowercase hex.
    room: String,
    seq: i64,
    /// The message's creation time, in milliseconds since the epoch.
    at: i64,
    id: ObjectId,
    sender: String,
}

impl Post {
    pub(crate) fn of(message: &Message, seq: Seq) -> Self {
        Self {
            room: message.request_id.to_hex(),
            seq: stored_seq(seq),
            at: message.created_at.unix_millis(),
            id: object_id(message.id.object_id()),
            sender: message.sender_id.as_str().to_owned(),
        }
    }
}

/// The statements of one batch, and for each post the index of its summary's statement and of
/// its counter's.
#[derive(Debug, PartialEq)]
struct Plan {
    summaries: Vec<Document>,
    counters: Vec<Document>,
    of_post: Vec<(usize, usize)>,
}

/// One statement per room (its latest post) and one per counter (how many posts it counts).
fn plan(posts: &[Post]) -> Plan {
    let mut latest: Vec<&Post> = Vec::new();
    let mut room_at: HashMap<&str, usize> = HashMap::new();
    let mut counts: Vec<(&Post, i64)> = Vec::new();
    let mut counter_at: HashMap<(&str, &str), usize> = HashMap::new();
    let mut of_post = Vec::with_capacity(posts.len());
    for post in posts {
        let s = *room_at.entry(&post.room).or_insert_with(|| {
            latest.push(post);
            latest.len() - 1
        });
        if latest[s].seq < post.seq {
            latest[s] = post;
        }
        let c = *counter_at.entry((&post.room, &post.sender)).or_insert_with(|| {
            counts.push((post, 0));
            counts.len() - 1
        });
        counts[c].1 += 1;
        of_post.push((s, c));
    }
    Plan {
        summaries: latest.into_iter().map(|p| advance_statement(&p.room, p.seq, p.at, p.id)).collect(),
        counters: counts.into_iter().map(|(p, n)| seen_statement(&p.room, &p.sender, n)).collect(),
        of_post,
    }
}

/// What an `update` command answered (its `ok` is checked by the driver).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateReply {
    #[serde(default)]
    write_errors: Vec<IndexedWriteError>,
    write_concern_error: Option<WriteConcernError>,
}

/// Each statement's error, `None` for one applied (or refused as a duplicate key where
/// `duplicate_ok`: a later summary is there). A write concern failure leaves every statement
/// unknown.
fn outcomes(n: usize, reply: &UpdateReply, duplicate_ok: bool) -> Vec<Option<Arc<StoreError>>> {
    let all = |e: StoreError| {
        let e = Arc::new(e);
        (0..n).map(|_| Some(Arc::clone(&e))).collect()
    };
    if let Some(wc) = &reply.write_concern_error {
        return all(StoreError::unavailable(CONTEXT, format!("write concern failed: {}", wc.message)));
    }
    let mut out: Vec<Option<Arc<StoreError>>> = vec![None; n];
    for w in &reply.write_errors {
        if duplicate_ok && w.code == DUPLICATE_KEY {
            continue;
        }
        match out.get_mut(w.index) {
            Some(slot) => *slot = Some(Arc::new(write_error(CONTEXT, w))),
            None => return all(bad_data(CONTEXT, format!("a write error names statement {} of {n}", w.index))),
        }
    }
    out
}

/// What one `update` command did to each of its statements.
type Outcomes = Result<Vec<Option<Arc<StoreError>>>, Arc<StoreError>>;

/// Runs one `update` command of `statements` on `collection`, unordered.
async fn update(
    db: &Database,
    collection: &str,
    statements: Vec<Document>,
    limit: Duration,
    duplicate_ok: bool,
) -> Outcomes {
    let n = statements.len();
    let command = doc! {"update": collection, "updates": statements, "ordered": false};
    let reply = bounded(limit, CONTEXT, db.run_command(command)).await.map_err(Arc::new)?;
    let reply: UpdateReply =
        mongodb::bson::from_document(reply).map_err(|e| Arc::new(bad_data(CONTEXT, e.to_string())))?;
    Ok(outcomes(n, &reply, duplicate_ok))
}

type Answer = Result<(), Arc<StoreError>>;

struct Job {
    post: Post,
    reply: oneshot::Sender<Answer>,
}

/// The handle on the counting task; the task ends when the handle is dropped (after answering
/// what was queued).
#[derive(Debug)]
pub(crate) struct Tally {
    jobs: mpsc::Sender<Job>,
    op_timeout: Duration,
}

impl Tally {
    /// Starts the task on the current tokio runtime.
    pub(crate) fn start(db: Database, op_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, op_timeout, queue));
        Self { jobs, op_timeout }
    }

    /// Counts `post` in the next batch (see the module docs).
    pub(crate) async fn count(&self, post: Post) -> Result<(), StoreError> {
        let limit = self.op_timeout.saturating_mul(2);
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(limit, async {
            self.jobs.send(Job { post, reply }).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())
        })
        .await;
        match waited {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(shared(CONTEXT, e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::unavailable(CONTEXT, TimedOut(limit))),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable(CONTEXT, "the counting task of posted messages has stopped")
}

async fn run(db: Database, limit: Duration, mut queue: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first: while every slot is busy, the posts gather in the queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut jobs = Vec::with_capacity(MAX_POSTS);
        if queue.recv_many(&mut jobs, MAX_POSTS).await == 0 {
            return;
        }
        let db = db.clone();
        tokio::spawn(async move {
            let (posts, replies): (Vec<Post>, Vec<oneshot::Sender<Answer>>) =
                jobs.into_iter().map(|j| (j.post, j.reply)).unzip();
            let answers = count_batch(&db, limit, &posts).await;
            drop(slot);
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that went away in the meantime no longer listens.
                let _ = reply.send(answer);
            }
        });
    }
}

/// Writes one batch's counts and answers each post.
async fn count_batch(db: &Database, limit: Duration, posts: &[Post]) -> Vec<Answer> {
    let Plan { summaries, counters, of_post } = plan(posts);
    let (s, c) = futures_util::future::join(
        update(db, ROOMS_COLLECTION, summaries, limit, true),
        update(db, SEEN_COLLECTION, counters, limit, false),
    )
    .await;
    let failed = |r: &Outcomes, i: usize| match r {
        Err(e) => Some(Arc::clone(e)),
        Ok(each) => each.get(i).cloned().flatten(),
    };
    of_post.into_iter().map(|(si, ci)| failed(&s, si).or_else(|| failed(&c, ci)).map_or(Ok(()), Err)).collect()
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
