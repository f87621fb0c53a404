//! Coalesced point reads: concurrent reads of one kind (a request by id, a user's unread count,
//! a history cursor's seq) share one `$in` query.
//!
//! A join storm asks MongoDB for thousands of such small reads at once, each its own round trip,
//! and a server answers a bounded number of round trips a second whatever their size: the reads
//! queue in the server, every caller waits, and some time out. A [`Gather`] owns a background
//! task that answers them: it waits for the first key, takes every other key already queued (at
//! most [`MAX_KEYS`]), reads them all with one query (its *fetch*), and answers each caller with
//! its own key's value. At most [`IN_FLIGHT`] reads run at once; while they do, the next keys
//! gather. There is no timer: a lone read goes at once, as before, and under load one round trip
//! serves many callers. The insert batching in `batch.rs` does the same for writes.
//!
//! Reads are idempotent, so a caller that gives up is simply not answered. A fetch failure
//! fails every caller of its read, each with its own context and the same kind (retryable or
//! not) as the fetch's error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use labchat_core::StoreError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::errors::{TimedOut, shared};

/// The most keys one read asks for.
pub(crate) const MAX_KEYS: usize = 500;

/// The most reads of one kind in flight at once.
pub(crate) const IN_FLIGHT: usize = 4;

/// How many keys may wait for a read before callers wait to queue theirs: as many as the reads
/// in flight take, so that a queued key waits for one round of reads at most.
const QUEUE: usize = IN_FLIGHT * MAX_KEYS;

/// The cursor batch size for a query of `n` keys: all in the first reply (a server's default
/// first batch is 101 documents, and each further batch is another round trip).
pub(crate) fn batch_of(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// One read of many keys: the values found, by key (a key absent from the map was not found).
pub(crate) type Fetched<K, V> = Result<HashMap<K, V>, StoreError>;

struct Job<K, V> {
    key: K,
    reply: oneshot::Sender<Result<Option<V>, Arc<StoreError>>>,
}

/// The handle on one kind of coalesced read; its task ends when the handle is dropped (after
/// answering what was queued).
pub(crate) struct Gather<K, V> {
    jobs: mpsc::Sender<Job<K, V>>,
    context: &'static str,
    op_timeout: Duration,
}

impl<K, V> fmt::Debug for Gather<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather").field("context", &self.context).finish_non_exhaustive()
    }
}

impl<K, V> Gather<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the task on the current tokio runtime. `fetch` reads many keys with one query,
    /// itself bounded by the operation timeout; `context` names the read in errors.
    pub(crate) fn start<F, Fut>(context: &'static str, op_timeout: Duration, fetch: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Fetched<K, V>> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(queue, Arc::new(fetch)));
        Self { jobs, context, op_timeout }
    }

    /// The value of `key`, `None` when the store has none. Waits for a read to take the key
    /// (at most one round of the reads in flight, each bounded by the operation timeout) and for
    /// that read's answer: at most twice the operation timeout in all.
    pub(crate) async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let limit = self.op_timeout.saturating_mul(2);
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(limit, async {
            self.jobs.send(Job { key, reply }).await.map_err(|_| self.stopped())?;
            answer.await.map_err(|_| self.stopped())
        })
        .await;
        match waited {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(failed))) => Err(self.failed(failed)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::unavailable(self.context, TimedOut(limit))),
        }
    }

    /// The read's task ended without an answer: it panicked (a bug, reported by the panic), or
    /// the runtime is shutting down.
    fn stopped(&self) -> StoreError {
        StoreError::internal(self.context, "the task of coalesced reads ended without an answer")
    }

    /// This caller's error for a fetch that failed: the same kind, with this read's context.
    fn failed(&self, cause: Arc<StoreError>) -> StoreError {
        shared(self.context, cause)
    }
}

async fn run<K, V, F, Fut>(mut queue: mpsc::Receiver<Job<K, V>>, fetch: Arc<F>)
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
    F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Fetched<K, V>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first: while every slot is busy, the keys gather in the queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut jobs = Vec::new();
        if queue.recv_many(&mut jobs, MAX_KEYS).await == 0 {
            return;
        }
        // Callers that gave up are not read for.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let fetch = Arc::clone(&fetch);
        tokio::spawn(async move {
            let mut seen = HashSet::with_capacity(jobs.len());
            let keys: Vec<K> = jobs.iter().filter(|j| seen.insert(&j.key)).map(|j| j.key.clone()).collect();
            drop(seen);
            let found = fetch(keys).await.map_err(Arc::new);
            drop(slot);
            for job in jobs {
                let answer = match &found {
                    Ok(values) => Ok(values.get(&job.key).cloned()),
                    Err(e) => Err(Arc::clone(e)),
                };
                // A caller that went away in the meantime no longer listens.
                let _ = job.reply.send(answer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    type Calls = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A gather whose fetch records the keys of each read, waits `delay`, and finds the double
    /// of every even key; `fail` makes every read fail with that kind (true: retryable).
    fn doubling(delay: Duration, fail: Option<bool>) -> (Arc<Gather<u32, u32>>, Calls) {
        let calls: Calls = Arc::default();
        let seen = Arc::clone(&calls);
        let gather = Gather::start("read numbers", Duration::from_secs(5), move |keys: Vec<u32>| {
            seen.lock().unwrap().push(keys.clone());
            async move {
                tokio::time::sleep(delay).await;
                match fail {
                    Some(true) => Err(StoreError::unavailable("fetch", "down")),
                    Some(false) => Err(StoreError::internal("fetch", "corrupt")),
                    None => Ok(keys.into_iter().filter(|k| k % 2 == 0).map(|k| (k, k * 2)).collect()),
                }
            }
        });
        (Arc::new(gather), calls)
    }

    async fn get_all(gather: &Arc<Gather<u32, u32>>, keys: impl IntoIterator<Item = u32>) -> Vec<Option<u32>> {
        let tasks: Vec<_> = keys
            .into_iter()
            .map(|k| {
                let g = Arc::clone(gather);
                tokio::spawn(async move { g.get(k).await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_read_goes_at_once_and_finds_its_own_key() {
        let (gather, calls) = doubling(Duration::from_millis(10), None);
        assert_eq!(gather.get(4).await.unwrap(), Some(8));
        assert_eq!(gather.get(3).await.unwrap(), None, "not found");
        assert_eq!(*calls.lock().unwrap(), vec![vec![4], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_reads_share_a_few_queries_and_each_gets_its_own_answer() {
        let (gather, calls) = doubling(Duration::from_millis(100), None);
        // Every key four times: duplicates wait in the queue together.
        let keys: Vec<u32> = (0..1_000).map(|k| k % 250).collect();
        let answers = get_all(&gather, keys.clone()).await;
        for (k, a) in keys.iter().zip(&answers) {
            assert_eq!(*a, (k % 2 == 0).then_some(k * 2), "key {k}");
        }
        let calls = calls.lock().unwrap();
        assert!(calls.len() <= IN_FLIGHT + 1000 / MAX_KEYS + 1, "1,000 reads took {} queries", calls.len());
        assert!(calls.iter().all(|c| c.len() <= MAX_KEYS), "a query asked for more than {MAX_KEYS} keys");
        let asked: usize = calls.iter().map(Vec::len).sum();
        assert!(asked < 1_000, "duplicates were asked for again: {asked} keys for 1,000 reads of 250");
        for c in calls.iter() {
            let distinct: HashSet<_> = c.iter().collect();
            assert_eq!(distinct.len(), c.len(), "a key asked for twice in one query");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_fails_each_of_its_callers_with_the_same_kind() {
        for retryable in [true, false] {
            let (gather, calls) = doubling(Duration::from_millis(10), Some(retryable));
            let tasks: Vec<_> = (0..50)
                .map(|k| {
                    let g = Arc::clone(&gather);
                    tokio::spawn(async move { g.get(k).await })
                })
                .collect();
            let mut errors = Vec::new();
            for t in tasks {
                errors.push(t.await.unwrap().unwrap_err());
            }
            let reads = calls.lock().unwrap().len();
            assert!(reads < 50, "50 callers, {reads} reads: no read failed several callers");
            for e in errors {
                assert_eq!(e.is_retryable(), retryable);
                assert!(e.to_string().contains("read numbers"), "{e}");
                let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
                assert!(cause.contains("shared"), "{cause}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_slower_than_twice_the_timeout_is_given_up_as_unavailable() {
        let (gather, _) = doubling(Duration::from_secs(60), None);
        let started = tokio::time::Instant::now();
        let e = gather.get(2).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
