//! labchat's in-process suites, in one test binary (one link of the MongoDB driver and the
//! server, not one per suite): a real server on `127.0.0.1:0` with real JWTs and real websockets,
//! against both stores where a suite says so; the AsyncAPI checks of real frames; the contract
//! suites of the ports, each run against every implementation.
//!
//! Run everything with `scripts/test.sh -p labchat-tests --test e2e` (it starts the test MongoDB
//! and Redis servers), one suite with a filter: `scripts/test.sh -p labchat-tests --test e2e --
//! chat::`.
//!
//! The suites share one process and run in parallel, so none relies on being alone in it:
//! - the Prometheus recorder is process-wide (the servers install it): a suite reads a metric as
//!   "at least", or records into a recorder of its own (`mongo_sequencer`);
//! - store outages take turns ([`labchat_tests::mongo::TcpProxy`]), so a suite may count the
//!   process-wide failures its outage causes (`access`);
//! - every server, database, room and request is a fresh one of its test.
//!
//! The multi-node suites (real `labchat` processes) are in `tests/multinode/`, the soak test in
//! `soak.rs`, the tidy checks in `tidy.rs`.

mod access;
mod asyncapi;
mod asyncapi_inbox;
mod asyncapi_presence;
mod bench_smoke;
mod broadcast_contract;
mod catch_up;
mod chat;
mod edge;
mod edit_delete;
mod fuzz;
mod handshake;
mod history_bytes;
mod inbox;
mod join_admission;
mod join_storm;
mod join_window;
mod limits;
mod mongo_sequencer;
mod mongo_store;
mod order;
mod presence;
mod presence_contract;
mod receipt_order;
mod reliability;
mod security;
mod store_contract;
mod store_inbox_migration;
mod unread_heal;
