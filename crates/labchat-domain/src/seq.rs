//! A message's place in its room ([`Seq`]): 1, 2, 3, … with no holes.

use std::num::NonZeroU64;

/// A sequence number was zero: the first message of a room is number 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a message's sequence number starts at 1, got {got}")]
pub struct SeqError {
    /// The refused value.
    pub got: u64,
}

/// A message's position in its room: 1 for the room's first message, then 2, 3, … with no holes
/// and no repeats. The store assigns it when it stores the message, so one order per room holds
/// for every reader (history pages, live events, every node).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Seq(NonZeroU64);

impl Seq {
    /// The first message of a room.
    pub const FIRST: Self = Self(NonZeroU64::MIN);

    /// The highest sequence number (as a bound: past every message a room holds).
    pub const MAX: Self = Self(NonZeroU64::MAX);

    /// Validates a sequence number (1 or more).
    pub fn new(n: u64) -> Result<Self, SeqError> {
        NonZeroU64::new(n).map(Self).ok_or(SeqError { got: n })
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The sequence number of the message after this one, or `None` past `u64::MAX`.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_start_at_one_and_count_up() {
        assert_eq!(Seq::new(0), Err(SeqError { got: 0 }));
        assert_eq!(Seq::new(1), Ok(Seq::FIRST));
        assert_eq!(Seq::FIRST.next().map(Seq::get), Some(2));
        assert_eq!(Seq::new(u64::MAX).unwrap().next(), None);
        assert!(Seq::new(2).unwrap() < Seq::new(10).unwrap());
        assert_eq!(Seq::new(42).unwrap().to_string(), "42");
    }
}
