//! Who settled a queued write first, the task that batches it or its caller (`batch.rs`,
//! `tally.rs`): a write is either left out, its caller told it timed out, or sent, its caller
//! told what the store did with it; never sent after its caller was told it failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// Who settled a queued job first: the task that batches, which takes it into a batch, or its
/// caller, who gives up waiting for one.
#[derive(Debug, Default)]
struct Claim(AtomicU8);

impl Claim {
    const QUEUED: u8 = 0;
    const TAKEN: u8 = 1;
    const ABANDONED: u8 = 2;

    /// Moves a queued job to `to`; false when the other side settled it first.
    fn settle(&self, to: u8) -> bool {
        self.0.compare_exchange(Self::QUEUED, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// A write queued for a batching task: what to write, where its answer goes, and its claim.
pub(crate) struct Job<T, A> {
    pub(crate) item: T,
    pub(crate) reply: oneshot::Sender<A>,
    claim: Arc<Claim>,
}

impl<T, A> Job<T, A> {
    /// Takes the job into a batch; false when its caller already gave up (timed out, or went
    /// away): nothing is then written for it, and it is told nothing.
    pub(crate) fn take(&self) -> bool {
        !self.reply.is_closed() && self.claim.settle(Claim::TAKEN)
    }
}

/// What a caller of a batching task was told.
#[derive(Debug)]
pub(crate) enum Waited<A> {
    /// Its batch's answer.
    Answer(A),
    /// No batch took the job within the limit: it was left out.
    TimedOut,
    /// The task ended without an answer (the runtime is shutting down).
    Stopped,
}

/// Queues `item` and waits for a batch to take it within `limit`, counted from the call; once a
/// batch took it ([`Job::take`]), waits for that batch's answer, however long the batch takes
/// (each of its round trips is bounded).
pub(crate) async fn queue_and_wait<T, A>(jobs: &mpsc::Sender<Job<T, A>>, limit: Duration, item: T) -> Waited<A> {
    let (reply, mut answer) = oneshot::channel();
    let claim = Arc::new(Claim::default());
    let job = Job { item, reply, claim: Arc::clone(&claim) };
    let waited = tokio::time::timeout(limit, async {
        jobs.send(job).await.ok()?;
        (&mut answer).await.ok()
    })
    .await;
    match waited {
        Ok(Some(answer)) => Waited::Answer(answer),
        Ok(None) => Waited::Stopped,
        Err(_) if claim.settle(Claim::ABANDONED) => Waited::TimedOut,
        // Its batch is in flight: what the store does with it is the answer.
        Err(_) => answer.await.map_or(Waited::Stopped, Waited::Answer),
    }
}
