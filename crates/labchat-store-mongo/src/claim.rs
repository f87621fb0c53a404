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
pub(crate) struct Claim(AtomicU8);

impl Claim {
    const QUEUED: u8 = 0;
    pub(crate) const TAKEN: u8 = 1;
    pub(crate) const ABANDONED: u8 = 2;

    /// Moves a queued job to `to`; false when the other side settled it first.
    pub(crate) fn settle(&self, to: u8) -> bool {
        self.0.compare_exchange(Self::QUEUED, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
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

/// Queues the job `make` builds (from the reply channel and the job's claim) and waits for a
/// batch to take it within `limit`, counted from the call; once a batch took it, waits for that
/// batch's answer, however long the batch takes (each of its round trips is bounded).
pub(crate) async fn queue_and_wait<J, A>(
    jobs: &mpsc::Sender<J>,
    limit: Duration,
    make: impl FnOnce(oneshot::Sender<A>, Arc<Claim>) -> J,
) -> Waited<A> {
    let (reply, mut answer) = oneshot::channel();
    let claim = Arc::new(Claim::default());
    let job = make(reply, Arc::clone(&claim));
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
