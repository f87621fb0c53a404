//! The per-connection rate limit: a token bucket, and the rule that closes a client that keeps
//! sending while refused. Pure: the caller gives the time.

use std::time::Duration;

use tokio::time::Instant;

/// What to do with one incoming frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Process it.
    Admit,
    /// Refuse it; the client may send again after this many milliseconds.
    Refuse {
        /// Milliseconds until the next frame would be admitted.
        retry_after_ms: u64,
    },
    /// The client kept sending while refused for too long: close the connection.
    Close,
}

/// A break this long without an early frame ends a streak of them.
const STREAK_BREAK: Duration = Duration::from_secs(1);

/// A token bucket of `burst` frames refilled at `rate` frames per second, and the closing rule.
///
/// A refused frame tells the client when to retry. A frame refused *before* that time is an
/// early frame: the client did not wait as told (or had it in flight). Only a streak of early
/// frames lasting `close_after`, with no break of [`STREAK_BREAK`], closes the connection. A
/// client that waits `retryAfterMs` after each refusal sends no early frame, so it is never
/// closed however long it sends at the permitted rate; a few frames in flight when the first
/// refusal came are a streak that ends.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    /// When the next frame will be admitted, as told with the latest refusal.
    retry_at: Option<Instant>,
    /// When the current streak of early frames began, and its latest frame.
    early_since: Option<Instant>,
    last_early: Option<Instant>,
}

/// A bucket's settings: `rate` frames per second, `burst` frames at once, and how long a streak
/// of early frames lasts before the connection is closed. The same for every connection, so kept
/// in the configuration rather than in each bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateLimits {
    /// Frames per second, sustained.
    pub(crate) rate: f64,
    /// Frames at once.
    pub(crate) burst: f64,
    /// How long a streak of early frames lasts before it closes the connection.
    pub(crate) close_after: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(limits: RateLimits, now: Instant) -> Self {
        Self { tokens: limits.burst, last: now, retry_at: None, early_since: None, last_early: None }
    }

    /// Gives back the token of a frame admitted but not to be counted (a throttled `typing`).
    pub(crate) fn refund(&mut self, limits: RateLimits) {
        self.tokens = (self.tokens + 1.0).min(limits.burst);
    }

    /// Decides about one frame arriving at `now`.
    pub(crate) fn admit(&mut self, now: Instant, limits: RateLimits) -> Decision {
        let RateLimits { rate, burst, close_after } = limits;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        // The epsilon absorbs rounding, so a client waiting exactly as told is admitted.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Decision::Admit;
        }
        if self.retry_at.is_some_and(|at| now < at) {
            if self.last_early.is_none_or(|t| now.saturating_duration_since(t) > STREAK_BREAK) {
                self.early_since = Some(now);
            }
            self.last_early = Some(now);
            if self.early_since.is_some_and(|s| now.saturating_duration_since(s) >= close_after) {
                return Decision::Close;
            }
        }
        let wait = (1.0 - self.tokens) / rate.max(f64::MIN_POSITIVE);
        self.retry_at = Some(now + Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX / 4));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let retry_after_ms = (wait * 1000.0).ceil().max(1.0) as u64;
        Decision::Refuse { retry_after_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A bucket with its settings, as a connection uses it.
    struct TestBucket(TokenBucket, RateLimits);

    impl TestBucket {
        fn new(rate: f64, burst: f64, close_after: Duration, now: Instant) -> Self {
            let limits = RateLimits { rate, burst, close_after };
            Self(TokenBucket::new(limits, now), limits)
        }

        fn admit(&mut self, now: Instant) -> Decision {
            self.0.admit(now, self.1)
        }

        fn refund(&mut self) {
            self.0.refund(self.1);
        }
    }

    fn bucket(rate: f64, burst: f64, now: Instant) -> TestBucket {
        TestBucket::new(rate, burst, Duration::from_secs(10), now)
    }

    #[test]
    fn a_full_bucket_admits_a_burst_then_refuses() {
        let t0 = Instant::now();
        let mut b = bucket(10.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.admit(t0), Decision::Admit);
        }
        assert_eq!(b.admit(t0), Decision::Refuse { retry_after_ms: 100 });
    }

    #[test]
    fn the_bucket_refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = bucket(10.0, 2.0, t0);
        assert_eq!(b.admit(t0), Decision::Admit);
        assert_eq!(b.admit(t0), Decision::Admit);
        assert!(matches!(b.admit(t0 + 50 * MS), Decision::Refuse { .. }));
        assert_eq!(b.admit(t0 + 100 * MS), Decision::Admit, "one token after 1/rate");
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.admit(later), Decision::Admit);
        assert_eq!(b.admit(later), Decision::Admit);
        assert!(matches!(b.admit(later), Decision::Refuse { .. }));
    }

    #[test]
    fn retry_after_is_the_time_until_the_next_token_rounded_up() {
        let t0 = Instant::now();
        let mut b = bucket(3.0, 1.0, t0);
        assert_eq!(b.admit(t0), Decision::Admit);
        assert_eq!(b.admit(t0), Decision::Refuse { retry_after_ms: 334 });
        assert_eq!(b.admit(t0 + 300 * MS), Decision::Refuse { retry_after_ms: 34 });
        // Never zero, even a hair before the token.
        let mut slow = bucket(0.001, 1.0, t0);
        assert_eq!(slow.admit(t0), Decision::Admit);
        assert!(matches!(slow.admit(t0), Decision::Refuse { retry_after_ms } if retry_after_ms >= 1));
    }

    /// A client that, after each refusal, waits the `retryAfterMs` it was given and sends
    /// again, as fast as the bucket allows, for `for_secs`; `in_flight` frames follow the first
    /// refusal before the client sees it. Returns the first `Close`, if any, and the refusals.
    fn polite_client(rate: f64, burst: f64, in_flight: u32, for_secs: u64) -> (Option<Duration>, u32) {
        let t0 = Instant::now();
        let mut b = TestBucket::new(rate, burst, Duration::from_secs(10), t0);
        let (mut now, mut refusals, mut first) = (t0, 0, true);
        while now < t0 + Duration::from_secs(for_secs) {
            match b.admit(now) {
                Decision::Admit => {}
                Decision::Close => return (Some(now - t0), refusals),
                Decision::Refuse { retry_after_ms } => {
                    refusals += 1;
                    if first {
                        first = false;
                        for _ in 0..in_flight {
                            if b.admit(now + MS) == Decision::Close {
                                return (Some(now - t0), refusals);
                            }
                        }
                    }
                    now += Duration::from_millis(retry_after_ms);
                }
            }
            now += Duration::from_micros(100);
        }
        (None, refusals)
    }

    #[test]
    fn a_client_that_waits_retry_after_is_never_closed() {
        for (rate, burst) in [(30.0, 60.0), (5.0, 2.0), (0.2, 5.0), (3.0, 1.0)] {
            let (closed, refusals) = polite_client(rate, burst, 0, 60);
            assert_eq!(closed, None, "rate {rate}");
            assert!(refusals > 5, "rate {rate}: only {refusals} refusals");
        }
    }

    #[test]
    fn frames_in_flight_at_the_first_refusal_are_allowed() {
        let (closed, _) = polite_client(30.0, 60.0, 20, 60);
        assert_eq!(closed, None);
    }

    #[test]
    fn a_client_that_keeps_sending_while_refused_is_closed_after_close_after() {
        let t0 = Instant::now();
        let mut b = bucket(30.0, 60.0, t0);
        let mut now = t0;
        let closed_at = loop {
            if b.admit(now) == Decision::Close {
                break now - t0;
            }
            now += 10 * MS;
            assert!(now - t0 < Duration::from_secs(30), "a flooder at 100 frames/s was never closed");
        };
        // The burst lasts 60/(100-30) s; then 10 s of early frames.
        assert!(closed_at >= Duration::from_secs(10), "{closed_at:?}");
        assert!(closed_at < Duration::from_secs(12), "{closed_at:?}");
    }

    #[test]
    fn refunded_frames_cost_nothing_and_never_fill_the_bucket_past_its_burst() {
        let t0 = Instant::now();
        let mut b = bucket(1.0, 2.0, t0);
        for _ in 0..1000 {
            assert_eq!(b.admit(t0), Decision::Admit);
            b.refund();
        }
        b.refund();
        b.refund();
        assert_eq!(b.admit(t0), Decision::Admit);
        assert_eq!(b.admit(t0), Decision::Admit);
        assert!(matches!(b.admit(t0), Decision::Refuse { .. }), "a refund never lifts the bucket past its burst");
    }

    #[test]
    fn a_break_of_more_than_a_second_ends_a_streak() {
        let t0 = Instant::now();
        let mut b = bucket(0.1, 1.0, t0);
        assert_eq!(b.admit(t0), Decision::Admit);
        let mut now = t0;
        // Bursts of early frames 0.9 s long, 1.1 s apart: a streak never lasts 10 s.
        for _ in 0..20 {
            for _ in 0..10 {
                assert_ne!(b.admit(now), Decision::Close);
                now += 100 * MS;
            }
            now += 1100 * MS;
        }
    }
}
