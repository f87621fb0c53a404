//! The names of the metrics this crate records.

/// Gauge: 1 while the pub/sub link is connected and subscribed, else 0.
pub(crate) const CONNECTED: &str = "labchat_backplane_connected";
/// Counter: envelopes that could not be published to Redis.
pub(crate) const PUBLISH_ERRORS: &str = "labchat_backplane_publish_errors_total";
/// Counter: fills from the store that delivered at least one missing message.
pub(crate) const GAP_FILLS: &str = "labchat_backplane_gap_fills_total";
/// Counter: envelopes received from other nodes.
pub(crate) const RECEIVED: &str = "labchat_backplane_received_total";
/// Counter: payloads Redis delivered to the node's subscriber, by `channel` (`room`, `inbox`:
/// `labchat:inbox`, `audience`: an inbox audience channel), its own included, before any check.
pub(crate) const DELIVERIES: &str = "labchat_backplane_deliveries_total";
/// Counter: presence operations that failed (Redis unreachable or too slow).
pub(crate) const PRESENCE_ERRORS: &str = "labchat_presence_errors_total";
/// Gauge: envelopes waiting in the node's outbox to be published (after a failure).
pub(crate) const OUTBOX_ENTRIES: &str = "labchat_backplane_outbox_entries";
/// Gauge: payload bytes waiting in the node's outbox.
pub(crate) const OUTBOX_BYTES: &str = "labchat_backplane_outbox_bytes";
/// Counter: envelopes dropped from the outbox, by `bound` (`entries`, `bytes`, `age`: their rooms
/// are resynced; `ephemeral`: typing notices, never kept).
pub(crate) const OUTBOX_DROPPED: &str = "labchat_backplane_outbox_dropped_total";
/// Counter: envelopes published again because a node's subscriber was away.
pub(crate) const REPUBLISHED: &str = "labchat_backplane_republished_total";
/// Counter: resync notices received from other nodes (a subscriber back, rooms to re-read).
pub(crate) const RESYNCS: &str = "labchat_backplane_resyncs_total";
/// Counter: reorder buffers dropped past a bound, by `bound` (`room`: the room's own, `node`: the
/// node's, all rooms together); the room is then re-read from the store.
pub(crate) const REORDER_OVERFLOWS: &str = "labchat_backplane_reorder_overflows_total";
/// Counter: rooms started before Redis confirmed their subscription within the operation
/// timeout; each is filled from the store once the confirmation comes.
pub(crate) const LATE_SUBSCRIPTIONS: &str = "labchat_backplane_late_subscriptions_total";
/// Gauge: messages the node holds ahead of gaps, all rooms together.
pub(crate) const REORDER_HELD: &str = "labchat_backplane_reorder_held";
/// Counter: holes the store could not fill after three complete fills, moved past.
pub(crate) const HOLES_SKIPPED: &str = "labchat_backplane_holes_skipped_total";
/// Counter: envelopes of a version outside the node's window, by `version` (the number up to
/// 99, else `other`).
pub(crate) const UNKNOWN_VERSION: &str = "labchat_backplane_envelopes_unknown_version_total";
/// Counter: payloads from Redis refused before delivery, by `reason` (`unknown_version`,
/// `unsigned`, `bad_mac`, `malformed`).
pub(crate) const REJECTED: &str = "labchat_backplane_rejected_total";
