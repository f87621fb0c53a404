//! Group commit of message inserts: concurrent [`insert_message`](labchat_core::ChatStore)
//! calls share one `insert_many`.
//!
//! A background task owns the inserts. Each caller sends its document with a oneshot for the
//! answer and waits (bounded by the operation timeout). The task waits for the first document,
//! takes everything else already queued (at most [`MAX_BATCH`]), stores it all with one unordered
//! `insert_many` (bounded by the operation timeout too), answers every caller, and starts over. So
//! while one batch is in flight the next one gathers: there is no timer and no added latency when
//! the load is light, and under load one round trip stores many messages.
//!
//! Each caller gets its own answer: stored, a duplicate key (its idempotency key or id is taken;
//! the caller then looks the original up itself) or a failure, mapped as for a single insert.
//! A caller answers its client only after its batch is stored, and the use case keeps one write
//! per room in flight, so the order within a room is kept.

use std::time::Duration;

use labchat_core::StoreError;
use mongodb::Collection;
use mongodb::error::{Error, ErrorKind};
use tokio::sync::{mpsc, oneshot};

use crate::documents::MessageDoc;
use crate::errors::{DUPLICATE_KEY, TimedOut, store_error, within, write_error};

/// The most documents one batch holds.
pub(crate) const MAX_BATCH: usize = 256;

/// How many documents may wait for a batch before callers wait to queue theirs.
const QUEUE: usize = 4 * MAX_BATCH;

const CONTEXT: &str = "insert a message";

/// What happened to one document of a batch.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It was stored.
    Inserted,
    /// A unique index refused it: its id or idempotency key is already stored.
    DuplicateKey,
    /// It was not stored, or whether it was is unknown.
    Failed(StoreError),
}

struct Job {
    doc: MessageDoc,
    reply: oneshot::Sender<Outcome>,
}

/// The handle on the batching task; the task ends when the handle is dropped (after answering
/// what was queued).
#[derive(Debug)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
    op_timeout: Duration,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub(crate) fn start(messages: Collection<MessageDoc>, op_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(messages, queue, op_timeout));
        Self { jobs, op_timeout }
    }

    /// Stores `doc` in the next batch and returns what happened to it, within the operation
    /// timeout (counted from the call: waiting for a batch in flight counts too). A caller that
    /// gave up before its batch was sent is left out of the batch.
    pub(crate) async fn insert(&self, doc: MessageDoc) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(self.op_timeout, async {
            self.jobs.send(Job { doc, reply }).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())
        })
        .await;
        match waited {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(StoreError::unavailable(CONTEXT, TimedOut(self.op_timeout))),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable(CONTEXT, "the batching task of message inserts has stopped")
}

async fn run(messages: Collection<MessageDoc>, mut queue: mpsc::Receiver<Job>, op_timeout: Duration) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Callers that already gave up (timed out) are told nothing, so store nothing for them.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let n = jobs.len();
        let started = std::time::Instant::now();
        let batch = messages.insert_many(jobs.iter().map(|j| &j.doc)).ordered(false);
        let outcomes = match within(op_timeout, CONTEXT, batch).await {
            Ok(driver) => outcomes(n, driver.map(drop)),
            Err(_) => (0..n).map(|_| Outcome::Failed(StoreError::unavailable(CONTEXT, TimedOut(op_timeout)))).collect(),
        };
        tracing::trace!(batch = n, took_us = started.elapsed().as_micros(), "stored a batch of messages");
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            // A caller that timed out in the meantime no longer listens.
            let _ = job.reply.send(outcome);
        }
    }
}

/// The outcome of each of the `n` documents of one unordered `insert_many`, from its result.
pub(crate) fn outcomes(n: usize, result: Result<(), Error>) -> Vec<Outcome> {
    let all = |f: &dyn Fn() -> Outcome| (0..n).map(|_| f()).collect::<Vec<_>>();
    let e = match result {
        Ok(()) => return all(&|| Outcome::Inserted),
        Err(e) => e,
    };
    let ErrorKind::InsertMany(m) = e.kind.as_ref() else {
        // Nothing tells which documents were stored: the whole batch failed alike.
        return all(&|| Outcome::Failed(store_error(CONTEXT, e.clone())));
    };
    // Without a write concern failure, every document without a write error is stored; with one,
    // whether they are durable is unknown, which is retryable (as for a single insert).
    let mut out = match &m.write_concern_error {
        None => all(&|| Outcome::Inserted),
        Some(_) => all(&|| Outcome::Failed(StoreError::unavailable(CONTEXT, e.clone()))),
    };
    for w in m.write_errors.iter().flatten() {
        if let Some(slot) = out.get_mut(w.index) {
            *slot =
                if w.code == DUPLICATE_KEY { Outcome::DuplicateKey } else { Outcome::Failed(write_error(CONTEXT, w)) };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, doc};
    use mongodb::error::InsertManyError;

    use super::*;

    fn insert_many_error(d: bson::Document) -> Error {
        let m: InsertManyError = bson::from_document(d).unwrap();
        Error::from(ErrorKind::InsertMany(m))
    }

    fn kinds(out: &[Outcome]) -> Vec<&'static str> {
        out.iter()
            .map(|o| match o {
                Outcome::Inserted => "inserted",
                Outcome::DuplicateKey => "duplicate",
                Outcome::Failed(e) if e.is_retryable() => "unavailable",
                Outcome::Failed(_) => "internal",
            })
            .collect()
    }

    #[test]
    fn a_stored_batch_stores_every_document() {
        assert_eq!(kinds(&outcomes(3, Ok(()))), ["inserted"; 3]);
    }

    #[test]
    fn each_document_gets_its_own_write_error() {
        let e = insert_many_error(doc! {"writeErrors": [
            {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"},
            {"index": 3, "code": 2, "errmsg": "bad value"},
            {"index": 4, "code": 91, "errmsg": "shutting down"},
            {"index": 99, "code": 2, "errmsg": "not in this batch"},
        ]});
        assert_eq!(kinds(&outcomes(5, Err(e))), ["inserted", "duplicate", "inserted", "internal", "unavailable"]);
    }

    #[test]
    fn a_write_concern_failure_leaves_the_rest_unknown() {
        let e = insert_many_error(doc! {
            "writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}],
            "writeConcernError": {"code": 64, "codeName": "WriteConcernFailed", "errmsg": "wtimeout"},
        });
        assert_eq!(kinds(&outcomes(2, Err(e))), ["duplicate", "unavailable"]);
    }

    #[test]
    fn a_failed_batch_fails_every_document_alike() {
        let io = Error::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(kinds(&outcomes(2, Err(io))), ["unavailable"; 2]);
        let de = bson::from_document::<InsertManyError>(doc! {"writeErrors": 5}).unwrap_err();
        let bad = Error::from(ErrorKind::BsonDeserialization(de));
        assert_eq!(kinds(&outcomes(2, Err(bad))), ["internal"; 2]);
    }
}
