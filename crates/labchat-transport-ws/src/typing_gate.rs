//! A connection's own `typing` throttle, in front of the deployment-wide one of the presence
//! port: a `typing` for a room whose latest one this connection saw broadcast less than
//! [`labchat_core::TYPING_INTERVAL`] ago is answered here, without asking the port (no store,
//! no Redis command), and charged to a bucket of its own, far larger than the frame rate limit.
//!
//! So a client typing fast (one `typing` per key, a key held down) is never limited, while a
//! flood is: past the typing bucket it is refused like any frame (`RATE_LIMITED`), and closed
//! when it keeps sending without waiting. A `typing` that does reach the port is charged to the
//! connection's frame rate limit, so the port is asked at most at that rate.

use std::time::Duration;

use labchat_domain::RequestId;
use tokio::time::Instant;

use crate::rate_limit::{Decision, RateLimits, TokenBucket};

/// Rooms whose latest decision a connection remembers; a typist types in one or two.
const ROOMS_REMEMBERED: usize = 4;

/// How long a "throttled" answer of the port is trusted: another connection of the same user
/// (or another node) typed, and the port's interval ends at a time this connection does not
/// know. A broadcast is delayed by at most this much.
const THROTTLED_TRUSTED_FOR: Duration = Duration::from_millis(500);

/// What to do with one `typing` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypingCheck {
    /// Ask the presence port (then [`TypingGate::record`] its answer).
    Ask,
    /// Throttled here: acknowledge it, broadcast nothing.
    Throttled,
    /// Refuse it (`RATE_LIMITED`).
    Refuse {
        /// Milliseconds until the next one would be answered.
        retry_after_ms: u64,
    },
    /// A flood that does not wait: close the connection.
    Close,
}

/// The gate of one connection. Allocated at its first `typing` only.
#[derive(Debug)]
pub(crate) struct TypingGate {
    /// Rooms, and until when a `typing` there is throttled.
    quiet_until: Vec<(RequestId, Instant)>,
    bucket: TokenBucket,
}

impl TypingGate {
    /// A gate with a full bucket at `now`.
    pub(crate) fn new(limits: RateLimits, now: Instant) -> Self {
        Self { quiet_until: Vec::with_capacity(ROOMS_REMEMBERED), bucket: TokenBucket::new(limits, now) }
    }

    /// Decides about a `typing` for `room` at `now`, with the typing bucket's `limits`.
    pub(crate) fn check(&mut self, room: RequestId, now: Instant, limits: RateLimits) -> TypingCheck {
        let quiet = self.quiet_until.iter().any(|(r, until)| *r == room && now < *until);
        if !quiet {
            return TypingCheck::Ask;
        }
        match self.bucket.admit(now, limits) {
            Decision::Admit => TypingCheck::Throttled,
            Decision::Refuse { retry_after_ms } => TypingCheck::Refuse { retry_after_ms },
            Decision::Close => TypingCheck::Close,
        }
    }

    /// Records the port's answer for `room` at `now`: whether it broadcast the `typing`.
    pub(crate) fn record(&mut self, room: RequestId, now: Instant, broadcast: bool) {
        let until = now + if broadcast { labchat_core::TYPING_INTERVAL } else { THROTTLED_TRUSTED_FOR };
        if let Some(entry) = self.quiet_until.iter_mut().find(|(r, _)| *r == room) {
            entry.1 = until;
        } else if self.quiet_until.len() < ROOMS_REMEMBERED {
            self.quiet_until.push((room, until));
        } else if let Some(soonest) = self.quiet_until.iter_mut().min_by_key(|(_, u)| *u) {
            *soonest = (room, until);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    const LIMITS: RateLimits = RateLimits { rate: 10.0, burst: 3.0, close_after: Duration::from_secs(1) };

    #[test]
    fn the_port_is_asked_once_per_interval_per_room() {
        let t0 = Instant::now();
        let mut g = TypingGate::new(LIMITS, t0);
        assert_eq!(g.check(rid(1), t0, LIMITS), TypingCheck::Ask);
        g.record(rid(1), t0, true);
        let ms = Duration::from_millis(1);
        assert_eq!(g.check(rid(1), t0 + 100 * ms, LIMITS), TypingCheck::Throttled);
        assert_eq!(g.check(rid(2), t0 + 100 * ms, LIMITS), TypingCheck::Ask, "another room");
        assert_eq!(g.check(rid(1), t0 + labchat_core::TYPING_INTERVAL, LIMITS), TypingCheck::Ask);
        // A "throttled" answer is trusted briefly only.
        g.record(rid(2), t0, false);
        assert_eq!(g.check(rid(2), t0 + 100 * ms, LIMITS), TypingCheck::Throttled);
        assert_eq!(g.check(rid(2), t0 + THROTTLED_TRUSTED_FOR, LIMITS), TypingCheck::Ask);
    }

    #[test]
    fn a_flood_is_refused_then_closed_while_a_typist_is_not() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut typist = TypingGate::new(LIMITS, t0);
        typist.record(rid(1), t0, true);
        // Ten a second for the whole interval: the bucket's rate.
        for i in 1..20 {
            assert_eq!(typist.check(rid(1), t0 + i * 100 * ms, LIMITS), TypingCheck::Throttled, "{i}");
        }
        let mut flood = TypingGate::new(LIMITS, t0);
        flood.record(rid(1), t0, true);
        let mut seen = Vec::new();
        for i in 0..1_500 {
            let c = flood.check(rid(1), t0 + i * ms, LIMITS);
            seen.push(c);
            if c == TypingCheck::Close {
                break;
            }
        }
        assert_eq!(seen[..3], [TypingCheck::Throttled; 3]);
        assert!(matches!(seen[3], TypingCheck::Refuse { .. }), "{:?}", seen[3]);
        assert_eq!(seen.last(), Some(&TypingCheck::Close));
    }

    #[test]
    fn the_rooms_remembered_are_bounded() {
        let t0 = Instant::now();
        let mut g = TypingGate::new(LIMITS, t0);
        for n in 0..100 {
            g.record(rid(n), t0 + Duration::from_millis(u64::from(n)), true);
        }
        assert_eq!(g.quiet_until.len(), ROOMS_REMEMBERED);
        assert_eq!(g.check(rid(99), t0 + Duration::from_millis(200), LIMITS), TypingCheck::Throttled);
        assert_eq!(g.check(rid(0), t0 + Duration::from_millis(200), LIMITS), TypingCheck::Ask, "forgotten");
    }
}
