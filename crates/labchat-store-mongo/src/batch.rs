//! Group commit of message inserts: concurrent [`insert_message`](labchat_core::ChatStore)
//! calls share one ordered `insert_many`.
//!
//! A background task owns the inserts. Each caller sends its document with a oneshot for the
//! answer and waits (bounded by the operation timeout). The task waits for the first document,
//! takes everything else already queued (at most [`MAX_BATCH`]), has the [`Sequencer`] give each
//! its room's next seq and store them all with one ordered `insert_many` (sending the rest again
//! after a refused one), answers every caller, and starts over. So while one batch is in flight
//! the next one gathers: there is no timer and no added latency when the load is light, and
//! under load one round trip stores many messages. Being the only writer of this node, the task
//! is also this node's sequencer: its seqs collide only with other nodes'.
//!
//! Each caller gets its own answer: stored with its seq, a duplicate key (its idempotency key or
//! id is taken; the caller then looks the original up itself) or a failure, mapped as for a
//! single insert. A caller answers its client only after its batch is stored, and the use case
//! keeps one write per room in flight, so the order within a room is kept.
//!
//! A caller waits for a batch to take its document within the operation timeout; once taken, it
//! waits for its batch's answer, whose round trips are each bounded by the operation timeout.
//! The caller and the task settle which came first on the job's claim (`claim.rs`), so a document is
//! either left out (the caller's answer is a timeout, and nothing was stored) or sent (the
//! caller's answer is what the store did). Without that, a caller whose time ran out while its
//! batch was in flight answered "unavailable" for a message the batch then stored: a message in
//! the room's history, with its seq, that nobody was told of.

use std::sync::Arc;
use std::time::Duration;

use labchat_core::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::claim::{self, Waited, queue_and_wait};
use crate::documents::MessageDoc;
use crate::errors::TimedOut;
use crate::sequence::{Outcome, Sequencer};

/// The most documents one batch holds.
pub(crate) const MAX_BATCH: usize = 256;

/// How many documents may wait for a batch before callers wait to queue theirs.
const QUEUE: usize = 4 * MAX_BATCH;

const CONTEXT: &str = "insert a message";

type Job = claim::Job<MessageDoc, Outcome>;

/// The handle on the batching task; the task ends when the handle is dropped (after answering
/// what was queued).
#[derive(Debug)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
    op_timeout: Duration,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub(crate) fn start(sequencer: Arc<Sequencer>, op_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(sequencer, queue));
        Self { jobs, op_timeout }
    }

    /// Stores `doc` in the next batch and returns what happened to it. A batch must take it
    /// within the operation timeout (counted from the call: waiting for a batch in flight counts
    /// too), or it is left out and the answer is a timeout; once taken, the answer is its batch's
    /// (see the module docs).
    pub(crate) async fn insert(&self, doc: MessageDoc) -> Outcome {
        match queue_and_wait(&self.jobs, self.op_timeout, doc).await {
            Waited::Answer(outcome) => outcome,
            Waited::TimedOut => Outcome::Failed(StoreError::unavailable(CONTEXT, TimedOut(self.op_timeout))),
            Waited::Stopped => Outcome::Failed(stopped()),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable(CONTEXT, "the batching task of message inserts has stopped")
}

async fn run(sequencer: Arc<Sequencer>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Callers that already gave up (timed out, or went away) are told nothing, so store
        // nothing for them; every other job is taken, and its caller waits for this batch.
        jobs.retain(Job::take);
        if jobs.is_empty() {
            continue;
        }
        let n = jobs.len();
        let started = std::time::Instant::now();
        let (mut docs, replies): (Vec<MessageDoc>, Vec<oneshot::Sender<Outcome>>) =
            jobs.drain(..).map(|j| (j.item, j.reply)).unzip();
        let outcomes = sequencer.store(&mut docs, &|i| replies.get(i).is_none_or(oneshot::Sender::is_closed)).await;
        tracing::trace!(batch = n, took_us = started.elapsed().as_micros(), "stored a batch of messages");
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that went away in the meantime no longer listens.
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, doc};
    use mongodb::error::{Error, ErrorKind, InsertManyError};

    use crate::sequence::{Ordered, Stop, index_named, ordered_result};

    fn insert_many_error(d: bson::Document) -> Error {
        let m: InsertManyError = bson::from_document(d).unwrap();
        Error::from(ErrorKind::InsertMany(m))
    }

    fn summary(o: &Ordered) -> (usize, &'static str) {
        let stop = match &o.stop {
            None => "done",
            Some(Stop::Refused(w)) if w.code == 11000 => "duplicate",
            Some(Stop::Refused(_)) => "refused",
            Some(Stop::Unknown(e)) if e.is_retryable() => "unavailable",
            Some(Stop::Unknown(_)) => "internal",
        };
        (o.stored, stop)
    }

    #[test]
    fn a_stored_batch_stores_every_document() {
        assert_eq!(summary(&ordered_result(3, Ok(()))), (3, "done"));
    }

    #[test]
    fn an_ordered_batch_stores_the_prefix_before_the_refused_document() {
        let e = insert_many_error(doc! {"writeErrors": [{"index": 2, "code": 11000, "errmsg": "E11000 dup"}]});
        assert_eq!(summary(&ordered_result(5, Err(e))), (2, "duplicate"));
        let e = insert_many_error(doc! {"writeErrors": [{"index": 0, "code": 2, "errmsg": "bad value"}]});
        assert_eq!(summary(&ordered_result(5, Err(e))), (0, "refused"));
    }

    #[test]
    fn a_write_concern_failure_leaves_the_rest_unknown() {
        let e = insert_many_error(doc! {
            "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}],
            "writeConcernError": {"code": 64, "codeName": "WriteConcernFailed", "errmsg": "wtimeout"},
        });
        assert_eq!(summary(&ordered_result(2, Err(e))), (0, "unavailable"));
    }

    #[test]
    fn a_failed_batch_fails_every_document_alike() {
        let io = Error::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(summary(&ordered_result(2, Err(io))), (0, "unavailable"));
        let de = bson::from_document::<InsertManyError>(doc! {"writeErrors": 5}).unwrap_err();
        let bad = Error::from(ErrorKind::BsonDeserialization(de));
        assert_eq!(summary(&ordered_result(2, Err(bad))), (0, "internal"));
    }

    #[test]
    fn duplicate_key_messages_name_their_index() {
        let mongo = "E11000 duplicate key error collection: labchat.chatMessages index: requestId_1_seq_1 dup key: \
                     { requestId: \"x index: idem_1 \", seq: 7 }";
        assert_eq!(index_named(mongo), Some("requestId_1_seq_1"));
        assert_eq!(
            index_named("UNIQUE constraint failed: index 'idx_chatMessages_idem'"),
            Some("idx_chatMessages_idem")
        );
        assert_eq!(index_named("UNIQUE constraint failed: chatMessages._id"), None);
    }
}
