//! Filling a room from the store: after a gap outlived the gap wait, for a receipt naming
//! messages not delivered here, after a reconnect, and for quiet rooms every check interval.
//! Concurrent fills of one room collapse into one (run again once if asked meanwhile).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use labchat_core::{Clock, StoreError, SystemClock};
use labchat_domain::{
    CATCH_UP_MARGIN_MILLIS, Cursor, HistoryLimit, HistoryQuery, Message, RequestId, RoomEvent, Seq, Timestamp,
};
use tokio::sync::watch;

use crate::metrics_names::{GAP_FILLS, HOLES_SKIPPED};
use crate::order::{FillPlan, Step};
use crate::rooms::{Room, Shared};

/// Messages read per store page while filling.
const PAGE: usize = 500;

/// Most rooms filled at once by [`Shared::fill_all`] and the quiet-room check.
const FILLS_AT_ONCE: usize = 8;

/// Rooms each quiet-room check also fills in turn, whatever they heard (the sweep).
const SWEPT_PER_CHECK: usize = 25;

/// The longest a gap timer waits after fills that failed in a row.
const MAX_FILL_BACKOFF: Duration = Duration::from_secs(5);

/// The gap timer's wait after `failed` fills in a row failed: the gap wait, doubled with each,
/// at most [`MAX_FILL_BACKOFF`] (never less than the gap wait).
fn backoff(gap_wait: Duration, failed: u32) -> Duration {
    let doubled = gap_wait.saturating_mul(1u32.checked_shl(failed.min(16)).unwrap_or(u32::MAX));
    doubled.min(MAX_FILL_BACKOFF).max(gap_wait)
}

impl Shared {
    /// Arms the room's gap timer unless it is armed: after the gap wait, fill if the gap is
    /// still open. After fills that failed in a row the wait doubles with each, up to
    /// [`MAX_FILL_BACKOFF`].
    pub(crate) fn arm_gap_timer(self: &Arc<Self>, room: &Arc<Room>) {
        let wait = {
            let mut state = room.lock();
            if state.timer {
                return;
            }
            state.timer = true;
            backoff(self.gap_wait, state.failed_fills)
        };
        let (shared, room) = (Arc::clone(self), Arc::clone(room));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let needed = {
                let mut state = room.lock();
                state.timer = false;
                state.order.needs_fill()
            };
            if needed {
                shared.fill(&room).await;
            }
        });
    }

    /// Fills the room from the store up to its latest message; collapses with a running fill.
    pub(crate) async fn fill(self: &Arc<Self>, room: &Arc<Room>) {
        {
            let mut state = room.lock();
            if !state.order.is_ready() {
                return;
            }
            if state.filling {
                state.again = true;
                return;
            }
            state.filling = true;
        }
        loop {
            let failed = match self.fill_once(room).await {
                Ok(0) => false,
                Ok(n) => {
                    metrics::counter!(GAP_FILLS, "node" => self.node_id.clone()).increment(1);
                    tracing::debug!(node = %self.node_id, request_id = %room.id, messages = n, "filled a gap from the store");
                    false
                }
                Err(e) => {
                    tracing::warn!(node = %self.node_id, error = %e, request_id = %room.id, "filling a room from the store failed");
                    true
                }
            };
            let mut state = room.lock();
            state.failed_fills = if failed { state.failed_fills.saturating_add(1) } else { 0 };
            if state.again {
                state.again = false;
            } else {
                state.filling = false;
                // A gap left open (the store failed, or lags) is retried after the gap wait.
                let open = state.order.needs_fill();
                drop(state);
                if open {
                    self.arm_gap_timer(room);
                }
                return;
            }
        }
    }

    /// One fill; returns how many messages the store supplied that were delivered.
    async fn fill_once(self: &Arc<Self>, room: &Arc<Room>) -> Result<usize, StoreError> {
        let plan = room.lock().order.plan_fill();
        let limit = HistoryLimit::new(PAGE).unwrap_or(HistoryLimit::DEFAULT);
        let mut delivered = 0;
        let mut after = plan.after;
        while let Some(anchor) = after {
            let query = HistoryQuery { cursor: Cursor::After(anchor), limit };
            let Some(page) = self.store.history(room.id, query).await? else {
                // The anchor is not a message of the room (cannot happen with a sound store):
                // fall back to reading backwards from the latest.
                break;
            };
            let complete = !page.has_more;
            after = page.messages.last().map(|m| m.id);
            delivered += self.apply(room, page.messages, plan, complete);
            if complete {
                return Ok(delivered);
            }
        }
        let messages = self.read_back(room, plan, limit).await?;
        Ok(delivered + self.apply(room, messages, plan, true))
    }

    /// Every message after the plan's last seq, read backwards from the room's latest.
    async fn read_back(&self, room: &Room, plan: FillPlan, limit: HistoryLimit) -> Result<Vec<Message>, StoreError> {
        let mut pages: Vec<Vec<Message>> = Vec::new();
        let mut cursor = Cursor::Latest;
        loop {
            let Some(page) = self.store.history(room.id, HistoryQuery { cursor, limit }).await? else { break };
            let first = page.messages.first().map(|m| (m.id, m.seq.map_or(0, Seq::get)));
            let has_more = page.has_more;
            pages.push(page.messages);
            match first {
                Some((id, seq)) if has_more && seq > plan.last_seq + 1 => cursor = Cursor::Before(id),
                _ => break,
            }
        }
        Ok(pages.into_iter().rev().flatten().filter(|m| m.seq.is_some_and(|s| s.get() > plan.last_seq)).collect())
    }

    /// Hands a page to the room's order and delivers what it lets out; returns how many
    /// messages were delivered.
    fn apply(self: &Arc<Self>, room: &Arc<Room>, page: Vec<Message>, plan: FillPlan, complete: bool) -> usize {
        let mut state = room.lock();
        let Step { deliver, .. } = state.order.filled(page, plan, complete);
        let skipped = state.order.take_holes_skipped();
        if skipped > 0 {
            metrics::counter!(HOLES_SKIPPED, "node" => self.node_id.clone()).increment(skipped);
            tracing::warn!(node = %self.node_id, request_id = %room.id, "a hole the store cannot fill: moved past it");
        }
        let n = deliver.iter().filter(|e| matches!(e, RoomEvent::MessagePosted(_))).count();
        state.deliver(deliver);
        // Counted, never dropped here: what a fill holds waits for a hole only the store can
        // close, and the fill itself is what re-reads it.
        self.count_held(&mut state);
        n
    }

    /// Fills every room (after a reconnect).
    pub(crate) async fn fill_all(self: &Arc<Self>) {
        let rooms = self.all_rooms();
        self.fill_each(rooms).await;
    }

    /// Fills these rooms, a few at a time so that a node with many rooms does not flood the
    /// store.
    pub(crate) async fn fill_each(self: &Arc<Self>, rooms: Vec<Arc<Room>>) {
        futures_util::stream::iter(rooms)
            .for_each_concurrent(FILLS_AT_ONCE, |room| async move { self.fill(&room).await })
            .await;
    }

    /// The quiet-room check: fills the rooms where no message was heard for `quiet` and the
    /// store holds a message created since `since` that this node has not delivered. Returns
    /// whether the store answered (when not, no room is filled by this check, and the next one
    /// looks back as far).
    ///
    /// A room whose last fill failed is filled again at each check until one succeeds: the
    /// look-back moves on with every check the store answered, so a message found behind but not
    /// read might otherwise wait for the sweep.
    ///
    /// A room that keeps hearing messages needs no check: a lost message is revealed by the seq
    /// of the next one. Only the last message before a room goes quiet can be lost unnoticed, and
    /// the room is checked once it has been quiet for `quiet`, then every `quiet` while it stays
    /// so. The store is asked about every quiet room with one call (`latest_since`, which reads
    /// them in as few reads as it can) and only the rooms it shows behind are read, so a node
    /// with many quiet rooms costs the store a few reads per check, not one per room.
    async fn fill_quiet(self: &Arc<Self>, quiet: Duration, since: Timestamp) -> bool {
        let now = Instant::now();
        let rooms: Vec<Arc<Room>> = self
            .all_rooms()
            .into_iter()
            .filter(|r| r.lock().heard.is_none_or(|t| now.duration_since(t) >= quiet))
            .collect();
        if rooms.is_empty() {
            return true;
        }
        let ids: Vec<RequestId> = rooms.iter().map(|r| r.id).collect();
        let latest = match self.store.latest_since(&ids, since).await {
            Ok(latest) => latest.into_iter().collect::<HashMap<_, _>>(),
            Err(e) => {
                tracing::warn!(node = %self.node_id, error = %e, rooms = ids.len(), "the quiet-room check could not read the rooms' latest seqs");
                return false;
            }
        };
        let behind = rooms
            .into_iter()
            .filter(|r| {
                let state = r.lock();
                // A room whose last fill failed is filled again whatever the store's answer: the
                // message that made it behind may have left the look-back since, and no later
                // message may come to show the hole.
                state.order.needs_fill()
                    || state.failed_fills > 0
                    || latest.get(&r.id).is_some_and(|s| s.get() > state.order.last_seq())
            })
            .collect();
        self.fill_each(behind).await;
        true
    }

    /// Every `interval`, checks the quiet rooms: repairs a silent loss even when no new event
    /// comes.
    ///
    /// Each check looks at the messages created since the start of the last check the store
    /// answered in full, less `interval` (a room quiet now may have been heard then) and less
    /// [`CATCH_UP_MARGIN_MILLIS`] (clock skew between nodes, and the store's usual delay between
    /// a message's stamp and its write). Rooms started since read their latest from the store
    /// when they started. A message written later than that after its stamp (an insert the
    /// store ran long after its caller gave up), and lost by pub/sub, is found by the sweep:
    /// each check also fills the next [`SWEPT_PER_CHECK`] rooms in turn, so every room is read
    /// once per `rooms / SWEPT_PER_CHECK` checks at a cost to the store that does not grow with
    /// the rooms.
    pub(crate) async fn check_quiet_rooms(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let look_back = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).saturating_add(CATCH_UP_MARGIN_MILLIS);
        let mut checked = SystemClock.now();
        let mut swept = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let started = SystemClock.now();
            let since = Timestamp::from_unix_millis(checked.unix_millis().saturating_sub(look_back));
            if self.fill_quiet(interval, since).await {
                checked = started;
            }
            swept = self.sweep(swept).await;
        }
    }

    /// Fills the next [`SWEPT_PER_CHECK`] rooms after `after` in id order (from the first once
    /// past the last); returns the last one filled.
    async fn sweep(self: &Arc<Self>, after: Option<RequestId>) -> Option<RequestId> {
        let mut rooms = self.all_rooms();
        rooms.sort_unstable_by_key(|r| r.id);
        let start = after.map_or(0, |a| rooms.partition_point(|r| r.id <= a));
        let start = if start >= rooms.len() { 0 } else { start };
        let next: Vec<Arc<Room>> = rooms.into_iter().skip(start).take(SWEPT_PER_CHECK).collect();
        let last = next.last().map(|r| r.id);
        self.fill_each(next).await;
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_timer_backs_off_after_failed_fills_up_to_its_bound() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = [0, 1, 2, 3, 4, 5, 40, u32::MAX].map(|n| backoff(ms(200), n)).to_vec();
        assert_eq!(waits, vec![ms(200), ms(400), ms(800), ms(1_600), ms(3_200), ms(5_000), ms(5_000), ms(5_000)]);
        assert_eq!(backoff(Duration::from_secs(10), 3), Duration::from_secs(10), "never less than the gap wait");
    }
}
