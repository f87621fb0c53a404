#!/usr/bin/env bash
# Heal latency of the Redis backplane (docs/benchmarks.md, "Heal latency of the Redis backplane"):
# two release `labchat` nodes on the test MongoDB (scripts/mongo-test-server.sh) and a
# redis-server that `labchat-bench heal` runs and breaks; for each fault (kill -9 and restart,
# quiet and with 10 posts meanwhile; CLIENT KILL TYPE normal / pubsub; a 3 s CLIENT PAUSE),
# HEALS times, the latency of the first post after both nodes' /readyz report the backplane
# connected again, from node 1 to node 2. The nodes run with a quiet-room check of 60 s, so no
# delivery comes from it. Prints the machine's load, then the bench's table.
#
#   scripts/heal-latency.sh            # 20 heals per fault
#   HEALS=5 scripts/heal-latency.sh
#
# Builds labchat and labchat-bench in release mode; uses 127.0.0.1 only and stops what it
# started (the test MongoDB too, unless it was running already).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAME=heal-latency
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
command -v redis-server >/dev/null || apt_install redis-server
HEALS="${HEALS:-20}"
S=heal-secret-0123456789abcdef
B="${CARGO_TARGET_DIR:-$ROOT/target}/release"
WORK="$(mktemp -d)"

cargo build --release -q -p labchat -p labchat-bench
MONGO_WAS_RUNNING=0
if bash scripts/mongo-test-server.sh uri >/dev/null 2>&1; then MONGO_WAS_RUNNING=1; fi
bash scripts/mongo-test-server.sh start >/dev/null
MONGO_URI="$(bash scripts/mongo-test-server.sh uri)"
DB="heal_latency_$$"
# The room: the bench's first generated request, created by a teacher, in the requests collection.
ROOM="$("$B/labchat-bench" seed --rooms 1 --out "$WORK/seed.json" 2>/dev/null; sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' "$WORK/seed.json" | head -1)"
[[ -n "$ROOM" ]] || die "no room id in $WORK/seed.json"
"$ROOT/.venv/bin/python" - "$MONGO_URI" "$DB" "$ROOM" <<'PY'
import sys
from bson import ObjectId
from pymongo import MongoClient
uri, db, room = sys.argv[1:4]
MongoClient(uri)[db]["requests"].insert_one({"_id": ObjectId(room), "createdBy": "t1"})
PY

REDIS_PORT="$(free_port)"
PORTS=("$(free_port)" "$(free_port)")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do stop_pid "$p"; done
    "$ROOT/.venv/bin/python" -c 'import sys; from pymongo import MongoClient; MongoClient(sys.argv[1]).drop_database(sys.argv[2])' \
        "$MONGO_URI" "$DB" 2>/dev/null || true
    rm -rf "$WORK"
    if [[ "$MONGO_WAS_RUNNING" == 0 ]]; then bash "$ROOT/scripts/mongo-test-server.sh" stop >/dev/null; fi
}
trap cleanup EXIT

for i in 0 1; do
    "$B/labchat" serve --listen "127.0.0.1:${PORTS[$i]}" --jwt-secret "$S" --mongo-uri "$MONGO_URI" --mongo-db "$DB" \
        --redis-url "redis://127.0.0.1:$REDIS_PORT/" --node-id "heal-$i" --backplane-check-interval 60s --rate-per-second 1000000 --rate-burst 1000000 \
        --log warn 2>"$WORK/node-$i.log" &
    pids+=("$!")
done

echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/labchat-bench" heal --url "ws://127.0.0.1:${PORTS[0]}/ws" --url "ws://127.0.0.1:${PORTS[1]}/ws" --secret "$S" \
    --seed-file "$WORK/seed.json" --redis-port "$REDIS_PORT" --heals "$HEALS" \
    || { tail -n 20 "$WORK"/node-*.log >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
