//! The transport's limits and timings ([`WsConfig`]), each with its documented default.

use std::time::Duration;

use crate::protocol::DecodeLimits;

/// Limits and timings of the websocket transport. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Message text and receipt list limits (defaults 4000 characters, 500 ids).
    pub decode: DecodeLimits,
    /// Largest accepted frame or message, in bytes; larger ones close the connection with 1009
    /// (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Most rooms one connection may have joined at once (default 100).
    pub max_rooms_per_connection: usize,
    /// Frames per second a connection may send, sustained (default 30).
    pub rate_per_second: f64,
    /// Frames a connection may send in a burst (default 60).
    pub rate_burst: f64,
    /// `typing` frames per second a connection may send, sustained, once the typing is
    /// throttled (default 50): those are answered without a broadcast and are not charged to
    /// `rate_per_second`, but to this much larger bucket, so a person typing never reaches it
    /// and a flood does (refused with `RATE_LIMITED`, then closed as below).
    pub typing_rate_per_second: f64,
    /// Throttled `typing` frames a connection may send in a burst (default 100).
    pub typing_burst: f64,
    /// A connection that keeps sending frames before the `retryAfterMs` it was given, with no
    /// break of a second, for this long is closed with 1008 (default 10 s). One that waits
    /// `retryAfterMs` is never closed.
    pub rate_close_after: Duration,
    /// How often the server pings; a connection silent for two intervals, or that accepts no
    /// bytes for two intervals while frames wait for it, is closed (default 20 s).
    pub ping_interval: Duration,
    /// Most frames waiting to be written to one connection (default 1024).
    pub outbound_max_frames: usize,
    /// Most bytes waiting to be written to one connection (default 4 MiB). A connection over
    /// either bound is closed with 1013.
    pub outbound_max_bytes: usize,
    /// Largest reply frame the server builds, in bytes (default 1 MiB): a `roomHistory` page
    /// that would be larger is cut and says `hasMore: true`. Used through
    /// [`WsConfig::reply_budget`], which keeps it within the outbound queue.
    pub max_reply_bytes: usize,
    /// Most open websocket connections; more get HTTP 503 (default 20000).
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish (default 10 s).
    pub shutdown_grace: Duration,
    /// A drain (SIGTERM, or `POST /drain` on the operations listener) answers `/readyz` with 503
    /// at once and keeps serving for this long, so load balancers take the node out before its
    /// clients are closed (default 5 s).
    pub drain_delay: Duration,
    /// Then the drain closes its clients with 1012, spread evenly over this long (default 10 s);
    /// zero closes them all at once.
    pub drain_window: Duration,
    /// tungstenite's read buffer per connection, in bytes (default 256), and the most read from
    /// the socket at once. Allocated for every connection up front and zero-filled before each
    /// read, so small: most connections are idle, and most client frames (a join, receipts,
    /// typing, a short message) fit in it; a larger frame grows it as needed and takes one read
    /// per 256 bytes.
    pub read_buffer_bytes: usize,
    /// The whole request head (request line and headers) of each HTTP request must arrive
    /// within this time, counted from when the server starts waiting for it; else the socket is
    /// closed (default 10 s). Bounds silent sockets, slow ("slowloris") senders and idle
    /// keep-alive connections.
    pub handshake_timeout: Duration,
    /// Most accepted connections not (yet) upgraded to a websocket, per listener; sockets
    /// accepted beyond it get a `503` and are closed at once (default 1024).
    pub max_pending_connections: usize,
    /// When the server closes a connection, how long it waits at each step: for the frames
    /// already queued to be written, for its close frame to be written, then for the client's
    /// close frame (frames the client had in flight are read and discarded meanwhile, so they
    /// do not turn into a TCP reset that would lose the close). Default 1 s.
    pub close_grace: Duration,
    /// How often a connection re-checks that its user may still access each room it joined
    /// (default 60 s); also how long the use cases trust a request found in the store. A user
    /// who lost access is removed from the room within two intervals (three while the store's
    /// lookups fail: a kept request then allows for one interval more). Zero turns the periodic
    /// re-check off (refused frames still end a subscription).
    pub access_recheck_interval: Duration,
    /// How long after sending a sender may edit a message (default 15 min; zero: never). The
    /// server applies it to the use cases (`Chat::with_edit_window`).
    pub edit_window: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            decode: DecodeLimits::default(),
            max_frame_bytes: 64 * 1024,
            max_rooms_per_connection: 100,
            rate_per_second: 30.0,
            rate_burst: 60.0,
            typing_rate_per_second: 50.0,
            typing_burst: 100.0,
            rate_close_after: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            outbound_max_frames: 1024,
            outbound_max_bytes: 4 * 1024 * 1024,
            max_reply_bytes: 1024 * 1024,
            max_connections: 20_000,
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::from_secs(5),
            drain_window: Duration::from_secs(10),
            read_buffer_bytes: 256,
            handshake_timeout: Duration::from_secs(10),
            max_pending_connections: 1024,
            close_grace: Duration::from_secs(1),
            access_recheck_interval: labchat_core::DEFAULT_ACCESS_TTL,
            edit_window: labchat_core::DEFAULT_EDIT_WINDOW,
        }
    }
}

impl WsConfig {
    /// The rate limit's settings, shared by every connection's bucket.
    pub(crate) fn rate_limits(&self) -> crate::rate_limit::RateLimits {
        crate::rate_limit::RateLimits {
            rate: self.rate_per_second,
            burst: self.rate_burst,
            close_after: self.rate_close_after,
        }
    }

    /// The settings of the bucket of throttled `typing` frames (see
    /// [`crate::typing_gate::TypingGate`]).
    pub(crate) fn typing_limits(&self) -> crate::rate_limit::RateLimits {
        crate::rate_limit::RateLimits {
            rate: self.typing_rate_per_second,
            burst: self.typing_burst,
            close_after: self.rate_close_after,
        }
    }

    /// The byte budget of one reply frame: [`WsConfig::max_reply_bytes`], but at most half of
    /// [`WsConfig::outbound_max_bytes`], so a reply always fits the outbound queue with room to
    /// spare for the room's live events, whatever the two settings are.
    pub fn reply_budget(&self) -> usize {
        self.max_reply_bytes.min(self.outbound_max_bytes / 2)
    }

    /// The most frames one reply may queue at once (a join's catch-up replay, its `roomHistory`
    /// and its `ack`): half of [`WsConfig::outbound_max_frames`], for the same reason as
    /// [`WsConfig::reply_budget`]; at least 2.
    pub fn reply_frames(&self) -> usize {
        (self.outbound_max_frames / 2).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::WsConfig;

    #[test]
    fn a_reply_never_takes_more_than_half_the_outbound_queue_in_bytes_or_frames() {
        let default = WsConfig::default();
        assert_eq!(default.reply_budget(), 1024 * 1024);
        assert!(default.reply_budget() < default.outbound_max_bytes);
        let small_queue = WsConfig { outbound_max_bytes: 256 * 1024, ..WsConfig::default() };
        assert_eq!(small_queue.reply_budget(), 128 * 1024);
        let small_reply = WsConfig { max_reply_bytes: 10_000, ..WsConfig::default() };
        assert_eq!(small_reply.reply_budget(), 10_000);
        assert_eq!(default.reply_frames(), 512);
        assert_eq!(WsConfig { outbound_max_frames: 1, ..WsConfig::default() }.reply_frames(), 2);
    }
}
