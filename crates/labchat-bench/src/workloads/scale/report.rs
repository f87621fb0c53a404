//! What one `scale` load-generator process reports, and how it is totted up from the run's
//! tallies and the clients' outcomes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::member::Outcome;
use super::{Run, ScaleOptions};
use crate::procfs::CpuUse;
use crate::stats::{self, Latency};

/// What one load-generator process measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScaleReport {
    pub workload: &'static str,
    pub shard: usize,
    pub connections: usize,
    pub opened: usize,
    pub open_failures: u64,
    pub open_elapsed_s: f64,
    pub open_per_s: f64,
    pub connect_join: Latency,
    pub server_rss_kib: Option<u64>,
    pub idle_cpu: Option<CpuUse>,
    pub fanout_messages: usize,
    /// Latest delivery of each fan-out message, over the messages.
    pub fanout_last_delivery: Latency,
    pub fanout_missing: u64,
    pub steady: Latency,
    pub posted: u64,
    pub unsent_while_away: u64,
    pub lost: usize,
    pub back: usize,
    pub back_after_s: Option<f64>,
    pub peak_rejoins_per_s: u64,
    /// Rejoins completed (back and caught up) in each second after the kill: element `i` counts
    /// those of second `i` (so `scripts/scale.sh` tells when half, 90%, 99% and all of them were back).
    pub rejoins_by_second: Vec<u64>,
    pub storm: Latency,
    /// Seconds between the end of traffic and the check against the store (`--settle`).
    pub settle_s: f64,
    /// The rooms this generator's members are in (the large room by the generator that holds
    /// it), and those whose last `seq` the store told at the end (only their members are
    /// checked for gaps).
    pub rooms: usize,
    pub rooms_checked: usize,
    pub gaps: u64,
    /// Of `gaps`, the seqs another member of the same room holds: stored and delivered to
    /// someone, so missed by this member (the others were delivered to no member: most likely
    /// inserts that timed out and were written late, never published).
    pub gaps_held_by_another_member: u64,
    /// Of `gaps_held_by_another_member`, those a member that never lost its connection holds
    /// (live, or by a page a later live message asked for). A seq only members that came back
    /// hold reached them in their catch-up: most likely stored late and announced to nobody.
    pub gaps_held_by_a_member_that_stayed: u64,
    /// Of `gaps`, those of members that lost their connection and came back.
    pub gaps_of_members_that_came_back: u64,
    /// Members not joined and caught up when the run stopped (lost and not back yet, or never
    /// opened): what they lack is not counted in `gaps`, since a client that is away cannot
    /// hold what was posted meanwhile.
    pub not_caught_up_at_end: usize,
    /// Of the members that lost their connection and were not back when the run stopped, how
    /// many ended each way: the last thing that happened to them before the stop, then where
    /// they stood at the stop (numbers written `#`).
    pub not_back_why: BTreeMap<String, usize>,
    /// The whole trail of the first few of them (seconds since the loss: what happened).
    pub not_back_sample: Vec<Vec<String>>,
    /// The first few missing seqs, each with the message's id as another member holds it (its
    /// first bytes are the time the node took the post), to look up in the nodes' logs and store.
    pub gap_sample: Vec<String>,
    pub duplicates: u64,
    pub server_errors: u64,
    /// Error frames received, by code.
    pub server_errors_by_code: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub load1: Option<f64>,
    /// How late this generator's own runtime woke at worst, before traffic and from its start,
    /// in milliseconds: a generator this far behind answered its pings this late (the nodes
    /// close a connection silent for two ping intervals).
    pub loop_lag_max_ms_before_traffic: f64,
    pub loop_lag_max_ms_from_traffic: f64,
    /// Wakes a second or more late.
    pub loop_stalls: u64,
}

pub(super) fn finish(
    run: &Run,
    plan: &[(usize, usize, usize)],
    outcomes: &[Outcome],
    opts: &ScaleOptions,
    r: &mut ScaleReport,
) {
    let t = run.tallies();
    r.connect_join = Latency::of(&t.open);
    r.steady = Latency::of(&t.steady);
    r.storm = Latency::of(&t.storm);
    if let Ok(mut h) = stats::histogram() {
        for (_, latest) in t.fanout.values() {
            h.saturating_record((*latest).max(1));
        }
        r.fanout_last_delivery = Latency::of(&h);
    }
    let receivers = opts.big_members.saturating_sub(1) as u64;
    r.fanout_messages = t.fanout.len();
    r.fanout_missing = t.fanout.values().map(|(n, _)| receivers.saturating_sub(*n)).sum();
    r.settle_s = opts.settle.as_secs_f64();
    r.posted = run.posted.load(Ordering::Relaxed);
    r.unsent_while_away = run.unsent.load(Ordering::Relaxed);
    r.lost = run.lost.load(Ordering::Relaxed);
    r.back = run.back.load(Ordering::Relaxed);
    r.back_after_s = t.kill_at.map(|_| t.back_after.as_secs_f64());
    r.peak_rejoins_per_s = t.rejoins.values().copied().max().unwrap_or(0);
    let seconds = t.rejoins.keys().max().map_or(0, |last| last + 1);
    r.rejoins_by_second = (0..seconds).map(|s| t.rejoins.get(&s).copied().unwrap_or(0)).collect();
    r.server_errors = run.errors.load(Ordering::Relaxed);
    r.server_errors_by_code.clone_from(&t.error_codes);
    r.first_error.clone_from(&t.first_error);
    r.rooms_checked = run.store_last.iter().filter(|s| s.load(Ordering::Relaxed) != u64::MAX).count();
    // Per room: every seq some member holds, and those some member that stayed connected holds.
    let mut held_in_room: HashMap<usize, [BTreeSet<u64>; 2]> = HashMap::new();
    // Per room: the message id of each seq some member holds (for the sample of missing seqs).
    let mut held_ids: HashMap<usize, HashMap<u64, &str>> = HashMap::new();
    for ((local, _, _), out) in plan.iter().zip(outcomes) {
        let ids = held_ids.entry(*local).or_default();
        for (seq, id) in &out.seqs {
            ids.entry(*seq).or_insert(id);
        }
        let [any, stayed] = held_in_room.entry(*local).or_default();
        any.extend(out.seqs.keys().copied());
        if !out.lost {
            stayed.extend(out.seqs.keys().copied());
        }
    }
    for ((local, global, _), out) in plan.iter().zip(outcomes) {
        r.duplicates += out.duplicates;
        if !out.caught_up_at_end {
            r.not_caught_up_at_end += 1;
            if out.lost {
                *r.not_back_why.entry(why_not_back(out)).or_default() += 1;
                if r.not_back_sample.len() < NOT_BACK_SAMPLE {
                    r.not_back_sample.push(out.trail.iter().map(|e| format!("{} s: {}", e.at_s, e.what)).collect());
                }
            }
            continue;
        }
        let Some(last) = run.store_last.get(*local).map(|s| s.load(Ordering::Relaxed)).filter(|l| *l != u64::MAX)
        else {
            continue;
        };
        let Some([any, stayed]) = held_in_room.get(local) else { continue };
        let base = out.base.unwrap_or(last);
        let (missing, held_by_another) = gaps(base, last, out, any);
        r.gaps += missing;
        if out.lost {
            r.gaps_of_members_that_came_back += missing;
        }
        r.gaps_held_by_another_member += held_by_another;
        r.gaps_held_by_a_member_that_stayed += gaps(base, last, out, stayed).1;
        if missing > 0 && r.gap_sample.len() < GAP_SAMPLE {
            for seq in (base + 1..=last).filter(|s| !out.seqs.contains_key(s)).take(GAP_SAMPLE - r.gap_sample.len()) {
                let id = held_ids.get(local).and_then(|ids| ids.get(&seq)).map_or("held by no member", |id| id);
                let who = if out.lost { "came back" } else { "stayed" };
                r.gap_sample
                    .push(format!("room {local} seq {seq} (message {id}): missing from member {global} ({who})"));
            }
        }
    }
    r.load1 = crate::workloads::load1();
    (r.loop_lag_max_ms_before_traffic, r.loop_lag_max_ms_from_traffic, r.loop_stalls) = run.lag.figures();
}

/// How many missing seqs the report names.
const GAP_SAMPLE: usize = 10;
/// How many trails of members not back the report gives.
const NOT_BACK_SAMPLE: usize = 5;

/// A member's last two events (the last one before the stop, and the stop), numbers written `#`
/// so that members alike count together.
fn why_not_back(out: &Outcome) -> String {
    let last: Vec<&str> = out.trail.iter().rev().take(2).map(|e| e.what.as_str()).collect();
    let text = last.into_iter().rev().collect::<Vec<_>>().join(" / then ");
    let mut key = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            key.push(c);
        } else if !key.ends_with('#') {
            key.push('#');
        }
    }
    key
}

/// The seqs in `base + 1..=last` that `out` lacks, and how many of those another member of
/// its room holds (`room`: every seq any member holds). A member that joined at or past the
/// store's last seq lacks none.
fn gaps(base: u64, last: u64, out: &Outcome, room: &BTreeSet<u64>) -> (u64, u64) {
    if last <= base {
        return (0, 0);
    }
    let expected = base + 1..=last;
    let held = out.seqs.range(expected.clone()).count() as u64;
    let held_by_another = room.range(expected).filter(|seq| !out.seqs.contains_key(seq)).count() as u64;
    ((last - base).saturating_sub(held), held_by_another)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::scale::member::Event;

    fn holding(seqs: &[u64]) -> Outcome {
        Outcome { seqs: seqs.iter().map(|s| (*s, Box::from("m"))).collect(), ..Outcome::default() }
    }

    #[test]
    fn members_not_back_count_together_by_their_last_two_events_whatever_the_numbers() {
        let trail = |events: &[(u64, &str)]| Outcome {
            trail: events.iter().map(|(at_s, what)| Event { at_s: *at_s, what: (*what).into() }).collect(),
            ..Outcome::default()
        };
        let a = trail(&[
            (0, "node 5: connection ended"),
            (3, "node 2: handshake timed out"),
            (9, "stopped on node 1: x 12 s"),
        ]);
        let b = trail(&[(4, "node 3: handshake timed out"), (20, "stopped on node 4: x 7 s")]);
        assert_eq!(why_not_back(&a), "node #: handshake timed out / then stopped on node #: x # s");
        assert_eq!(why_not_back(&a), why_not_back(&b));
        assert_eq!(why_not_back(&trail(&[(1, "stopped on node 0: y")])), "stopped on node #: y");
    }

    #[test]
    fn a_member_that_joined_at_the_last_seq_lacks_none_whatever_the_others_hold() {
        let room = BTreeSet::from([4, 5, 6]);
        assert_eq!(gaps(6, 6, &holding(&[]), &room), (0, 0));
        assert_eq!(gaps(7, 6, &holding(&[]), &room), (0, 0));
    }

    #[test]
    fn a_missing_seq_counts_as_held_by_another_only_when_another_member_has_it() {
        let room = BTreeSet::from([1, 2, 3, 5]);
        assert_eq!(gaps(0, 5, &holding(&[1, 3]), &room), (3, 2));
    }
}
