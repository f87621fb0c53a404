//! # labchat-tests
//!
//! Support for labchat's cross-crate tests (the test files are in `tests/tests/`):
//! - [`contract`]: the [`ChatStore`](labchat_core::ChatStore) contract as one suite of checks,
//!   run against every store, and the memory store's fixture;
//! - [`mongo`]: the test MongoDB (a fresh database per test, requests as the lab system stores
//!   them, a proxy that makes the server go silent).
//!
//! - [`harness`] and [`client`]: a real server on 127.0.0.1:0, real JWTs, a websocket client.
//! - [`multinode`]: several real `labchat` processes on one MongoDB and one redis-server.
//!
//! Run everything with `scripts/test.sh`, which starts the test MongoDB server first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod client;
pub mod contract;
pub mod harness;
pub mod mongo;
pub mod multinode;
