//! Admission of joins: a node-wide bound on the joins in progress (each reads the store several
//! times), so that a reconnect storm waits at the door, briefly, and is then refused with a time
//! to come back, instead of queueing in the store past its timeout. The times told are booked:
//! each refused join is told one *pace* (the time one more join adds to the queue at the pace the
//! node's joins end now) after the one refused before it, so the joins refused in a storm come
//! back one after the other as fast as the node serves them, rather than all at once again.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// The slots of the joins in progress, how long the recent joins held one, and the last time a
/// refused join was told to come back.
pub(super) struct Admission {
    slots: Semaphore,
    /// The running mean of the joins' times in a slot, in microseconds; 0 until a join ended.
    service_us: AtomicU64,
    /// The latest time a refused join was told to come back, in microseconds since `epoch`.
    booked_us: AtomicU64,
    epoch: Instant,
    policy: JoinAdmission,
}

impl Admission {
    pub(super) fn new(policy: JoinAdmission) -> Self {
        let slots = policy.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Semaphore::new(slots),
            service_us: AtomicU64::new(0),
            booked_us: AtomicU64::new(0),
            epoch: Instant::now(),
            policy: JoinAdmission { max_in_flight: slots, ..policy },
        }
    }

    /// A slot for one join, held until the [`Slot`] is dropped; or, when none freed up within
    /// the wait, how long the refused join should wait before it comes back (see [`booking`]).
    pub(super) async fn enter(&self) -> Result<Slot<'_>, Duration> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(self.slot(permit));
        }
        match tokio::time::timeout(self.policy.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(self.slot(permit)),
            // The wait ran out (the semaphore is never closed).
            Ok(Err(_)) | Err(_) => Err(self.book()),
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
        let took = micros(took).max(1);
        let _ = self.service_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
            Some(if mean == 0 {
                took
            } else {
                (mean - mean / SERVICE_WEIGHT).saturating_add(took / SERVICE_WEIGHT).max(1)
            })
        });
    }

    /// Books the time a join refused now comes back, and tells how long it should wait.
    fn book(&self) -> Duration {
        let now = micros(self.epoch.elapsed());
        let pace = micros(pace(self.policy, self.service())).max(1);
        let (wait, cap) = (micros(self.policy.wait), micros(MAX_JOIN_RETRY_AFTER));
        let mut told = None;
        let _ = self.booked_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |booked| {
            let (at, keep) = booking(booked, now, pace, wait, cap);
            told = keep.then_some(at - now);
            keep.then_some(at)
        });
        match told {
            Some(us) => Duration::from_micros(us).max(Duration::from_millis(1)),
            // Past the cap: spread over the cap's upper half, so that these do not come back
            // together either (they are refused again then, and booked after the queue).
            None => MAX_JOIN_RETRY_AFTER.mul_f64(0.5 + 0.5 * jitter()),
        }
    }
}

/// The time one more join adds to the queue at the pace the node's joins end now: the recent
/// joins' mean time in a slot (`service`; the admission wait until a join ended) over the slots.
pub(super) fn pace(policy: JoinAdmission, service: Option<Duration>) -> Duration {
    let slots = u32::try_from(policy.max_in_flight.max(1)).unwrap_or(u32::MAX);
    service.unwrap_or(policy.wait) / slots
}

/// The booking decision, in microseconds on one clock: a join refused at `now`, when the last
/// refused join was told `booked`, comes back one `pace` after it, and never sooner than the
/// admission `wait` from now (the refused join waited that long and no slot came: the queue is
/// at least that long, whatever the mean says). Returns the time and whether it is booked: a
/// join whose time would fall past `cap` from now books nothing (it is told the cap here, and
/// [`Admission::book`] spreads those over the cap's upper half), so that the times booked never
/// run further ahead than the cap.
pub(super) fn booking(booked: u64, now: u64, pace: u64, wait: u64, cap: u64) -> (u64, bool) {
    let at = booked.saturating_add(pace).max(now.saturating_add(wait.min(cap)));
    if at - now > cap { (now.saturating_add(cap), false) } else { (at, true) }
}

/// A random number in `[0, 1)`; 0.5 if the system has no randomness to give.
fn jitter() -> f64 {
    getrandom::u32().map_or(0.5, |r| f64::from(r) / (f64::from(u32::MAX) + 1.0))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: JoinAdmission = JoinAdmission { max_in_flight: 10, wait: Duration::from_secs(1) };

    const MS: u64 = 1_000;
    const WAIT: u64 = 1_000 * MS;
    const CAP: u64 = 30_000 * MS;

    #[test]
    fn refused_joins_are_told_one_pace_apart_from_the_admission_wait_on() {
        let now = 500_000 * MS;
        // Nothing booked yet (or long ago): the admission wait.
        assert_eq!(booking(0, now, 10 * MS, WAIT, CAP), (now + WAIT, true));
        assert_eq!(booking(now - 40_000 * MS, now, 10 * MS, WAIT, CAP), (now + WAIT, true));
        // Then one pace after the last one told, however many came before.
        let mut booked = 0;
        let told: Vec<u64> = (0..100)
            .map(|_| {
                let (at, keep) = booking(booked, now, 10 * MS, WAIT, CAP);
                assert!(keep);
                booked = at;
                at - now
            })
            .collect();
        assert_eq!(told[..3], [WAIT, WAIT + 10 * MS, WAIT + 20 * MS]);
        assert_eq!(told[99], WAIT + 990 * MS);
        // A second later, the queue told is a second shorter.
        assert_eq!(booking(booked, now + 1_000 * MS, 10 * MS, WAIT, CAP), (booked + 10 * MS, true));
    }

    #[test]
    fn past_the_cap_a_join_is_told_the_cap_and_books_nothing() {
        let now = 500_000 * MS;
        let last = now + CAP - 5 * MS;
        assert_eq!(booking(last, now, 5 * MS, WAIT, CAP), (now + CAP, true), "exactly the cap is booked");
        assert_eq!(booking(last, now, 6 * MS, WAIT, CAP), (now + CAP, false));
        assert_eq!(booking(u64::MAX - 1, now, 6 * MS, WAIT, CAP), (now + CAP, false));
        // An admission wait longer than the cap: the cap.
        assert_eq!(booking(0, now, 1, 60_000 * MS, CAP), (now + CAP, true));
    }

    #[test]
    fn the_pace_is_the_mean_time_in_a_slot_over_the_slots() {
        assert_eq!(pace(POLICY, None), Duration::from_millis(100), "the admission wait until a join ended");
        assert_eq!(pace(POLICY, Some(Duration::from_millis(640))), Duration::from_millis(64));
        let one = JoinAdmission { max_in_flight: 1, ..POLICY };
        assert_eq!(pace(one, Some(Duration::from_secs(3))), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_mean_time_in_a_slot_follows_the_joins_that_ended() {
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
        // Joins refused now, while the slot is held: the first told the admission wait (the
        // queue is at least that long), each next one a mean later than the one before.
        let held = admission.enter().await.unwrap();
        let first = admission.enter().await.unwrap_err();
        assert_eq!(first, Duration::from_millis(10));
        // Each refusal waited the admission wait (10 ms on the paused clock) before it was told:
        // the next is told a mean after the last one told, from 10 ms later.
        let second = admission.enter().await.unwrap_err();
        assert_eq!(second, mean);
        let third = admission.enter().await.unwrap_err();
        assert_eq!(third, mean * 2 - Duration::from_millis(10));
        drop(held);
        // One more join counts for a sixteenth (integer microseconds, rounded down).
        let before = admission.service().unwrap().as_micros();
        hold(200).await;
        let after = admission.service().unwrap().as_micros();
        assert_eq!(after, before - before / 16 + 200_000 / 16, "{before} µs, then a join of 200 ms");
    }

    #[tokio::test(start_paused = true)]
    async fn joins_past_the_cap_are_spread_over_its_upper_half_and_book_nothing() {
        // One slot and a 20 s wait: until a join ended, a pace of 20 s.
        let admission = Admission::new(JoinAdmission { max_in_flight: 1, wait: Duration::from_secs(20) });
        assert_eq!(admission.book(), Duration::from_secs(20));
        let booked = admission.booked_us.load(Ordering::Relaxed);
        let told: Vec<Duration> = (0..50).map(|_| admission.book()).collect();
        let half = MAX_JOIN_RETRY_AFTER / 2;
        assert!(told.iter().all(|t| (half..MAX_JOIN_RETRY_AFTER).contains(t)), "{told:?}");
        assert!(told.iter().any(|t| *t != told[0]), "spread: {told:?}");
        assert_eq!(admission.booked_us.load(Ordering::Relaxed), booked, "nothing booked past the cap");
    }

    #[test]
    fn a_zero_wait_still_tells_a_wait() {
        let admission = Admission::new(JoinAdmission { max_in_flight: 0, wait: Duration::ZERO });
        assert_eq!(admission.book(), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn past_the_bound_a_join_waits_then_is_refused_and_a_freed_slot_admits_again() {
        let admission = Admission::new(JoinAdmission { max_in_flight: 1, wait: Duration::from_millis(10) });
        let held = admission.enter().await.unwrap();
        let refused = admission.enter().await.unwrap_err();
        // The first refused: the admission wait, to the microsecond.
        assert_eq!(refused, Duration::from_millis(10));
        drop(held);
        assert!(admission.enter().await.is_ok());
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

    #[test]
    fn a_bound_of_zero_admits_one() {
        assert_eq!(Admission::new(JoinAdmission { max_in_flight: 0, ..POLICY }).policy.max_in_flight, 1);
    }
}
