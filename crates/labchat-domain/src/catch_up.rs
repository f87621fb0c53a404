//! Catching up a room after a reconnect ([`CatchUp`]): the changes a client missed on the
//! messages it already holds (receipts, edits, deletions), replayed as room events.

use std::collections::BTreeMap;

use crate::{Message, MessageId, Receipt, ReceiptKind, RequestId, RoomEvent, Seq, Timestamp, UserId};

/// How long before the client's last message was stored a catch-up starts, in milliseconds: the
/// clock difference between the nodes of a deployment (a change stamped by a node whose clock
/// runs behind may carry an earlier time than the message it names), plus the longest a change
/// takes from its time stamp to its publish (its store writes, each bounded by the store's
/// timeout, 5 s by default). A change made before the client left was seen live or is in a page
/// it read; one published after it left was stamped at most this long before `after` was
/// stored. Replaying a change twice is harmless (a receipt, an edit or a deletion applied again
/// changes nothing), missing one is not, so the margin is generous.
pub const CATCH_UP_MARGIN_MILLIS: i64 = 30_000;

/// What a client that joins a room again with its last message (`joinRoom {after}`) missed on the
/// messages it already holds: every message up to that one (by [`Seq`]) that changed since that
/// one was stored, less [`CATCH_UP_MARGIN_MILLIS`].
///
/// The messages after `after` come whole in the history page; this covers the older ones. It may
/// replay a change the client already saw (one made while it was still connected), never miss
/// one published after it left: the client held `after`, so it left after `after` was stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CatchUp {
    /// The highest seq the client holds: `after`'s.
    pub up_to: Seq,
    /// Changes at or after this instant are replayed.
    pub since: Timestamp,
}

impl CatchUp {
    /// The catch-up of a client whose last message is `after`, at `now`; `None` for a message no
    /// store numbered (there is nothing before it to catch up). It starts
    /// [`CATCH_UP_MARGIN_MILLIS`] before `after` was stored, or before `now` if that is earlier (a
    /// node whose clock ran ahead stored `after`).
    pub fn after(after: &Message, now: Timestamp) -> Option<Self> {
        let stored = after.created_at.min(now);
        let since = Timestamp::from_unix_millis(stored.unix_millis().saturating_sub(CATCH_UP_MARGIN_MILLIS));
        after.seq.map(|up_to| Self { up_to, since })
    }

    /// Whether `message` has something to replay: it is at or before [`CatchUp::up_to`] and was
    /// marked, edited or deleted at or after [`CatchUp::since`]. The selection every store's
    /// catch-up read agrees with.
    pub fn includes(&self, message: &Message) -> bool {
        message.seq.is_some_and(|s| s <= self.up_to) && changes_of(message, self.since).next().is_some()
    }

    /// The room events that bring a client holding `messages` up to date: for each change at or
    /// after [`CatchUp::since`], oldest first, a [`RoomEvent::MessageEdited`] or
    /// [`RoomEvent::MessageDeleted`] with the message as it is now (a message edited and then
    /// deleted gives only its deletion), and the receipts as [`RoomEvent::Delivered`] and
    /// [`RoomEvent::Read`], one event per user, kind and instant (so the receipts marked
    /// together are replayed together), listing the messages in seq order. At one instant,
    /// deliveries come before reads, as when they were marked. Messages outside the catch-up
    /// ([`CatchUp::includes`]) give nothing.
    pub fn events(&self, messages: &[Message]) -> Vec<RoomEvent> {
        let mut ordered: Vec<&Message> = messages.iter().filter(|m| self.includes(m)).collect();
        ordered.sort_by_key(|m| m.seq);
        let mut changes: Vec<(Timestamp, u8, RoomEvent)> = Vec::new();
        let mut receipts: BTreeMap<(Timestamp, u8, &UserId), (RequestId, Vec<MessageId>)> = BTreeMap::new();
        for m in ordered {
            for change in changes_of(m, self.since) {
                match change {
                    Change::Edited(at) => changes.push((at, 0, RoomEvent::MessageEdited(m.clone()))),
                    Change::Deleted(at) => changes.push((at, 0, RoomEvent::MessageDeleted(m.clone()))),
                    Change::Receipt(kind, receipt) => {
                        let key = (receipt.at, rank(kind), &receipt.user);
                        receipts.entry(key).or_insert_with(|| (m.request_id, Vec::new())).1.push(m.id);
                    }
                }
            }
        }
        for ((at, rank, user), (request_id, messages)) in receipts {
            let user_id = user.clone();
            let event = if rank == RANK_DELIVERED {
                RoomEvent::Delivered { request_id, user_id, messages, at }
            } else {
                RoomEvent::Read { request_id, user_id, messages, at }
            };
            changes.push((at, rank, event));
        }
        // Stable: an instant's edits and deletions in seq order, then its receipts.
        changes.sort_by_key(|(at, rank, _)| (*at, *rank));
        changes.into_iter().map(|(_, _, e)| e).collect()
    }
}

const RANK_DELIVERED: u8 = 1;

fn rank(kind: ReceiptKind) -> u8 {
    match kind {
        ReceiptKind::Delivered => RANK_DELIVERED,
        ReceiptKind::Read => RANK_DELIVERED + 1,
    }
}

/// One change of a message.
enum Change<'a> {
    Edited(Timestamp),
    Deleted(Timestamp),
    Receipt(ReceiptKind, &'a Receipt),
}

/// The changes of `m` at or after `since`: its deletion (which replaces any edit: the tombstone
/// has no text to show) or its last edit, and its receipts.
fn changes_of(m: &Message, since: Timestamp) -> impl Iterator<Item = Change<'_>> {
    let body = match (m.deletion(), m.edited_at()) {
        (Some(d), _) => Some(Change::Deleted(d.at)).filter(|_| d.at >= since),
        (None, Some(at)) => Some(Change::Edited(at)).filter(|_| at >= since),
        (None, None) => None,
    };
    let delivered = m.delivered_to().iter().map(|r| (ReceiptKind::Delivered, r));
    let read = m.read_by().iter().map(|r| (ReceiptKind::Read, r));
    let receipts = delivered.chain(read).filter(move |(_, r)| r.at >= since).map(|(k, r)| Change::Receipt(k, r));
    body.into_iter().chain(receipts)
}

#[cfg(test)]
#[path = "catch_up_tests.rs"]
mod tests;
