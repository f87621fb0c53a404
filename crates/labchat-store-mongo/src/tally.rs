//! The counts after posts, written together: concurrent
//! [`count_posted`](labchat_core::ChatStore::count_posted) calls share one `update` command of
//! the rooms' summaries and one of the senders' counters.
//!
//! After a message is stored, its room's summary moves to it and its sender's counter grows by
//! one (`summary.rs`). A background task owns these writes, as `batch.rs` owns the inserts: it
//! waits for the first post, takes every other post already queued (at most [`MAX_POSTS`]) and
//! sends two `update` commands at once, unordered, with one statement per document: a room's
//! summary moved to the batch's latest post in that room (a summary only moves forward, so the
//! earlier ones would change nothing), a counter grown by the batch's posts it counts. So a batch
//! of posts costs two commands, not two writes per post. At most [`IN_FLIGHT`] batches are in
//! flight; while they are, the next posts gather. There is no timer: a lone post is counted at
//! once, with one round trip.
//!
//! Each caller is answered from its own two statements: a summary refused as a duplicate key is
//! sent once more (`advance_all`), and a second refusal means a later message is there (as for
//! one write); another write error fails the posts of its statement; a command that fails or does not answer in time fails every post of its
//! batch. As with the inserts, a caller waits for a batch to take its post within the operation
//! timeout, and the caller and the task settle on the job's claim (`claim.rs`) which came first: a post
//! whose caller gave up is left out (its caller told it timed out), one taken is answered with
//! what its batch did (each command bounded by the timeout), never counted after its caller was
//! told it failed. The commands carry the database's write concern, but unlike the driver's own
//! writes they are not retried after a failover: the batch's posts fail. A failed count is
//! recounted by the use case (`ChatStore::recount` sets it from the messages).

use std::collections::HashMap;
use std::future::Future;
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

use crate::claim::{self, Waited, queue_and_wait};
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
fn outcomes(n: usize, reply: &UpdateReply, duplicate_ok: bool) -> (Vec<Option<Arc<StoreError>>>, Vec<usize>) {
    let all = |e: StoreError| {
        let e = Arc::new(e);
        ((0..n).map(|_| Some(Arc::clone(&e))).collect(), Vec::new())
    };
    if let Some(wc) = &reply.write_concern_error {
        return all(StoreError::unavailable(CONTEXT, format!("write concern failed: {}", wc.message)));
    }
    let mut out: Vec<Option<Arc<StoreError>>> = vec![None; n];
    let mut duplicates = Vec::new();
    for w in &reply.write_errors {
        match out.get_mut(w.index) {
            Some(_) if duplicate_ok && w.code == DUPLICATE_KEY => duplicates.push(w.index),
            Some(slot) => *slot = Some(Arc::new(write_error(CONTEXT, w))),
            None => return all(bad_data(CONTEXT, format!("a write error names statement {} of {n}", w.index))),
        }
    }
    (out, duplicates)
}

/// What one `update` command did to each of its statements.
type Outcomes = Result<Vec<Option<Arc<StoreError>>>, Arc<StoreError>>;

/// Runs one `update` command of `statements` on `collection`, unordered: each statement's
/// error, and (where `duplicate_ok`, not among the errors) those refused as a duplicate key.
async fn update(
    db: &Database,
    collection: &str,
    statements: &[Document],
    limit: Duration,
    duplicate_ok: bool,
) -> Result<(Vec<Option<Arc<StoreError>>>, Vec<usize>), Arc<StoreError>> {
    let n = statements.len();
    let mut command = doc! {"update": collection, "updates": statements.to_vec(), "ordered": false};
    if let Some(concern) = db.write_concern() {
        let concern = mongodb::bson::to_document(concern).map_err(|e| Arc::new(bad_data(CONTEXT, e.to_string())))?;
        command.insert("writeConcern", concern);
    }
    let reply = bounded(limit, CONTEXT, db.run_command(command)).await.map_err(Arc::new)?;
    let reply: UpdateReply =
        mongodb::bson::from_document(reply).map_err(|e| Arc::new(bad_data(CONTEXT, e.to_string())))?;
    Ok(outcomes(n, &reply, duplicate_ok))
}

/// The summaries' statements, and once more those refused as a duplicate key. A refusal means
/// a later summary is there, or another writer created the room's summary between this upsert's
/// look and its insert (an upsert whose filter is not only on `_id` is not retried by the
/// server); sent again, the statement finds the summary and applies, or is refused for the first
/// reason.
async fn advance_all(db: &Database, statements: &[Document], limit: Duration) -> Outcomes {
    let (mut each, again) = update(db, ROOMS_COLLECTION, statements, limit, true).await?;
    if again.is_empty() {
        return Ok(each);
    }
    let retried: Vec<Document> = again.iter().filter_map(|&i| statements.get(i).cloned()).collect();
    let second = update(db, ROOMS_COLLECTION, &retried, limit, true).await;
    for (k, &i) in again.iter().enumerate() {
        let e = match &second {
            Ok((errors, _)) => errors.get(k).cloned().flatten(),
            Err(e) => Some(Arc::clone(e)),
        };
        if let Some(slot) = each.get_mut(i) {
            *slot = e;
        }
    }
    Ok(each)
}

type Answer = Result<(), Arc<StoreError>>;

type Job = claim::Job<Post, Answer>;

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
        Self::start_with(op_timeout, move |posts| {
            let db = db.clone();
            async move { count_batch(&db, op_timeout, &posts).await }
        })
    }

    /// Starts the task with `write`, which writes one batch's counts and answers each post.
    fn start_with<F, Fut>(op_timeout: Duration, write: F) -> Self
    where
        F: Fn(Vec<Post>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Answer>> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(queue, Arc::new(write)));
        Self { jobs, op_timeout }
    }

    /// Counts `post` in the next batch. A batch must take it within the operation timeout
    /// (waiting for the batches in flight counts too), or it is left out and the answer is a
    /// timeout; once taken, the answer is its batch's (see the module docs).
    pub(crate) async fn count(&self, post: Post) -> Result<(), StoreError> {
        match queue_and_wait(&self.jobs, self.op_timeout, post).await {
            // An error of this post's own statement is its own; one of a whole command, shared.
            Waited::Answer(answer) => answer.map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|e| shared(CONTEXT, e))),
            Waited::TimedOut => Err(StoreError::unavailable(CONTEXT, TimedOut(self.op_timeout))),
            Waited::Stopped => Err(stopped()),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable(CONTEXT, "the counting task of posted messages has stopped")
}

async fn run<F, Fut>(mut queue: mpsc::Receiver<Job>, write: Arc<F>)
where
    F: Fn(Vec<Post>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Answer>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first: while every slot is busy, the posts gather in the queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut jobs = Vec::with_capacity(MAX_POSTS);
        if queue.recv_many(&mut jobs, MAX_POSTS).await == 0 {
            return;
        }
        // Callers that already gave up are told nothing, so nothing is written for them.
        jobs.retain(Job::take);
        if jobs.is_empty() {
            continue;
        }
        let write = Arc::clone(&write);
        tokio::spawn(async move {
            let (posts, replies): (Vec<Post>, Vec<oneshot::Sender<Answer>>) =
                jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
            let answers = write(posts).await;
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
        advance_all(db, &summaries, limit),
        update(db, SEEN_COLLECTION, &counters, limit, false),
    )
    .await;
    answers(&of_post, &s, &c.map(|(each, _)| each))
}

/// Each post's answer, from its summary's statement in `s` and its counter's in `c` (a failed
/// command fails every post of the batch).
fn answers(of_post: &[(usize, usize)], s: &Outcomes, c: &Outcomes) -> Vec<Answer> {
    let failed = |r: &Outcomes, i: usize| match r {
        Err(e) => Some(Arc::clone(e)),
        Ok(each) => each.get(i).cloned().flatten(),
    };
    of_post.iter().map(|&(si, ci)| failed(s, si).or_else(|| failed(c, ci)).map_or(Ok(()), Err)).collect()
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
