//! What a member saw: every `seq` it holds, and the trail of what happened to it after it first
//! lost its connection; and the two questions asked of it (is a `seq` missing, where does the
//! next page start).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// What a member saw, handed back when the run stops.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Highest `seq` in the room when it first joined (messages up to it predate the run).
    pub(crate) base: Option<u64>,
    /// The id of that message (`None` in an empty room).
    pub(crate) base_id: Option<Box<str>>,
    /// Every `seq` received (live or in a page), with its id.
    pub(crate) seqs: BTreeMap<u64, Box<str>>,
    pub(crate) duplicates: u64,
    /// Lost its connection at least once.
    pub(crate) lost: bool,
    /// Joined and caught up on a connection when the run stopped (a member still reconnecting
    /// then cannot hold what was posted while it was away).
    pub(crate) caught_up_at_end: bool,
    /// What happened to it since it first lost its connection: how each connection or attempt
    /// ended, and where it stood when the run stopped (the latest [`TRAIL`] kept), each with the
    /// seconds since that loss. Tells why a member is not back.
    pub(crate) trail: VecDeque<Event>,
}

/// One entry of [`Outcome::trail`].
#[derive(Clone, Debug)]
pub(crate) struct Event {
    /// Seconds since the member first lost its connection.
    pub(crate) at_s: u64,
    pub(crate) what: String,
}

/// How many events a member's trail keeps.
const TRAIL: usize = 12;

impl Outcome {
    /// Adds an event to the trail of a member that lost its connection.
    pub(super) fn note(&mut self, away_since: Option<Instant>, what: impl Into<String>) {
        let Some(since) = away_since else { return };
        if self.trail.len() == TRAIL {
            self.trail.pop_front();
        }
        self.trail.push_back(Event { at_s: since.elapsed().as_secs(), what: what.into() });
    }
}

/// Whether a `seq` past the base is missing below the highest one received.
pub(super) fn has_hole(out: &Outcome) -> bool {
    let from = out.base.unwrap_or(0) + 1;
    let held = out.seqs.range(from..);
    held.clone().next_back().is_some_and(|(last, _)| (last + 1).saturating_sub(from) > held.count() as u64)
}

/// The id of the highest `seq` received without a hole from the base.
pub(super) fn contiguous_id(out: &Outcome) -> Option<String> {
    let from = out.base.unwrap_or(0) + 1;
    (from..)
        .zip(out.seqs.range(from..))
        .take_while(|(expect, (seq, _))| *expect == **seq)
        .last()
        .map(|(_, (_, id))| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(base: u64, seqs: &[u64]) -> Outcome {
        let seqs = seqs.iter().map(|s| (*s, Box::from(format!("m{s}").as_str()))).collect();
        Outcome { base: Some(base), seqs, ..Outcome::default() }
    }

    #[test]
    fn a_hole_is_a_seq_missing_below_the_highest_held_past_the_base() {
        assert!(!has_hole(&out(3, &[])));
        assert!(!has_hole(&out(3, &[4, 5, 6])));
        assert!(has_hole(&out(3, &[5])), "4 is missing");
        assert!(has_hole(&out(3, &[4, 6])), "5 is missing");
        assert!(!has_hole(&out(3, &[1, 2, 4])), "seqs up to the base predate the run");
        assert_eq!(contiguous_id(&out(3, &[4, 5, 7])).as_deref(), Some("m5"));
    }
}
