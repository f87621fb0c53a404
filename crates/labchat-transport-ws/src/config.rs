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
    /// A connection rate-limited without a break for this long is closed with 1008 (default 10 s).
    pub rate_close_after: Duration,
    /// How often the server pings; a connection silent for two intervals is closed (default 20 s).
    pub ping_interval: Duration,
    /// Most frames waiting to be written to one connection (default 1024).
    pub outbound_max_frames: usize,
    /// Most bytes waiting to be written to one connection (default 4 MiB). A connection over
    /// either bound is closed with 1013.
    pub outbound_max_bytes: usize,
    /// Most open websocket connections; more get HTTP 503 (default 20000).
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish (default 10 s).
    pub shutdown_grace: Duration,
    /// tungstenite's read buffer per connection, in bytes (default 512). Allocated for every
    /// connection up front and zero-filled before each read, so small: most connections are idle
    /// and client frames are small; a larger frame grows it as needed.
    pub read_buffer_bytes: usize,
    /// Frames written to one connection are gathered up to this many bytes before a write
    /// syscall (default 64 KiB); a batch is always flushed at its end. 0 writes every frame with
    /// its own syscall, which costs several microseconds each on loopback.
    pub write_buffer_bytes: usize,
    /// How often a connection re-checks that its user may still access each room it joined
    /// (default 60 s); also how long the use cases trust a request found in the store. A user
    /// who lost access is removed from the room within two intervals. Zero turns the periodic
    /// re-check off (refused frames still end a subscription).
    pub access_recheck_interval: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            decode: DecodeLimits::default(),
            max_frame_bytes: 64 * 1024,
            max_rooms_per_connection: 100,
            rate_per_second: 30.0,
            rate_burst: 60.0,
            rate_close_after: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            outbound_max_frames: 1024,
            outbound_max_bytes: 4 * 1024 * 1024,
            max_connections: 20_000,
            shutdown_grace: Duration::from_secs(10),
            read_buffer_bytes: 512,
            write_buffer_bytes: 64 * 1024,
            access_recheck_interval: labchat_core::DEFAULT_ACCESS_TTL,
        }
    }
}
