//! # labchat-bench
//!
//! A load generator for labchat that speaks the JSON protocol over real websockets, so the
//! figures in `docs/benchmarks.md` can be reproduced. Workloads:
//!
//! - [`idle`]: many joined connections doing nothing; server RSS per connection, connect+join
//!   latency, connections per second;
//! - [`fanout`]: one room, one sender, a window of messages in flight; deliveries per second,
//!   send-to-deliver latency, server CPU per delivery, missing and duplicated deliveries;
//! - [`rate`]: many rooms at a fixed total send rate, latency from the scheduled send time (no
//!   coordinated omission), and a step mode that finds the highest rate under a p99 bound;
//! - [`receipts`]: every receiver acks and reads every message; time until the sender has seen
//!   every receipt;
//! - [`session`]: a writer posts M messages, then N readers join (the history in their join
//!   reply), read everything and stay; server RSS per reader after a large reply;
//! - [`joinstorm`]: N users join one room at once; the presence frames it costs each member, and
//!   the server's CPU;
//! - [`scale`]: many small rooms and one large room over every node of a cluster, held open;
//!   fan-out, a steady rate, then one node killed: reconnects, catch-up, and no gap or duplicate
//!   against the store's last `seq`;
//! - [`slow`]: one member stops reading; the others' latency and the server RSS over time;
//! - [`heal`]: two nodes of a cluster over a redis-server the bench runs and breaks; the latency
//!   of the first post after each heal, per kind of fault.
//!
//! Against a cluster, a [`Target`] holds every node's URL and pid: member `i` of a workload
//! connects to node `i % n` (member 0, the sender of `fanout` and `receipts`, on the first node;
//! in `slow` the sender is member 1), and server CPU and RSS are summed over the nodes.
//!
//! Every workload is bounded in time and count and only targets loopback addresses. The binary
//! (`labchat-bench`) wraps these functions; the test suite runs each of them briefly against an
//! in-process server.

pub mod client;
pub mod procfs;
pub mod report;
pub mod seed;
pub mod stats;
pub mod workloads;

pub use client::Target;
pub use workloads::fanout::{FanoutOptions, FanoutReport, fanout};
pub use workloads::heal::{HealOptions, HealReport, heal};
pub use workloads::idle::{IdleOptions, IdleReport, idle};
pub use workloads::joinstorm::{JoinStormOptions, JoinStormReport, joinstorm};
pub use workloads::rate::{RateOptions, RateReport, StepOptions, StepReport, rate, rate_steps};
pub use workloads::receipts::{ReceiptsOptions, ReceiptsReport, receipts};
pub use workloads::scale::{Kill, ScaleOptions, ScaleReport, scale};
pub use workloads::session::{SessionOptions, SessionReport, session};
pub use workloads::slow::{SlowOptions, SlowReport, slow};

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no sense (or would leave loopback, or exceed a bound).
    #[error("invalid options: {0}")]
    Options(String),
    /// A websocket handshake failed.
    #[error("connection {index} failed: {source}")]
    Connect {
        /// Which connection.
        index: usize,
        /// The client's error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server answered something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A file or /proc read failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Minting a token failed.
    #[error("minting a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// A histogram could not be built or merged.
    #[error("histogram: {0}")]
    Histogram(String),
}
