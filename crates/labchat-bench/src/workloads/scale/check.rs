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
/// How long the checks wait for a slot with no check answered before the ones in flight are
/// given up on.
const SLOT_WAIT: Duration = Duration::from_secs(10);

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
    // Checks given up on: sent, and no check answered for SLOT_WAIT since (a member away, or a
    // check failed for good); their slots go to the next ones.
    let (mut sent, mut given_up) = (0, 0);
    for ((local, _, _), tx) in plan.iter().zip(senders) {
        if asked[*local] {
            continue;
        }
        let mut waited = Instant::now();
        let mut seen = run.checked.load(Ordering::Relaxed);
        while sent >= seen + given_up + CHECKS_AT_ONCE {
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = run.checked.load(Ordering::Relaxed);
            if now > seen {
                (seen, waited) = (now, Instant::now());
            } else if waited.elapsed() >= SLOT_WAIT {
                given_up = sent - seen;
            }
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
