//! The catch-up of a join with `after` ([`CaughtUp`]): what changed, while the client was away,
//! on the messages it holds, read from the store under the room's order, and which of them a
//! replay may leave out.

use labchat_domain::{CatchUp, Message, RequestId, RoomEvent, Seq};

use super::Chat;

/// What a client that joins a room with its last message (`after`) missed on the messages it
/// holds: receipts, edits and deletions since ([`labchat_domain::CatchUp`]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CaughtUp {
    /// The catch-up's bounds; `None` without `after`, or when they could not be read.
    pub catch_up: Option<CatchUp>,
    /// The messages up to `after` that changed since, in seq order, with their receipts: all of
    /// them, or the highest seqs when [`CaughtUp::stale_below`] says some were left out.
    pub changed: Vec<Message>,
    /// The held messages below this seq may have changes that [`CaughtUp::changed`] lacks (more
    /// of them changed than a history page holds, the store's bounds, or the read failed: then
    /// every held message); `None` when it lacks nothing.
    pub stale_below: Option<Seq>,
}

impl CaughtUp {
    /// The events that replay the changes of `changed[from..]` (the highest seqs), oldest first.
    pub fn events(&self, from: usize) -> Vec<RoomEvent> {
        match (&self.catch_up, self.changed.get(from..)) {
            (Some(c), Some(tail)) => c.events(tail),
            _ => Vec::new(),
        }
    }

    /// [`CaughtUp::stale_below`] once the replay holds only `changed[from..]`: the changes of the
    /// messages left out make every held message up to the first one kept possibly stale.
    pub fn stale_below_keeping(&self, from: usize) -> Option<Seq> {
        if from == 0 || self.changed.is_empty() {
            return self.stale_below;
        }
        let kept_from = match self.changed.get(from) {
            Some(m) => m.seq,
            None => self.catch_up.and_then(|c| c.up_to.next()),
        };
        self.stale_below.max(kept_from).or(Some(Seq::MAX))
    }
}

impl Chat {
    /// What a client joining with `after` (`last_held`, read by the join) missed on the messages
    /// up to it (see [`CatchUp`]), at most a history page's worth of changed messages, and
    /// whether it was read in full. Never fails the join: when the read fails, the catch-up is
    /// empty and says every held message may be stale (and is not complete).
    pub(super) async fn caught_up(&self, request: RequestId, last_held: Option<&Message>) -> (CaughtUp, bool) {
        let Some(catch_up) = last_held.and_then(|m| CatchUp::after(m, self.clock.now())) else {
            return (CaughtUp::default(), true);
        };
        match self.store.changed(request, catch_up, self.history_limit).await {
            Ok(page) => {
                // Left out by the store: the changes of the messages below the first it gave (all
                // of them, when it gave none).
                let stale_below = page.has_more.then(|| {
                    let first = page.messages.first().and_then(|m| m.seq);
                    first.or(catch_up.up_to.next()).unwrap_or(Seq::MAX)
                });
                (CaughtUp { catch_up: Some(catch_up), changed: page.messages, stale_below }, true)
            }
            Err(e) => {
                tracing::warn!(error = %e, request_id = %request, "reading a join's catch-up failed; the client is told its held messages may be stale");
                (CaughtUp { catch_up: None, changed: Vec::new(), stale_below: Some(Seq::MAX) }, false)
            }
        }
    }
}
