//! The names of the metrics this crate records.

/// Gauge: 1 while the pub/sub link is connected and subscribed, else 0.
pub(crate) const CONNECTED: &str = "labchat_backplane_connected";
/// Counter: envelopes that could not be published to Redis.
pub(crate) const PUBLISH_ERRORS: &str = "labchat_backplane_publish_errors_total";
/// Counter: fills from the store that delivered at least one missing message.
pub(crate) const GAP_FILLS: &str = "labchat_backplane_gap_fills_total";
/// Counter: envelopes received from other nodes.
pub(crate) const RECEIVED: &str = "labchat_backplane_received_total";
/// Counter: presence operations that failed (Redis unreachable or too slow).
pub(crate) const PRESENCE_ERRORS: &str = "labchat_presence_errors_total";
