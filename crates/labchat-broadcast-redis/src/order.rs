//! The per-room reorder buffer: a pure state machine (no I/O, no clock) that takes a room's
//! events as they arrive, in any order and possibly twice or not at all, and says what to deliver
//! now, in seq order with no holes and no duplicates, and when the store must fill a gap.

use std::collections::{BTreeMap, VecDeque};

use labchat_domain::{Message, MessageId, Placement, RoomEvent, Seq};

/// How many recently delivered message ids a room remembers for checking receipts.
const RECENT: usize = 1024;

/// How many complete fills in a row may find the same hole before the room moves past it.
const HOLE_FILLS: u32 = 3;

/// The default of the most messages a room holds ahead of a gap.
pub const DEFAULT_MAX_AHEAD: usize = 1000;

/// The default of the most messages a node holds ahead of gaps, all rooms together.
pub const DEFAULT_MAX_AHEAD_PER_NODE: usize = 10_000;

/// What the caller must do after handing an event to [`RoomOrder`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fill {
    /// Nothing: no gap.
    No,
    /// A gap is open: fill it from the store if pub/sub has not within the gap wait.
    AfterWait,
    /// Fill from the store now (a held receipt names messages not delivered here).
    Now,
}

/// The result of one step: events to deliver, in this order, and whether a fill is needed.
#[derive(Debug, PartialEq)]
pub(crate) struct Step {
    /// Deliver these to every local sink of the room, in this order.
    pub(crate) deliver: Vec<RoomEvent>,
    /// Whether (and when) to read the store.
    pub(crate) fill: Fill,
}

/// Where a fill from the store starts: the messages strictly after `after` (or, with no anchor,
/// every message with a seq above `last_seq`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FillPlan {
    /// The last message delivered, when there is one.
    pub(crate) after: Option<MessageId>,
    /// The seq of the last message delivered (0: none).
    pub(crate) last_seq: u64,
    /// Identifies the fill: receipts held before it started are released when it completes.
    pub(crate) epoch: u64,
}

/// A receipt waiting for the messages it names.
#[derive(Debug)]
struct Held {
    event: RoomEvent,
    /// The fill epoch current when it was held: any fill started later satisfies it.
    epoch: u64,
}

/// One room's delivery order on this node.
#[derive(Debug, Default)]
pub(crate) struct RoomOrder {
    /// Whether the starting point (the store's latest seq) is known; until then events wait.
    ready: bool,
    last_seq: u64,
    last_id: Option<MessageId>,
    /// Messages ahead of `last_seq + 1`, by seq.
    ahead: BTreeMap<u64, Message>,
    /// Receipts waiting, in arrival order.
    held: VecDeque<Held>,
    recent: VecDeque<MessageId>,
    epoch: u64,
    /// The most messages held in `ahead`; past it they are dropped and the room is filled.
    max_ahead: usize,
    /// How many times `ahead` passed `max_ahead` (taken by [`RoomOrder::take_overflows`]).
    overflows: u64,
    /// The lowest seq past `last_seq` the current fill read from the store.
    confirmed: Option<u64>,
    /// Complete fills in a row that left a hole open.
    stuck: u32,
    /// Holes moved past (taken by [`RoomOrder::take_holes_skipped`]).
    holes_skipped: u64,
}

impl RoomOrder {
    /// A room whose starting point is not known yet: every event waits for [`RoomOrder::start`].
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_max_ahead(DEFAULT_MAX_AHEAD)
    }

    /// As [`RoomOrder::new`], holding at most `max_ahead` messages ahead of a gap: past it
    /// they are dropped and the step asks for a fill from the store at once, which delivers
    /// them in order.
    pub(crate) fn with_max_ahead(max_ahead: usize) -> Self {
        Self { max_ahead: max_ahead.max(1), ..Self::default() }
    }

    /// How many holes the room moved past since the last call.
    pub(crate) fn take_holes_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.holes_skipped)
    }

    /// How many times the buffer overflowed since the last call.
    pub(crate) fn take_overflows(&mut self) -> u64 {
        std::mem::take(&mut self.overflows)
    }

    /// How many messages the room holds ahead of a gap.
    pub(crate) fn held(&self) -> usize {
        self.ahead.len()
    }

    /// Drops every message held ahead of a gap (the node holds too many); the caller then fills
    /// the room from the store at once, which delivers them in order. Before the room's start
    /// nothing is dropped (the start delivers or drops what waits, and cannot tell a dropped
    /// message from one never sent): returns whether it dropped.
    pub(crate) fn drop_held(&mut self) -> bool {
        if !self.ready || self.ahead.is_empty() {
            return false;
        }
        self.ahead.clear();
        true
    }

    /// Whether [`RoomOrder::start`] was called.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// The seq of the last message delivered (0: none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the room is waiting for a fill: a hole before buffered messages, or held receipts.
    pub(crate) fn needs_fill(&self) -> bool {
        self.ready && (!self.ahead.is_empty() || !self.held.is_empty())
    }

    /// Sets the starting point: the room's latest message in the store when this node began
    /// listening to the room (`None`: the room was empty). Events that arrived before are then
    /// handled: messages up to it are dropped, receipts are released (they name stored messages,
    /// which the joining client reads from the history).
    pub(crate) fn start(&mut self, latest: Option<(Seq, MessageId)>) -> Step {
        self.ready = true;
        if let Some((seq, id)) = latest {
            self.last_seq = seq.get();
            self.last_id = Some(id);
            self.remember(id);
        }
        let mut deliver = Vec::new();
        self.drain(&mut deliver);
        deliver.extend(self.held.drain(..).map(|h| h.event));
        self.step(deliver)
    }

    /// Takes one event (published here or received from another node), as its
    /// [`RoomEvent::placement`] says.
    pub(crate) fn offer(&mut self, event: RoomEvent) -> Step {
        match event.placement() {
            Placement::Sequenced(seq) => self.offer_sequenced(seq, event),
            Placement::Follows { messages, up_to } => {
                if self.ready && self.held.is_empty() && self.knows(messages, up_to) {
                    return self.step(vec![event]);
                }
                self.held.push_back(Held { event, epoch: self.epoch });
                let mut step = self.step(Vec::new());
                if self.ready {
                    step.fill = Fill::Now;
                }
                step
            }
            // Typing, presence, and a message no store numbered: not ordered against messages,
            // never held for a gap and never filled from the store; delivered as they come, even
            // before the room's start.
            Placement::AsItComes => {
                if let RoomEvent::MessagePosted(m) = &event {
                    self.remember(m.id);
                }
                Step { deliver: vec![event], fill: Fill::No }
            }
        }
    }

    /// A stored message: buffered until every lower seq was delivered.
    fn offer_sequenced(&mut self, seq: Seq, event: RoomEvent) -> Step {
        let RoomEvent::MessagePosted(message) = event else {
            // Only a stored message has a seq (see `RoomEvent::placement`).
            return Step { deliver: vec![event], fill: Fill::No };
        };
        let seq = seq.get();
        if self.ready && seq <= self.last_seq {
            return self.step(Vec::new());
        }
        self.ahead.entry(seq).or_insert(message);
        let mut deliver = Vec::new();
        if self.ready {
            self.drain(&mut deliver);
            self.release(&mut deliver, None);
            if self.ahead.len() > self.max_ahead {
                self.ahead.clear();
                self.overflows += 1;
                return Step { deliver, fill: Fill::Now };
            }
        }
        self.step(deliver)
    }

    /// Starts a fill from the store; pass its pages to [`RoomOrder::filled`].
    pub(crate) fn plan_fill(&mut self) -> FillPlan {
        self.epoch += 1;
        self.confirmed = None;
        FillPlan { after: self.last_id, last_seq: self.last_seq, epoch: self.epoch }
    }

    /// Takes one page of a fill (messages in seq order, as the store returns them). `complete`
    /// says the page reached the store's latest message: receipts held before the fill started
    /// are then released, every message they name having been delivered or being older.
    pub(crate) fn filled(&mut self, page: Vec<Message>, plan: FillPlan, complete: bool) -> Step {
        for message in page {
            if let Some(seq) = message.seq.map(Seq::get)
                && seq > self.last_seq
            {
                self.confirmed = Some(self.confirmed.map_or(seq, |c| c.min(seq)));
                // A live copy that came first is kept (it is what the publisher sent).
                self.ahead.entry(seq).or_insert(message);
            }
        }
        let mut deliver = Vec::new();
        if self.ready {
            self.drain(&mut deliver);
            if complete {
                self.past_a_hole(&mut deliver);
            }
            self.release(&mut deliver, complete.then_some(plan.epoch));
        }
        self.step(deliver)
    }

    /// After a complete fill: a hole that [`HOLE_FILLS`] complete fills in a row found open is
    /// one the store cannot fill (a seq taken and never stored, or an envelope the store never
    /// held). The room moves on: messages held that the store did not confirm are dropped, and
    /// delivery resumes at the lowest seq the store confirmed past the hole.
    fn past_a_hole(&mut self, deliver: &mut Vec<RoomEvent>) {
        if self.ahead.is_empty() {
            self.stuck = 0;
            return;
        }
        self.stuck += 1;
        if self.stuck < HOLE_FILLS {
            return;
        }
        self.stuck = 0;
        self.holes_skipped += 1;
        match self.confirmed.filter(|c| *c > self.last_seq) {
            Some(first) => {
                self.ahead.retain(|seq, _| *seq >= first);
                self.last_seq = first - 1;
                self.drain(deliver);
            }
            None => self.ahead.clear(),
        }
    }

    /// Delivers buffered messages that follow the last one, without a hole.
    fn drain(&mut self, deliver: &mut Vec<RoomEvent>) {
        while let Some(entry) = self.ahead.first_entry() {
            let seq = *entry.key();
            if seq <= self.last_seq {
                entry.remove();
            } else if seq == self.last_seq + 1 {
                let message = entry.remove();
                self.last_seq = seq;
                self.last_id = Some(message.id);
                self.remember(message.id);
                deliver.push(RoomEvent::MessagePosted(message));
            } else {
                break;
            }
        }
    }

    /// Releases held receipts in order while the first one's messages are known (or, after a
    /// complete fill of epoch `filled`, it was held before that fill started).
    fn release(&mut self, deliver: &mut Vec<RoomEvent>, filled: Option<u64>) {
        while let Some(first) = self.held.front() {
            let satisfied = filled.is_some_and(|e| first.epoch < e) || self.knows_what_it_follows(&first.event);
            if !satisfied {
                break;
            }
            if let Some(h) = self.held.pop_front() {
                deliver.push(h.event);
            }
        }
    }

    /// Whether the messages a change follows were delivered here: all of them up to `up_to` (a
    /// seq this room was delivered to, or started past), or each one among the recent ids.
    fn knows(&self, ids: &[MessageId], up_to: Option<Seq>) -> bool {
        up_to.is_some_and(|s| s.get() <= self.last_seq) || ids.iter().all(|id| self.recent.contains(id))
    }

    /// [`RoomOrder::knows`] of what `event` follows ([`Placement::Follows`]); true for the others.
    fn knows_what_it_follows(&self, event: &RoomEvent) -> bool {
        match event.placement() {
            Placement::Follows { messages, up_to } => self.knows(messages, up_to),
            Placement::Sequenced(_) | Placement::AsItComes => true,
        }
    }

    fn remember(&mut self, id: MessageId) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    fn step(&self, deliver: Vec<RoomEvent>) -> Step {
        let fill = if !self.ready {
            Fill::No
        } else if !self.held.is_empty() {
            Fill::Now
        } else if !self.ahead.is_empty() {
            Fill::AfterWait
        } else {
            Fill::No
        };
        Step { deliver, fill }
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
