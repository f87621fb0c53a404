//! How far behind the generator itself runs: a task asks to wake every [`TICK`] and records how
//! much later than asked it woke (the time its one thread spent on other tasks, or waiting for a
//! core). A generator that falls behind reads its sockets late, so it answers the nodes' pings
//! late, and a node closes a connection silent for two ping intervals: this tells a generator
//! that fell behind from a node that did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the watcher asks to wake.
const TICK: Duration = Duration::from_millis(100);

/// A wake this late or later counts as a stall.
const STALL: Duration = Duration::from_secs(1);

/// The generator's lateness, before and from the start of traffic.
#[derive(Debug, Default)]
pub(crate) struct Lag {
    traffic: AtomicBool,
    max_before_ns: AtomicU64,
    max_from_ns: AtomicU64,
    stalls: AtomicU64,
}

impl Lag {
    /// Starts watching on the current runtime; the watcher stops when `self` is the last handle.
    pub(crate) fn watch() -> Arc<Self> {
        let lag = Arc::new(Self::default());
        let watched = Arc::downgrade(&lag);
        tokio::spawn(async move {
            loop {
                let asked = Instant::now() + TICK;
                tokio::time::sleep_until(asked.into()).await;
                let Some(lag) = watched.upgrade() else { return };
                lag.record(Instant::now().saturating_duration_since(asked));
            }
        });
        lag
    }

    /// Traffic started: later lateness counts apart.
    pub(crate) fn traffic_started(&self) {
        self.traffic.store(true, Ordering::Relaxed);
    }

    fn record(&self, late: Duration) {
        let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        let max = if self.traffic.load(Ordering::Relaxed) { &self.max_from_ns } else { &self.max_before_ns };
        max.fetch_max(ns, Ordering::Relaxed);
        if late >= STALL {
            self.stalls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The latest wake before traffic and from its start, in milliseconds, and the stalls.
    pub(crate) fn figures(&self) -> (f64, f64, u64) {
        let ms = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed)).as_secs_f64() * 1000.0;
        (ms(&self.max_before_ns), ms(&self.max_from_ns), self.stalls.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_by_phase_and_stalls_from_a_second() {
        let lag = Lag::default();
        lag.record(Duration::from_millis(3));
        lag.record(Duration::from_millis(1500));
        lag.traffic_started();
        lag.record(Duration::from_millis(40));
        assert_eq!(lag.figures(), (1500.0, 40.0, 1));
    }

    #[tokio::test]
    async fn a_thread_kept_busy_shows_as_a_late_wake() {
        let lag = Lag::watch();
        tokio::time::sleep(Duration::from_millis(150)).await;
        // The runtime's one thread busy for 400 ms without yielding: the watcher cannot wake.
        std::thread::sleep(Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (before, from, _) = lag.figures();
        assert!(before >= 250.0, "the watcher woke only {before} ms late after a 400 ms block");
        assert!(from.abs() < f64::EPSILON, "nothing counted from traffic before it started");
    }
}
