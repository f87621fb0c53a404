//! # labchat-tests
//!
//! Support for labchat's cross-crate tests, whose suites are modules of four test binaries in
//! `tests/tests/`: `e2e/` (in-process), `multinode/` (real processes), `soak.rs` and `tidy.rs`.
//! - [`asyncapi`]: `docs/asyncapi.yaml` compiled into a validator per client and server event;
//! - [`contract`]: the [`ChatStore`](labchat_core::ChatStore) contract as one suite of checks,
//!   run against every store, and the memory store's fixture;
//! - [`broadcast_contract`] and [`presence_contract`]: the same for the
//!   [`Broadcaster`](labchat_core::Broadcaster) and [`Presence`](labchat_core::Presence) ports,
//!   with the fixtures of their in-process and Redis implementations;
//! - [`redis`]: the test Redis server;
//! - [`redis_cluster`]: a Redis Cluster of one test (three masters, three replicas) to fail over;
//! - [`mongo`]: the test MongoDB (a fresh database per test, requests as the lab system stores
//!   them, a proxy that makes the server go silent).
//!
//! - [`harness`] and [`client`]: a real server on 127.0.0.1:0, real JWTs, a websocket client.
//! - [`multinode`]: several real `labchat` processes on one MongoDB and one redis-server, or a
//!   Redis Cluster ([`redis_cluster`]); [`process`]: the redis-servers and waits they need.
//!
//! Run everything with `scripts/test.sh`, which starts the test MongoDB and Redis servers first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod asyncapi;
pub mod broadcast_contract;
pub mod client;
pub mod contract;
pub mod harness;
pub mod mongo;
pub mod multinode;
pub mod presence_contract;
pub mod process;
pub mod redis;
pub mod redis_cluster;

/// For each test body `async fn name(server: TestServer)` of the calling file: a test
/// `memory::name`, on a server with the in-memory store, and a test `mongodb::name`, on a server
/// with the MongoDB store (the test MongoDB: `LABCHAT_TEST_MONGO_URI`, set by `scripts/test.sh`).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = $crate::harness::TestServer::start_on(
                        $crate::harness::Backend::Memory,
                        stringify!($name),
                    )
                    .await;
                    super::$name(server).await;
                }
            )*
        }

        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::harness::TestServer::start_on(
                        $crate::harness::Backend::Mongo,
                        stringify!($name),
                    )
                    .await;
                    super::$name(server).await;
                }
            )*
        }
    };
}
