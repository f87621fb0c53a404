//! A small time-bounded cache of the requests the use cases authorize against, so that a busy
//! room does not cost one store lookup per frame.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use labchat_domain::{Request, RequestId};

/// Requests found in the store, each kept for at most `ttl`, at most `capacity` of them.
///
/// Only requests that exist are kept: a request created a moment ago must not be refused
/// because an earlier lookup missed it. The use cases consult an entry only to *allow* an
/// action; a refusal is always confirmed with a fresh lookup (see `Chat::authorize`), so a
/// cached entry can be stale only in the permissive direction, and for at most `ttl`.
pub(crate) struct RequestCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<RequestId, (Request, Instant)>>,
}

impl RequestCache {
    /// A cache keeping entries for `ttl` (zero turns it off), at most `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// How long entries are kept.
    pub(crate) const fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RequestId, (Request, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request, if it was found no longer than the TTL before `now`.
    pub(crate) fn get(&self, id: RequestId, now: Instant) -> Option<Request> {
        let mut entries = self.lock();
        match entries.get(&id) {
            Some((request, at)) if now.saturating_duration_since(*at) < self.ttl => Some(request.clone()),
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
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
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            // Still full of fresh entries: make room by dropping any one of them.
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(id, (request.clone(), now));
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

    #[test]
    fn entries_last_for_the_ttl_only() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        cache.put(rid(1), Some(&request(1, "t1")), t0);
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(59)), Some(request(1, "t1")));
        assert_eq!(cache.get(rid(1), t0 + Duration::from_secs(60)), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
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
