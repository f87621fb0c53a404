#!/usr/bin/env bash
# The drain, measured (docs/deployment.md, "Drain, measured"): 2,000 clients of clients/js on three
# release nodes behind HAProxy (deploy/haproxy.cfg), the test MongoDB and redis-server; SIGTERM to
# one node; prints the time to exit, the spread of reconnects, the peak reconnect rate the other
# nodes took and the p99 of live deliveries between unaffected clients (clients/js/bench/drain.mjs).
#
# Builds `labchat` in release mode, installs what it needs when missing (Debian's haproxy and
# redis-server, the npm packages of clients/js), prints the machine's load before and after, and
# stops everything it started. Environment: CLIENTS, ROOMS, POST_EVERY_MS, NODE_ARGS, MODE (see the
# bench file).
#
#   scripts/drain-measure.sh                  # one node drained
#   MODE=upgrade scripts/drain-measure.sh     # a rolling upgrade to envelope version 3 under load
#   MODE=upgrade LABCHAT_BIN_OLD=/path/to/previous/labchat scripts/drain-measure.sh
#                                             # the binary upgrade from a previous release
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAME=drain-measure
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
command -v haproxy >/dev/null || apt_install haproxy
command -v redis-server >/dev/null || apt_install redis-server
for tool in node npm; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

echo "drain-measure: cargo build --release -p labchat" >&2
cargo build --release -p labchat
LABCHAT_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/labchat"
export LABCHAT_BIN

cd clients/js
npm ci --no-audit --no-fund --loglevel=error
npm run build >/dev/null
echo "machine: $(nproc) cores; load before: $(uptime)"
timeout 900 node bench/drain.mjs
echo "load after: $(uptime)"
