#!/usr/bin/env bash
# Measures the backplane's Redis traffic per message (publishes from `INFO commandstats`, bytes
# from `INFO stats`, deliveries to nodes from the nodes' labchat_backplane_deliveries_total)
# for envelope version 2 (inbox notices on labchat:inbox, as the previous release) and version 3
# (inbox notices on the rooms' audience channels), each on a fresh redis-server of its own on a
# free port of 127.0.0.1, stopped at the end. Prints the figures of
# crates/labchat-broadcast-redis/examples/inbox_traffic.rs (see it for the modelled deployment).
#
#   scripts/backplane-traffic.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release -q -p labchat-broadcast-redis --example inbox_traffic
pid=
stop() { if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap stop EXIT
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for version in 2 3; do
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    pid=$!
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    target/release/examples/inbox_traffic "redis://127.0.0.1:$port/" "$version"
    stop
    pid=
done
