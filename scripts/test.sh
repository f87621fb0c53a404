#!/usr/bin/env bash
# labchat's one test command (README and CI call it).
#
# Starts the test MongoDB server (scripts/mongo-test-server.sh) and the test Redis server
# (scripts/redis-test-server.sh), exports LABCHAT_TEST_MONGO_URI for the MongoDB tests and
# LABCHAT_TEST_REDIS_URL (with LABCHAT_TEST_REDIS=required) for the multi-node tests, runs
# `cargo test --workspace` (libs, bins, tests and doc tests), then, when called without
# arguments, the browser test (scripts/browser-test.sh) and the client library's tests
# (scripts/client-test.sh: `npm ci && npm run build && npm test` in clients/js); always stops the servers again, and
# exits non-zero if anything failed.
#
# Extra arguments go to cargo test (and skip the browser test); arguments that pick packages
# (-p, --package, --exclude) replace --workspace:
#
#   scripts/test.sh                                   # everything
#   scripts/test.sh -p labchat-tests --test e2e -- store_contract::
#   scripts/test.sh -- --nocapture                    # arguments after -- go to the test binaries
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVER="$ROOT/scripts/mongo-test-server.sh"
REDIS="$ROOT/scripts/redis-test-server.sh"

cd "$ROOT"
# Stops, on exit, only the test servers this run started: a second run started meanwhile (say,
# one test while the suite runs) shares the first run's servers and leaves them running.
ours=()
stop_ours() {
    local script
    for script in "${ours[@]}"; do bash "$script" stop || true; done
}
trap stop_ours EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for script in "$SERVER" "$REDIS"; do
    bash "$script" uri >/dev/null 2>&1 || ours+=("$script")
done

bash "$SERVER" start
LABCHAT_TEST_MONGO_URI="$(bash "$SERVER" uri)"
export LABCHAT_TEST_MONGO_URI
echo "test.sh: LABCHAT_TEST_MONGO_URI=$LABCHAT_TEST_MONGO_URI" >&2
bash "$REDIS" start
LABCHAT_TEST_REDIS_URL="$(bash "$REDIS" uri)"
LABCHAT_TEST_REDIS=required
export LABCHAT_TEST_REDIS_URL LABCHAT_TEST_REDIS
echo "test.sh: LABCHAT_TEST_REDIS_URL=$LABCHAT_TEST_REDIS_URL" >&2

packages=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p* | --package | --package=* | --workspace | --all) packages=() ;;
        --exclude | --exclude=*) packages=(--workspace) ;;
    esac
done

status=0
# The multi-node tests run the labchat binary itself (target/debug/labchat): build it even when
# the selected packages would not. The whole workspace, every target: the selection the test run
# makes itself, so features unify the same way and nothing is built twice.
cargo build --workspace --all-targets || status=$?
[[ $status -eq 0 ]] && { cargo test "${packages[@]}" "$@" || status=$?; }
# The multi-node suite once more with every cluster's nodes on a Redis Cluster of its own
# (LABCHAT_TEST_BACKPLANE=cluster, --redis-cluster), but for the tests that act on one redis-server
# (kill it, cut its clients, publish into its room channels: Cluster::redis panics on a cluster)
# and those that start a Redis Cluster whatever the run.
if [[ $# -eq 0 && $status -eq 0 ]]; then
    LABCHAT_TEST_BACKPLANE=cluster cargo test -p labchat-tests --test multinode -- \
        --skip heal:: --skip backplane_versions:: --skip cluster_failover:: --skip redis_cluster:: \
        --skip chat::the_harness_starts_kills_and_restarts_nodes_and_redis \
        --skip chat::redis_killed_and_restarted_mid_traffic_loses_nothing \
        --skip chat::pubsub_connections_cut_every_few_ms_lose_nothing_and_duplicate_nothing \
        --skip presence::with_redis_down || status=$?
fi
# The core's mocks are a feature no workspace member turns on: its downstream example test (the
# mocks and the in-memory adapters) runs on its own, with the whole suite.
if [[ $# -eq 0 && $status -eq 0 ]]; then
    cargo test -p labchat-core --features mocks --examples || status=$?
fi
# The whole suite (no arguments) also checks the files of deploy/, runs the browser test in headless
# Chromium and the tests of the client library (clients/js).
if [[ $# -eq 0 && $status -eq 0 ]]; then
    bash "$ROOT/scripts/deploy-check.sh" || status=$?
fi
if [[ $# -eq 0 && $status -eq 0 ]]; then
    bash "$ROOT/scripts/browser-test.sh" || status=$?
fi
if [[ $# -eq 0 && $status -eq 0 ]]; then
    bash "$ROOT/scripts/client-test.sh" || status=$?
fi
exit "$status"
