//! A connection's deadlines (the next ping, the next access re-check, the token's expiry) behind
//! one timer: pure bookkeeping, given the time.
//!
//! Each timer a connection holds costs memory for as long as it is open (a tokio `Interval` is a
//! heap-allocated timer entry), and most connections are idle, so the connection loop sleeps
//! until the earliest of these deadlines and asks [`Deadlines::fire`] which ones came.

use std::time::Duration;

use tokio::time::Instant;

/// What came due at a [`Deadlines::fire`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Due {
    /// The token expired: the connection closes.
    pub(crate) expired: bool,
    /// Time to ping (and to check the peer's liveness and the write deadline).
    pub(crate) ping: bool,
    /// Time to re-check access to the joined rooms.
    pub(crate) recheck: bool,
}

/// The next ping, re-check and expiry of one connection.
#[derive(Debug)]
pub(crate) struct Deadlines {
    next_ping: Instant,
    /// `None`: no periodic re-check.
    next_recheck: Option<Instant>,
    expiry: Instant,
}

/// How often a connection pings and re-checks access (a zero re-check interval: never). Read from
/// the configuration at each use rather than kept in every connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Periods {
    /// The ping interval.
    pub(crate) ping: Duration,
    /// The access re-check interval.
    pub(crate) recheck: Duration,
}

impl Deadlines {
    /// The first ping and re-check one interval after `now`; a zero `recheck_every` turns the
    /// re-check off.
    pub(crate) fn new(now: Instant, periods: Periods, expiry: Instant) -> Self {
        Self {
            next_ping: now + periods.ping,
            next_recheck: (!periods.recheck.is_zero()).then(|| now + periods.recheck),
            expiry,
        }
    }

    /// When the loop must wake next.
    pub(crate) fn next(&self) -> Instant {
        let next = self.next_ping.min(self.expiry);
        self.next_recheck.map_or(next, |r| next.min(r))
    }

    /// A refreshed token moved the expiry.
    pub(crate) fn set_expiry(&mut self, expiry: Instant) {
        self.expiry = expiry;
    }

    /// What is due at `now`; each periodic deadline that came moves on by its interval, counted
    /// from `now` (a late wake-up does not fire twice).
    pub(crate) fn fire(&mut self, now: Instant, periods: Periods) -> Due {
        let mut due = Due { expired: now >= self.expiry, ..Due::default() };
        if now >= self.next_ping {
            due.ping = true;
            self.next_ping = now + periods.ping;
        }
        if let Some(next) = self.next_recheck
            && now >= next
        {
            due.recheck = true;
            self.next_recheck = Some(now + periods.recheck);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn p(ping: u32, recheck: u32) -> Periods {
        Periods { ping: ping * S, recheck: recheck * S }
    }

    #[test]
    fn each_deadline_fires_when_it_comes_and_moves_on() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, p(2, 5), t0 + 100 * S);
        assert_eq!(d.next(), t0 + 2 * S);
        assert_eq!(d.fire(t0 + S, p(2, 5)), Due::default(), "nothing before its time");
        assert_eq!(d.fire(t0 + 2 * S, p(2, 5)), Due { ping: true, ..Due::default() });
        assert_eq!(d.next(), t0 + 4 * S);
        assert_eq!(d.fire(t0 + 4 * S, p(2, 5)), Due { ping: true, ..Due::default() });
        assert_eq!(d.next(), t0 + 5 * S);
        assert_eq!(d.fire(t0 + 5 * S, p(2, 5)), Due { recheck: true, ..Due::default() });
        assert_eq!(d.next(), t0 + 6 * S);
    }

    #[test]
    fn a_late_wake_up_fires_each_deadline_once() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, p(2, 5), t0 + 100 * S);
        assert_eq!(d.fire(t0 + 11 * S, p(2, 5)), Due { ping: true, recheck: true, expired: false });
        assert_eq!(d.next(), t0 + 13 * S);
        assert_eq!(d.fire(t0 + 12 * S, p(2, 5)), Due::default());
    }

    #[test]
    fn expiry_comes_first_when_it_is_earliest_and_follows_a_refresh() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, p(20, 60), t0 + 3 * S);
        assert_eq!(d.next(), t0 + 3 * S);
        d.set_expiry(t0 + 30 * S);
        assert_eq!(d.next(), t0 + 20 * S);
        assert!(!d.fire(t0 + 20 * S, p(20, 60)).expired);
        assert!(d.fire(t0 + 30 * S, p(20, 60)).expired);
    }

    #[test]
    fn a_zero_recheck_interval_never_rechecks() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, p(2, 0), t0 + 100 * S);
        assert_eq!(d.next(), t0 + 2 * S);
        assert!(!d.fire(t0 + 50 * S, p(2, 0)).recheck);
    }
}
