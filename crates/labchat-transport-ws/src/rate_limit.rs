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

/// A token bucket of `burst` frames refilled at `rate` frames per second, plus how long the
/// client has been over it without a break.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    close_after: Duration,
    limited_since: Option<Instant>,
    last_limited: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(rate: f64, burst: f64, close_after: Duration, now: Instant) -> Self {
        Self { tokens: burst, last: now, rate, burst, close_after, limited_since: None, last_limited: None }
    }

    /// Decides about one frame arriving at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> Decision {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Decision::Admit;
        }
        // A second without being limited ends a streak of hammering.
        if self.last_limited.is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1)) {
            self.limited_since = Some(now);
        }
        self.last_limited = Some(now);
        let hammering_for = self.limited_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        if hammering_for >= self.close_after {
            return Decision::Close;
        }
        let wait = (1.0 - self.tokens) / self.rate.max(f64::MIN_POSITIVE);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let retry_after_ms = (wait * 1000.0).ceil().max(1.0) as u64;
        Decision::Refuse { retry_after_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn bucket(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket::new(rate, burst, Duration::from_secs(10), now)
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
}
