//! The background task of work the use cases note and heal later (recounts after a failed count
//! write, follow-ups of posts whose outcome is unknown): started by the first note, it runs a
//! round every tick while work remains and ends when none is left (or the use cases are gone).
//! A note made while the task ends finds the flag set and no task, and the ending task takes it
//! up again, so noted work is never left without a task.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Work healed in rounds by one background task.
pub(super) trait Rounds: Send + Sync + Sized + 'static {
    /// Whether the task runs.
    fn running(&self) -> &AtomicBool;
    /// Whether no work is left; when none is, gives back the memory a burst of work grew.
    fn idle(&self) -> bool;
    /// One round; returns whether work remains.
    fn run_round(self: Arc<Self>) -> impl Future<Output = bool> + Send;
}

/// Whether a task's map of pending work is empty; an empty one gives its capacity back (a storm
/// may have noted thousands), for [`Rounds::idle`].
pub(super) fn emptied<K, V>(pending: &mut HashMap<K, V>) -> bool {
    if pending.is_empty() {
        *pending = HashMap::new();
    }
    pending.is_empty()
}

/// Starts the task unless it runs.
pub(super) fn start<T: Rounds>(this: &Arc<T>, tick: Duration) {
    if !this.running().swap(true, Ordering::AcqRel) {
        tokio::spawn(run(Arc::downgrade(this), tick));
    }
}

async fn run<T: Rounds>(this: Weak<T>, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(work) = this.upgrade() else { return };
        if Arc::clone(&work).run_round().await {
            continue;
        }
        work.running().store(false, Ordering::Release);
        if work.idle() || work.running().swap(true, Ordering::AcqRel) {
            return;
        }
    }
}
