//! The publisher's outbox: a pure, bounded queue (no I/O, the caller passes the time) of the
//! envelopes a node has not managed to publish yet, and a short record of those it published,
//! kept to be published again when a node announces that its subscriber was away.
//!
//! - `pending`: waiting to be published, in the order they were handed over. An envelope whose
//!   publish failed goes back to the front, so it is published again, in order, as soon as the
//!   connection is back.
//! - `sent`: published within the last `max_age`, replayed (again in order) when a node says its
//!   subscriber was away for some time: what was published meanwhile may have missed it.
//! - `resync`: the rooms of envelopes dropped past a bound; once the connection is back one
//!   resync notice names them, and every node re-reads them from the store. The notice is then
//!   kept in `sent` like any envelope, so a node whose subscriber was away when it was published
//!   hears it in the replay (a notice for every room is not kept: a replay that needs one makes
//!   a new one).
//!
//! Each queue holds at most `max_entries` envelopes and `max_bytes` payload bytes; an envelope
//! older than `max_age` is dropped. What is dropped from `pending` has its room resynced; what
//! is dropped from `sent` by a bound (not by age) makes a replay that needed it resync every room.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use labchat_domain::RequestId;

/// The bounds of the outbox (each applies to `pending` and to `sent` alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxBounds {
    /// The most envelopes held (default 10,000).
    pub max_entries: usize,
    /// The most payload bytes held (default 16 MiB).
    pub max_bytes: usize,
    /// The oldest an envelope may be and still be published again (default 30 s).
    pub max_age: Duration,
}

impl Default for OutboxBounds {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 16 * 1024 * 1024, max_age: Duration::from_secs(30) }
    }
}

/// How an envelope is treated when it cannot be published at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Published again after a failure, and replayed (room events, inbox notices, resync notices
    /// naming rooms).
    Always,
    /// Published again after a failure, never replayed (a node's announcement that it is back, a
    /// resync notice for every room).
    UntilSent,
    /// Dropped on failure and never replayed (typing: stale at once).
    Never,
}

/// One envelope to publish.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The channel.
    pub(crate) channel: String,
    /// The encoded payload.
    pub(crate) payload: Vec<u8>,
    /// The room it concerns (resynced if it is dropped), if any.
    pub(crate) room: Option<RequestId>,
    /// What happens to it when it cannot be published at once.
    pub(crate) keep: Keep,
    /// When it was handed over.
    pub(crate) at: Instant,
}

/// Why envelopes were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Past `max_entries`.
    Entries,
    /// Past `max_bytes`.
    Bytes,
    /// Older than `max_age`.
    Age,
    /// A typing notice that could not be published at once.
    Ephemeral,
}

impl Dropped {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Entries => "entries",
            Self::Bytes => "bytes",
            Self::Age => "age",
            Self::Ephemeral => "ephemeral",
        }
    }
}

/// A queue with its byte count.
#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Queue {
    fn push_back(&mut self, e: Entry) {
        self.bytes += e.payload.len();
        self.entries.push_back(e);
    }

    fn push_front(&mut self, e: Entry) {
        self.bytes += e.payload.len();
        self.entries.push_front(e);
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.bytes -= e.payload.len();
        Some(e)
    }

    /// Pops the oldest entry while a bound is passed; the reason with it.
    fn pop_over(&mut self, bounds: &OutboxBounds, now: Instant) -> Option<(Entry, Dropped)> {
        let first = self.entries.front()?;
        let why = if self.entries.len() > bounds.max_entries {
            Dropped::Entries
        } else if self.bytes > bounds.max_bytes {
            Dropped::Bytes
        } else if now.saturating_duration_since(first.at) > bounds.max_age {
            Dropped::Age
        } else {
            return None;
        };
        self.pop_front().map(|e| (e, why))
    }
}

/// The outbox; see the module's documentation.
#[derive(Debug)]
pub(crate) struct Outbox {
    bounds: OutboxBounds,
    pending: Queue,
    sent: Queue,
    resync: BTreeSet<RequestId>,
    resync_all: bool,
    /// The newest `at` of an entry dropped from `sent` by a bound other than age.
    sent_cut: Option<Instant>,
}

impl Outbox {
    pub(crate) fn new(bounds: OutboxBounds) -> Self {
        Self {
            bounds,
            pending: Queue::default(),
            sent: Queue::default(),
            resync: BTreeSet::new(),
            resync_all: false,
            sent_cut: None,
        }
    }

    /// Envelopes and payload bytes waiting to be published.
    pub(crate) fn pending(&self) -> (usize, usize) {
        (self.pending.entries.len(), self.pending.bytes)
    }

    /// Whether anything waits: envelopes or a resync notice.
    pub(crate) fn has_work(&self) -> bool {
        !self.pending.entries.is_empty() || !self.resync.is_empty() || self.resync_all
    }

    /// Queues an envelope behind the waiting ones; returns what the bounds dropped.
    pub(crate) fn push(&mut self, entry: Entry, now: Instant) -> Vec<Dropped> {
        self.pending.push_back(entry);
        self.enforce(now)
    }

    /// Applies the bounds now (call before publishing); returns what they dropped.
    pub(crate) fn enforce(&mut self, now: Instant) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        while let Some((e, why)) = self.pending.pop_over(&self.bounds, now) {
            if e.keep != Keep::Never
                && let Some(room) = e.room
            {
                self.resync.insert(room);
            }
            dropped.push(if e.keep == Keep::Never { Dropped::Ephemeral } else { why });
        }
        while let Some((e, why)) = self.sent.pop_over(&self.bounds, now) {
            if why != Dropped::Age {
                self.sent_cut = Some(self.sent_cut.map_or(e.at, |t| t.max(e.at)));
            }
        }
        dropped
    }

    /// Takes up to `max` envelopes from the front, to publish them.
    pub(crate) fn take(&mut self, max: usize) -> Vec<Entry> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.pending.pop_front() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
        batch
    }

    /// The batch was published: keep what may be replayed.
    pub(crate) fn published(&mut self, batch: Vec<Entry>, now: Instant) {
        for e in batch {
            if e.keep == Keep::Always {
                self.sent.push_back(e);
            }
        }
        self.enforce(now);
    }

    /// The batch could not be published: back to the front, in order (typing is dropped);
    /// returns how many were dropped.
    pub(crate) fn failed(&mut self, batch: Vec<Entry>) -> usize {
        let before = batch.len();
        let mut kept = 0;
        for e in batch.into_iter().rev().filter(|e| e.keep != Keep::Never) {
            self.pending.push_front(e);
            kept += 1;
        }
        before - kept
    }

    /// A node's subscriber was away for `window`: what was published within it goes back to the
    /// front of the queue, in order; a replay that lacks entries dropped by a bound resyncs
    /// every room.
    pub(crate) fn replay(&mut self, window: Duration, now: Instant) -> usize {
        let since = now.checked_sub(window);
        let within = |at: Instant| since.is_none_or(|s| at >= s);
        if self.sent_cut.is_some_and(within) {
            self.resync_all = true;
        }
        let mut again = Vec::new();
        while let Some(e) = self.sent.entries.back() {
            if !within(e.at) {
                break;
            }
            if let Some(e) = self.sent.entries.pop_back() {
                self.sent.bytes -= e.payload.len();
                again.push(e);
            }
        }
        let n = again.len();
        for e in again {
            self.pending.push_front(e);
        }
        n
    }

    /// Takes the rooms to resync (`None` in the list: every room).
    pub(crate) fn take_resync(&mut self) -> (bool, Vec<RequestId>) {
        let all = std::mem::take(&mut self.resync_all);
        (all, std::mem::take(&mut self.resync).into_iter().collect())
    }

    /// Puts back rooms whose resync notice could not be published.
    pub(crate) fn resync_failed(&mut self, all: bool, rooms: Vec<RequestId>) {
        self.resync_all |= all;
        self.resync.extend(rooms);
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
