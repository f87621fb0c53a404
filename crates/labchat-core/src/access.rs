//! A small time-bounded cache of the requests the use cases authorize against, so that a busy
//! room does not cost one store lookup per frame, and whose entries in use are looked up again
//! many at a time before they expire, so that a node serving thousands of rooms does not cost
//! one store lookup per room per lifetime either. While the store's lookups fail, an entry past
//! its lifetime still allows, for one lifetime more, rather than send every join and re-check of
//! its room to a store that is failing (stale-if-error).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use labchat_domain::{Request, RequestId};

use crate::ChatStore;

/// Most requests one refresh reads at once.
const REFRESH_AT_ONCE: usize = 1_000;

/// The longest a refresh waits for more entries to come due before it reads.
const REFRESH_GATHER: Duration = Duration::from_secs(1);

/// Requests found in the store, each kept for at most `ttl`, at most `capacity` of them.
///
/// Only requests that exist are kept: a request created a moment ago must not be refused
/// because an earlier lookup missed it. The use cases consult an entry only to *allow* an
/// action; a refusal is always confirmed with a fresh lookup (see `Chat::authorize`), so a
/// cached entry can be stale only in the permissive direction, and for at most `ttl` (twice
/// `ttl` while lookups fail, below).
///
/// An entry used past half its lifetime is due: a refresh ([`RequestCache::refresh`]) reads it
/// again with the others due, a thousand per store read, and a request gone or reassigned
/// meanwhile leaves the cache or changes in it then.
///
/// While a lookup (a refresh's or one of `Chat::authorize`'s) failed as unavailable less than
/// [`FAILING_FOR`] ago (whatever succeeded since), an entry past its lifetime is still given,
/// up to twice the TTL after it was found, and stays due: a store failing under a reconnect
/// storm is then asked by the refresh, one read per thousand rooms at a time, not once per room
/// by every join and access re-check (whose lookups would time out too, and keep it failing).
/// So an allowed action rests on a lookup at most the TTL old, or twice the TTL while the
/// store's lookups fail.
pub(crate) struct RequestCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<RequestId, (Request, Instant)>>,
    due: Mutex<HashSet<RequestId>>,
    refreshing: AtomicBool,
    /// When a lookup last failed, in milliseconds since `epoch`, plus one (0: never).
    failed_ms: AtomicU64,
    epoch: Instant,
}

/// How long after a lookup failed as unavailable entries past their lifetime are still given
/// (the refresh reads those used meanwhile again, one read at a time).
pub(crate) const FAILING_FOR: Duration = Duration::from_secs(10);

impl RequestCache {
    /// A cache keeping entries for `ttl` (zero turns it off), at most `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
            due: Mutex::new(HashSet::new()),
            refreshing: AtomicBool::new(false),
            failed_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// How long entries are kept.
    pub(crate) const fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RequestId, (Request, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn due(&self) -> MutexGuard<'_, HashSet<RequestId>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request, if it was found no longer than the TTL before `now` (twice the TTL while
    /// lookups fail: one failed as unavailable less than [`FAILING_FOR`] before); past half the
    /// TTL the entry becomes due for a refresh. An entry twice the TTL old is dropped.
    pub(crate) fn get(&self, id: RequestId, now: Instant) -> Option<Request> {
        let mut entries = self.lock();
        let (request, at) = entries.get(&id)?;
        let age = now.saturating_duration_since(*at);
        let lifetime = if self.failing(now) { self.ttl.saturating_mul(2) } else { self.ttl };
        if age < lifetime {
            if age >= self.ttl / 2 {
                self.due().insert(id);
            }
            return Some(request.clone());
        }
        if age >= self.ttl.saturating_mul(2) {
            entries.remove(&id);
        }
        None
    }

    /// Tells the cache a lookup of the store failed as unavailable at `now`: for [`FAILING_FOR`],
    /// entries past their lifetime are still given (see [`RequestCache`]). Not for other
    /// failures (a request that cannot be read is no sign of a store under load).
    pub(crate) fn lookup_failed(&self, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        self.failed_ms.fetch_max(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether a lookup failed as unavailable less than [`FAILING_FOR`] before `now`.
    fn failing(&self, now: Instant) -> bool {
        match self.failed_ms.load(Ordering::Relaxed) {
            0 => false,
            ms => self.epoch + Duration::from_millis(ms - 1) + FAILING_FOR > now,
        }
    }

    /// Remembers a request found at `now`, or forgets `id` when it was not found.
    pub(crate) fn put(&self, id: RequestId, found: Option<&Request>, now: Instant) {
        let mut entries = self.lock();
        let Some(request) = found else {
            entries.remove(&id);
            return;
        };
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&id) {
            // Expired entries go first; while lookups fail, only those no longer given.
            let keep = if self.failing(now) { self.ttl.saturating_mul(2) } else { self.ttl };
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < keep);
            // Still full of fresh entries: make room by dropping any one of them.
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(id, (request.clone(), now));
    }

    /// Whether entries are due and no refresh runs; if so, the caller now runs one.
    fn start_refresh(&self) -> bool {
        !self.due().is_empty() && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Starts a refresh ([`RequestCache::refresh`], on the current tokio runtime) of the due
    /// entries from `store`, unless none is due or one runs.
    pub(crate) fn refresh_if_due(self: &Arc<Self>, store: &Arc<dyn ChatStore>) {
        if self.start_refresh() {
            tokio::spawn(Arc::clone(self).refresh(Arc::clone(store)));
        }
    }

    /// Reads the due entries again, [`REFRESH_AT_ONCE`] per store read, after gathering them
    /// for up to [`REFRESH_GATHER`] (at most a quarter of the TTL), until none is due. A
    /// request not found any more leaves the cache; a read that fails as unavailable leaves its
    /// entries as they are, given past their lifetime for a while (see [`RequestCache`]) and
    /// due again when used. One read at a time. Started by [`RequestCache::refresh_if_due`].
    async fn refresh(self: Arc<Self>, store: Arc<dyn ChatStore>) {
        loop {
            tokio::time::sleep(REFRESH_GATHER.min(self.ttl / 4)).await;
            // Taken, not drained: the set's memory goes with it.
            let due: Vec<RequestId> = std::mem::take(&mut *self.due()).into_iter().collect();
            if due.is_empty() {
                self.refreshing.store(false, Ordering::Release);
                // Due meanwhile: go on, unless another refresh took over.
                if self.start_refresh() {
                    continue;
                }
                return;
            }
            for ids in due.chunks(REFRESH_AT_ONCE) {
                match store.find_requests(ids).await {
                    Ok(found) => {
                        let now = Instant::now();
                        let found: HashMap<RequestId, Request> = found.into_iter().map(|r| (r.id(), r)).collect();
                        for id in ids {
                            self.put(*id, found.get(id), now);
                        }
                    }
                    Err(e) => {
                        if e.is_retryable() {
                            self.lookup_failed(Instant::now());
                        }
                        tracing::warn!(error = %e, requests = ids.len(), "looking requests up again failed; kept while lookups fail, up to twice their lifetime");
                    }
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use labchat_domain::UserId;

    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }
    fn request(n: u32, by: &str) -> Request {
        Request::new(rid(n), UserId::parse(by).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn entries_used_past_half_their_lifetime_are_read_again_together() {
        let cache = Arc::new(RequestCache::new(Duration::from_secs(60), 10));
        let t0 = Instant::now();
        for n in 1..=3 {
            cache.put(rid(n), Some(&request(n, "t1")), t0);
        }
        assert!(cache.get(rid(1), t0 + Duration::from_secs(29)).is_some());
        assert!(cache.due().is_empty(), "used before half its lifetime: not due");
        for n in [1, 2] {
            assert!(cache.get(rid(n), t0 + Duration::from_secs(31)).is_some());
        }
        // Request 1 was given to another teacher meanwhile, request 2 deleted; 3 was not used.
        let mut store = crate::MockChatStore::new();
        store
            .expect_find_requests()
            .times(1)
            .withf(|ids: &[RequestId]| {
                let mut ids = ids.to_vec();
                ids.sort();
                ids == [rid(1), rid(2)]
            })
            .returning(|_| Ok(vec![request(1, "t2")]));
        let store: Arc<dyn ChatStore> = Arc::new(store);
        cache.refresh_if_due(&store);
        cache.refresh_if_due(&store); // one refresh at a time: the mock allows one read
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = Instant::now();
        assert_eq!(cache.get(rid(1), now), Some(request(1, "t2")), "read again: its new creator");
        assert_eq!(cache.get(rid(2), now), None, "gone from the store, gone from the cache");
        assert_eq!(cache.get(rid(3), now), Some(request(3, "t1")), "not used: left as it was");
        assert!(!cache.refreshing.load(Ordering::Acquire), "the refresh ended with nothing due");
    }

    #[test]
    fn after_a_failed_lookup_entries_are_given_for_one_lifetime_more_for_a_while() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        assert_eq!(cache.get(rid(1), t0 + s(61)), None, "past its lifetime, the store answering");
        cache.lookup_failed(t0 + s(61));
        assert_eq!(cache.get(rid(1), t0 + s(62)), Some(request(1, "t1")), "kept, not dropped, and given now");
        assert!(cache.due().contains(&rid(1)), "and still due, to be read again");
        assert_eq!(cache.get(rid(1), t0 + s(61) + FAILING_FOR), None, "no lookup failed lately");
        cache.lookup_failed(t0 + s(115));
        assert_eq!(cache.get(rid(1), t0 + s(119)), Some(request(1, "t1")));
        assert_eq!(cache.get(rid(1), t0 + s(120)), None, "twice the TTL old: never");
        assert_eq!(cache.len(), 0, "and dropped");
    }

    /// A request used 59 s into a 60 s lifetime, whose refresh fails with `error`: what the
    /// cache gives 2 s later (61 s after it was found).
    async fn after_a_failed_refresh(error: fn() -> crate::StoreError) -> Option<Request> {
        let cache = Arc::new(RequestCache::new(Duration::from_secs(60), 10));
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "t1")), t0.checked_sub(Duration::from_secs(59)).unwrap());
        assert!(cache.get(rid(1), t0).is_some(), "used past half its lifetime: due");
        let mut store = crate::MockChatStore::new();
        store.expect_find_requests().times(1).returning(move |_| Err(error()));
        let store: Arc<dyn ChatStore> = Arc::new(store);
        cache.refresh_if_due(&store);
        tokio::time::sleep(Duration::from_secs(3)).await;
        cache.get(rid(1), t0 + Duration::from_secs(2))
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_fails_as_unavailable_keeps_its_entries_given_past_their_lifetime() {
        let unavailable = || crate::StoreError::unavailable("find requests", "timeout");
        assert_eq!(after_a_failed_refresh(unavailable).await, Some(request(1, "t1")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_fails_other_than_unavailable_gives_nothing_past_its_lifetime() {
        let internal = || crate::StoreError::internal("find requests", "bad document");
        assert_eq!(after_a_failed_refresh(internal).await, None);
    }

    #[test]
    fn entries_last_for_the_ttl_only() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(59)), Some(request(1, "t1")));
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(60)), None);
        assert_eq!(cache.len(), 1, "kept for a second lifetime, in case lookups fail");
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(120)), None);
        assert_eq!(cache.len(), 0, "twice the TTL old: dropped when met");
    }

    #[test]
    fn a_missing_request_is_not_kept_and_forgets_an_old_entry() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        cache.put(rid(1), None, t0);
        assert_eq!(cache.len(), 0);
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        cache.put(rid(1), None, t0);
        assert_eq!(cache.get(rid(1), t0), None);
    }

    #[test]
    fn a_fresh_lookup_replaces_the_entry() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        cache.put(rid(1), Some(&request(1, "t2")), t0 + Duration::from_secs(30));
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(80)), Some(request(1, "t2")));
    }

    #[test]
    fn the_size_is_bounded_and_expired_entries_go_first() {
        let cache = RequestCache::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "a")), t0);
        cache.put(rid(2), Some(&request(2, "a")), t0 + Duration::from_secs(30));
        cache.put(rid(3), Some(&request(3, "a")), t0 + Duration::from_secs(30));
        // rid(1) has expired by now: it makes the room.
        let later = t0 + Duration::from_secs(61);
        cache.put(rid(4), Some(&request(4, "a")), later);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(rid(2), later).is_some() && cache.get(rid(3), later).is_some());
        assert!(cache.get(rid(4), later).is_some());
        // All fresh: one of them goes.
        cache.put(rid(5), Some(&request(5, "a")), later);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(rid(5), later).is_some());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = RequestCache::new(Duration::ZERO, 10);
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        assert_eq!(cache.get(rid(1), t0), None);
    }
}
