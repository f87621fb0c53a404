//! labchat's multi-node suites, in one test binary: real `labchat` processes (the debug binary)
//! on one test MongoDB database and a redis-server of each test's own
//! ([`labchat_tests::multinode`]), `kill -9` and Redis faults included.
//!
//! Needs `LABCHAT_TEST_MONGO_URI`, the `labchat` binary and `redis-server`: run it with
//! `scripts/test.sh -p labchat-tests --test multinode` (which builds and starts what it needs),
//! one suite with a filter: `scripts/test.sh -p labchat-tests --test multinode -- presence::`.
//!
//! Clusters run one at a time (a process-wide turn, [`labchat_tests::multinode::Cluster`]), and
//! each stops everything it started when its test ends, passed or failed.

mod backplane_versions;
mod chat;
mod cluster_failover;
mod deploy_alerts;
mod edit_delete;
mod heal;
mod inbox;
mod join_reuse;
mod late_insert;
mod presence;
mod redis_cluster;
mod scale;
