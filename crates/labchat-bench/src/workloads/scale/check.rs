//! The end-of-run check against the store: the last `seq` of each room, read by one member of
//! it (`history {limit: 1}`), against which every member's seqs are checked for gaps.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Run;
use super::member::Command;

/// The checks in flight at once, per load generator: all at once, they would queue in the store
/// past its timeout, and most rooms would go unchecked.
const CHECKS_AT_ONCE: usize = 32;
/// Most time for the checks.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// Asks one member of each of the `local_rooms` rooms (`plan` and `senders`: the members, in
/// order) for its room's last `seq`, [`CHECKS_AT_ONCE`] at a time, and waits for the answers
/// (at most [`CHECK_TIMEOUT`]); they land in `run.store_last`.
pub(super) async fn against_store(
    run: &Run,
    plan: &[(usize, usize, usize)],
    senders: &[mpsc::UnboundedSender<Command>],
    local_rooms: usize,
) {
    let until = Instant::now() + CHECK_TIMEOUT;
    let mut asked = vec![false; local_rooms];
    let mut sent = 0;
    for ((local, _, _), tx) in plan.iter().zip(senders) {
        if asked[*local] {
            continue;
        }
        while sent >= run.checked.load(Ordering::Relaxed) + CHECKS_AT_ONCE && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if tx.send(Command::Check).is_ok() {
            asked[*local] = true;
            sent += 1;
        }
    }
    while run.checked.load(Ordering::Relaxed) < local_rooms && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
