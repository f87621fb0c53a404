//! The drain: how a node leaves without any client noticing more than a reconnect.
//!
//! A drain is asked for with [`Lifecycle::drain`] (the binary does on SIGTERM; the operations
//! listener on `POST /drain`). From then on `/readyz` answers 503, so load balancers stop sending
//! new connections; the node keeps serving for [`WsConfig::drain_delay`], then refuses new
//! websocket upgrades (HTTP 503) and closes its connections with 1012 (service restart), spread
//! evenly over [`WsConfig::drain_window`], oldest first; each connection writes the frames it
//! had queued before its close frame. Then the server stops.
//!
//! [`WsConfig::drain_delay`]: crate::WsConfig::drain_delay
//! [`WsConfig::drain_window`]: crate::WsConfig::drain_window

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::close;

/// Where a server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Ready: `/readyz` answers 200 while the store answers.
    Serving,
    /// A drain was asked for: `/readyz` answers 503, everything else is served as before.
    Draining,
    /// The drain delay is over: new websocket upgrades get HTTP 503, open connections are being
    /// closed with 1012.
    Closing,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Serving,
            1 => Self::Draining,
            _ => Self::Closing,
        }
    }
}

/// A handle on a server's life: ask for a drain, see its phase. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    phase: AtomicU8,
    /// Cancelled when a drain is asked for.
    requested: CancellationToken,
    /// The open websocket connections, by id (so oldest first), each with its own token.
    connections: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Lifecycle {
    /// Asks for a drain. Returns `true` if this call started it, `false` if one was already
    /// under way (the phase does not go back).
    pub fn drain(&self) -> bool {
        let started = self.0.phase.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok();
        self.0.requested.cancel();
        started
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.0.phase.load(Ordering::Acquire))
    }

    /// Whether a drain was asked for.
    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Serving
    }

    /// The close code and reason a connection is closed with when the server stops: 1012
    /// (service restart, reconnect elsewhere) once a drain was asked for, else 1001 (going away).
    pub(crate) fn close_frame(&self) -> (u16, &'static str) {
        if self.is_draining() {
            (close::SERVICE_RESTART, "server restarting: reconnect")
        } else {
            (close::GOING_AWAY, "server shutting down")
        }
    }

    /// Registers connection `id`: its token is a child of `parent` (the server's shutdown), and
    /// the drain cancels it in its turn. Unregistered when the returned guard drops.
    pub(crate) fn register(&self, id: u64, parent: &CancellationToken) -> (CancellationToken, Registration) {
        let token = parent.child_token();
        self.connections().insert(id, token.clone());
        (token, Registration { lifecycle: self.clone(), id })
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        // The map is consistent after any panic of a holder (single inserts and removals).
        self.0.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a drain to be asked for, then runs it: the delay, then the closes spread over
    /// the window. Returns when the last connection of the drain was told to close.
    pub(crate) async fn run_drain(&self, delay: Duration, window: Duration) {
        self.0.requested.cancelled().await;
        tracing::info!(
            delay_ms = millis(delay),
            window_ms = millis(window),
            open_connections = self.connections().len(),
            "draining: /readyz answers 503; serving on until the drain delay is over"
        );
        tokio::time::sleep(delay).await;
        self.0.phase.store(2, Ordering::Release);
        let tokens: Vec<CancellationToken> = self.connections().values().cloned().collect();
        tracing::info!(
            connections = tokens.len(),
            window_ms = millis(window),
            "draining: refusing new connections, closing the open ones with 1012"
        );
        let start = Instant::now();
        for (i, at) in close_offsets(tokens.len(), window).enumerate() {
            tokio::time::sleep_until(start + at).await;
            tokens[i].cancel();
        }
    }
}

/// When the `i`-th of `n` connections is closed, after the drain delay: evenly over `window`,
/// the first at once and the last one `window / n` before its end.
fn close_offsets(n: usize, window: Duration) -> impl Iterator<Item = Duration> {
    #[allow(clippy::cast_precision_loss)]
    (0..n).map(move |i| window.mul_f64(i as f64 / n as f64))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A connection's place in the drain's list, until dropped.
pub(crate) struct Registration {
    lifecycle: Lifecycle,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.lifecycle.connections().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_spread_evenly_over_the_window() {
        let at: Vec<_> = close_offsets(4, Duration::from_secs(8)).collect();
        assert_eq!(at, [0, 2, 4, 6].map(Duration::from_secs));
        assert!(close_offsets(1000, Duration::ZERO).all(|d| d.is_zero()), "window 0: all at once");
        assert_eq!(close_offsets(0, Duration::from_secs(1)).count(), 0);
    }

    #[test]
    fn a_drain_starts_once_and_switches_the_close_code() {
        let life = Lifecycle::default();
        assert_eq!((life.phase(), life.close_frame().0), (Phase::Serving, 1001));
        assert!(life.drain());
        assert!(!life.drain(), "a second request does not start another drain");
        assert_eq!((life.phase(), life.close_frame().0), (Phase::Draining, 1012));
    }

    #[tokio::test]
    async fn the_drain_waits_its_delay_then_closes_oldest_first_over_the_window() {
        let life = Lifecycle::default();
        let parent = CancellationToken::new();
        let regs: Vec<_> = (0..4).map(|id| life.register(id, &parent)).collect();
        let gone = life.register(9, &parent);
        drop(gone);
        let drain = tokio::spawn({
            let life = life.clone();
            async move { life.run_drain(Duration::from_millis(500), Duration::from_millis(800)).await }
        });
        let t0 = Instant::now();
        life.drain();
        let mut closed_at = Vec::new();
        for (token, _) in &regs {
            token.cancelled().await;
            closed_at.push(t0.elapsed().as_millis());
        }
        // Due at 500, 700, 900 and 1100 ms; timers may fire late, never early.
        for (at, due) in closed_at.iter().zip([500, 700, 900, 1100]) {
            assert!((due..due + 150).contains(at), "{closed_at:?}");
        }
        assert_eq!(life.phase(), Phase::Closing);
        drain.await.unwrap();
        assert!(!parent.is_cancelled());
        drop(regs);
        assert!(life.connections().is_empty());
    }
}
