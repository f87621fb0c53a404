//! Admission of joins: a node-wide bound on the joins in progress (each reads the store several
//! times), so that a reconnect storm waits at the door, briefly, and is then refused with a time
//! to come back, instead of queueing in the store past its timeout. The time to come back is
//! what the joins waiting ahead will take at the pace the node's joins end now.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::Chat;

/// How many joins a node runs at once, and how long one more waits for one of them to end
/// before it is refused ([`crate::JoinError::Busy`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JoinAdmission {
    /// Most joins in progress at once on this node (at least 1; 0 counts as 1).
    pub max_in_flight: usize,
    /// How long a join past the bound waits for a slot; keep it well under the store's timeout.
    pub wait: Duration,
}

impl Default for JoinAdmission {
    /// 64 joins at once, and a wait of one second.
    fn default() -> Self {
        Self { max_in_flight: 64, wait: Duration::from_secs(1) }
    }
}

impl Chat {
    /// The same use cases, running at most `admission.max_in_flight` joins at once; one more
    /// waits up to `admission.wait` for one of them to end, and is then refused with
    /// [`JoinError::Busy`](crate::JoinError::Busy) (default [`JoinAdmission::default`]).
    #[must_use]
    pub fn with_join_admission(mut self, admission: JoinAdmission) -> Self {
        self.admission = Admission::new(admission);
        self
    }

    /// The bound on joins in progress, and the wait past it.
    pub const fn join_admission(&self) -> JoinAdmission {
        self.admission.policy
    }
}

/// The longest time a refused join is told to wait before it comes back.
pub const MAX_JOIN_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The weight of a join's time in a slot in the running mean of those times: 1/16.
const SERVICE_WEIGHT: u64 = 16;

/// The slots of the joins in progress, how many joins wait for one, and how long the recent
/// joins held one.
pub(super) struct Admission {
    slots: Semaphore,
    waiting: AtomicUsize,
    /// The running mean of the joins' times in a slot, in microseconds; 0 until a join ended.
    service_us: AtomicU64,
    policy: JoinAdmission,
}

impl Admission {
    pub(super) fn new(policy: JoinAdmission) -> Self {
        let slots = policy.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            service_us: AtomicU64::new(0),
            policy: JoinAdmission { max_in_flight: slots, ..policy },
        }
    }

    /// A slot for one join, held until the [`Slot`] is dropped; or, when none freed up within
    /// the wait, how long the refused join should wait before it comes back.
    pub(super) async fn enter(&self) -> Result<Slot<'_>, Duration> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(self.slot(permit));
        }
        let counted = Waiting::new(&self.waiting);
        let acquired = tokio::time::timeout(self.policy.wait, self.slots.acquire()).await;
        // This join included: how many were waiting when it gave up.
        let waiting = counted.now();
        drop(counted);
        match acquired {
            Ok(Ok(permit)) => Ok(self.slot(permit)),
            // The wait ran out (the semaphore is never closed).
            Ok(Err(_)) | Err(_) => Err(retry_after(self.policy, self.service(), waiting, jitter())),
        }
    }

    fn slot<'a>(&'a self, permit: SemaphorePermit<'a>) -> Slot<'a> {
        Slot { _permit: permit, admission: self, since: Instant::now() }
    }

    /// The recent joins' mean time in a slot; `None` until a join ended.
    fn service(&self) -> Option<Duration> {
        match self.service_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Counts a join's time in a slot into the running mean.
    fn served(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.service_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
            Some(if mean == 0 {
                took
            } else {
                (mean - mean / SERVICE_WEIGHT).saturating_add(took / SERVICE_WEIGHT).max(1)
            })
        });
    }
}

/// One join's slot: freed, and its time counted into the mean, when dropped.
pub(super) struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    admission: &'a Admission,
    since: Instant,
}

impl std::fmt::Debug for Slot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("since", &self.since).finish_non_exhaustive()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.admission.served(self.since.elapsed());
    }
}

/// One join counted among those waiting for a slot while this lives (a join dropped while it
/// waits, its connection gone, is counted out too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }

    fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a join refused while `waiting` joins (itself included) waited for a slot should wait
/// before it comes back: what the queue takes to pass through the slots, that is the recent
/// joins' mean time in a slot (`service`; the admission wait until a join ended) times one plus
/// how many times the bound the queue is (`waiting / max_in_flight`); never less than the
/// admission wait (the refused join waited that long and no slot came: the mean may be of
/// quicker joins, before the slots stuck), at most [`MAX_JOIN_RETRY_AFTER`]; then spread by
/// `jitter` (in `[0, 1)`) over its upper half, so that the joins refused together come back
/// apart.
pub(super) fn retry_after(policy: JoinAdmission, service: Option<Duration>, waiting: usize, jitter: f64) -> Duration {
    let over = waiting as f64 / policy.max_in_flight.max(1) as f64;
    let base = service.unwrap_or(policy.wait).mul_f64(1.0 + over).max(policy.wait).min(MAX_JOIN_RETRY_AFTER);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)).max(Duration::from_millis(1))
}

/// A random number in `[0, 1)`; 0.5 if the system has no randomness to give.
fn jitter() -> f64 {
    getrandom::u32().map_or(0.5, |r| f64::from(r) / (f64::from(u32::MAX) + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: JoinAdmission = JoinAdmission { max_in_flight: 10, wait: Duration::from_secs(1) };

    #[test]
    fn the_wait_grows_with_the_queue_and_stops_at_the_cap() {
        assert_eq!(retry_after(POLICY, None, 10, 1.0), Duration::from_secs(2));
        assert_eq!(retry_after(POLICY, None, 40, 1.0), Duration::from_secs(5));
        assert_eq!(retry_after(POLICY, None, 1_000_000, 1.0), MAX_JOIN_RETRY_AFTER);
        assert!(retry_after(POLICY, None, 1, 1.0) < retry_after(POLICY, None, 11, 1.0));
    }

    #[test]
    fn once_joins_ended_the_wait_follows_their_time_in_a_slot() {
        let fast = Some(Duration::from_millis(50));
        assert_eq!(retry_after(POLICY, fast, 640, 1.0), Duration::from_millis(3_250));
        assert_eq!(retry_after(POLICY, fast, 10, 1.0), POLICY.wait, "never less than the admission wait");
        let slow = Some(Duration::from_secs(3));
        assert_eq!(retry_after(POLICY, slow, 10, 1.0), Duration::from_secs(6), "slower than the admission wait");
        assert_eq!(retry_after(POLICY, slow, 1_000, 1.0), MAX_JOIN_RETRY_AFTER);
    }

    #[tokio::test(start_paused = true)]
    async fn the_mean_time_in_a_slot_follows_the_joins_that_ended() {
        // An admission wait short enough that the queue's time at 40 ms a join is above it.
        let admission = Admission::new(JoinAdmission { max_in_flight: 1, wait: Duration::from_millis(10) });
        assert_eq!(admission.service(), None, "no join ended yet");
        let hold = |ms| {
            let admission = &admission;
            async move {
                let slot = admission.enter().await.unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                drop(slot);
            }
        };
        hold(200).await;
        assert_eq!(admission.service(), Some(Duration::from_millis(200)), "the first join sets it");
        for _ in 0..200 {
            hold(40).await;
        }
        let mean = admission.service().unwrap();
        assert!((Duration::from_millis(40)..Duration::from_millis(41)).contains(&mean), "{mean:?}");
        // A join refused now is told the queue's time at that pace: one waiting for one slot,
        // twice the mean, spread over its upper half.
        let held = admission.enter().await.unwrap();
        let refused = admission.enter().await.unwrap_err();
        assert!((mean..=mean * 2).contains(&refused), "{refused:?} at a mean of {mean:?}");
        drop(held);
        // One more join counts for a sixteenth (integer microseconds, rounded down).
        let before = admission.service().unwrap().as_micros();
        hold(200).await;
        let after = admission.service().unwrap().as_micros();
        assert_eq!(after, before - before / 16 + 200_000 / 16, "{before} µs, then a join of 200 ms");
    }

    #[test]
    fn jitter_spreads_the_wait_over_its_upper_half() {
        assert_eq!(retry_after(POLICY, None, 10, 0.0), Duration::from_secs(1));
        assert_eq!(retry_after(POLICY, None, 10, 0.5), Duration::from_millis(1500));
        assert_eq!(retry_after(POLICY, None, 1_000_000, 0.0), MAX_JOIN_RETRY_AFTER / 2);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn a_zero_wait_still_tells_a_wait() {
        let now = JoinAdmission { max_in_flight: 0, wait: Duration::ZERO };
        assert_eq!(retry_after(now, None, 5, 0.0), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn past_the_bound_a_join_waits_then_is_refused_and_a_freed_slot_admits_again() {
        let admission = Admission::new(JoinAdmission { max_in_flight: 1, wait: Duration::from_millis(10) });
        let held = admission.enter().await.unwrap();
        let refused = admission.enter().await.unwrap_err();
        // One waiting for one slot: one to two times the wait, the upper half of it.
        assert!((Duration::from_millis(10)..=Duration::from_millis(20)).contains(&refused), "{refused:?}");
        drop(held);
        assert!(admission.enter().await.is_ok());
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    /// A store hook: every call reaches the store, says so, and never returns.
    struct Stuck(tokio::sync::mpsc::UnboundedSender<()>);

    impl crate::StoreHook for Stuck {
        fn around<'a, T: Send + 'static>(
            &'a self,
            _: crate::StoreCall,
            inner: crate::StoreFuture<'a, T>,
        ) -> crate::StoreFuture<'a, T> {
            Box::pin(async move {
                let _ = inner.await;
                let _ = self.0.send(());
                std::future::pending().await
            })
        }
    }

    #[tokio::test]
    async fn a_join_past_the_bound_is_refused_before_it_reads_or_subscribes_anything() {
        use std::sync::Arc;

        use labchat_domain::{HistoryLimit, RequestId, Role, User, UserId};

        use crate::{ChatStore, FailureKind, JoinError, MockBroadcaster, MockChatStore, MockClock, MockRoomSink};

        let mut store = MockChatStore::new();
        store.expect_find_request().times(1).returning(|_| Ok(None));
        let mut broadcaster = MockBroadcaster::new();
        broadcaster.expect_subscribe().never();
        broadcaster.expect_unsubscribe().never();
        let (arrived, mut calls) = tokio::sync::mpsc::unbounded_channel();
        let store = crate::Hooked::new(Arc::new(store) as Arc<dyn ChatStore>, Stuck(arrived));
        let chat = Arc::new(
            Chat::new(Arc::new(store), Arc::new(broadcaster), Arc::new(MockClock::new()), HistoryLimit::DEFAULT)
                .with_join_admission(JoinAdmission { max_in_flight: 1, wait: Duration::from_millis(10) }),
        );
        let lab = User::new(UserId::parse("lab").unwrap(), Role::Lab);
        let room = RequestId::parse(&format!("{:024x}", 1)).unwrap();
        let sink = || {
            let mut s = MockRoomSink::new();
            s.expect_id().return_const(crate::SinkId(1));
            Arc::new(s) as Arc<dyn crate::RoomSink>
        };
        // The first join takes the only slot and waits for the store.
        let first = tokio::spawn({
            let (chat, lab, sink) = (Arc::clone(&chat), lab.clone(), sink());
            async move { chat.join(&lab, room, None, sink, false).await.map(drop) }
        });
        calls.recv().await.unwrap();
        let refused = chat.join(&lab, room, None, sink(), false).await.unwrap_err();
        assert!(
            matches!(refused, JoinError::Busy { retry_after } if retry_after >= Duration::from_millis(10)),
            "{refused:?}"
        );
        assert_eq!(refused.kind(), FailureKind::Unavailable);
        first.abort();
    }

    #[tokio::test]
    async fn a_join_dropped_while_it_waits_is_counted_out() {
        let admission = Admission::new(JoinAdmission { max_in_flight: 1, wait: Duration::from_secs(60) });
        let _held = admission.enter().await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(5), admission.enter()).await.is_err());
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_bound_of_zero_admits_one() {
        assert_eq!(Admission::new(JoinAdmission { max_in_flight: 0, ..POLICY }).policy.max_in_flight, 1);
    }
}
