#!/usr/bin/env bash
# The client library's tests: `npm ci && npm run build && npm test` in clients/js (@labchat/client),
# against real labchat processes: one node with the memory store, and three nodes with the test
# MongoDB and Redis servers behind HAProxy (deploy/haproxy.cfg): faults (kill -9, Redis, MongoDB)
# in test/multinode.test.mjs, a drain of one node under load in test/drain.test.mjs, a join refused
# by a node at its bound of joins (MongoDB paused) and retried in test/join-admission.test.mjs.
#
# Installs what it needs when missing (Debian's haproxy and redis-server via apt, the npm packages
# of clients/js via `npm ci`), builds the labchat binary (debug), and exits non-zero on any failure.
# The multi-node tests need LABCHAT_TEST_MONGO_URI (scripts/test.sh exports it); without it they
# start the test MongoDB server themselves.
#
#   scripts/client-test.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'client-test: %s\n' "$*" >&2; }

NAME=client-test
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
command -v haproxy >/dev/null || apt_install haproxy
command -v redis-server >/dev/null || apt_install redis-server
for tool in node npm; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done

# The same selection as the test run (`cargo test --workspace`), so nothing is rebuilt.
log "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
LABCHAT_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/labchat"
export LABCHAT_BIN

cd clients/js
log "npm ci && npm run build && npm test (clients/js)"
npm ci --no-audit --no-fund --loglevel=error
npm run build
timeout 1200 npm test
