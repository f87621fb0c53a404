#!/usr/bin/env bash
# `fanout` against labchat and the Node reference server side by side, in one run
# (docs/benchmarks.md, "Fan-out CPU against the Node server"): both servers started fresh, each
# pinned with one thread to core 1, the generator pinned to core 0; ROUNDS rounds, each running
# the workload against labchat then against Node on fresh rooms; one line per run, then the
# ratio of server CPU per delivery (Node / labchat) per round and over all rounds.
#
#   scripts/bench-vs-node.sh                      # M=50 W=10, 10 s, 4 rounds
#   MEMBERS=50 WINDOW=10 DURATION=5s ROUNDS=6 scripts/bench-vs-node.sh
#
# Needs the release binaries (cargo build --release -p labchat -p labchat-bench), node and npm
# (the reference server's `ws` is installed with `npm ci`). Uses 127.0.0.1 only and stops both
# servers on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="${CARGO_TARGET_DIR:-$ROOT/target}/release"
NODE_DIR="$ROOT/crates/labchat-bench/node-reference"
MEMBERS="${MEMBERS:-50}" WINDOW="${WINDOW:-10}" DURATION="${DURATION:-10s}" ROUNDS="${ROUNDS:-4}"
LABCHAT_PORT="${LABCHAT_PORT:-18480}" NODE_PORT="${NODE_PORT:-18490}"
S=bench-secret-0123456789abcdef
WORK="$(mktemp -d)"

for bin in labchat labchat-bench; do
    [[ -x "$B/$bin" ]] || { echo "bench-vs-node: $B/$bin missing: cargo build --release -p labchat -p labchat-bench" >&2; exit 1; }
done
[[ -d "$NODE_DIR/node_modules/ws" ]] || (cd "$NODE_DIR" && npm ci --no-audit --no-fund >&2)

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "bench-vs-node: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

ulimit -n 20000
"$B/labchat-bench" seed --rooms 2000 --out "$WORK/seed.json" 2>/dev/null
taskset -c 1 "$B/labchat" serve --workers 1 --listen "127.0.0.1:$LABCHAT_PORT" --jwt-secret "$S" \
    --seed-requests "$WORK/seed.json" --rate-per-second 1000000 --rate-burst 1000000 2>"$WORK/labchat.log" &
LABCHAT_PID=$!
pids+=("$LABCHAT_PID")
taskset -c 1 node "$NODE_DIR/server.mjs" --port "$NODE_PORT" --secret "$S" --seed-requests "$WORK/seed.json" \
    >"$WORK/node.log" 2>&1 &
NODE_PID=$!
pids+=("$NODE_PID")
wait_port "$LABCHAT_PORT"
wait_port "$NODE_PORT"

# The server CPU per delivery of one fanout run (JSON line on stdout), in microseconds.
cpu_of() { sed -n 's/.*"server_cpu_us_per_delivery":\([0-9.]*\).*/\1/p'; }
field() { sed -n "s/.*\"$1\":\\([0-9.]*\\).*/\\1/p"; }

run() { # name url pid offset
    taskset -c 0 "$B/labchat-bench" fanout --url "ws://127.0.0.1:$2/ws" --secret "$S" --seed-file "$WORK/seed.json" \
        --server-pid "$3" --members "$MEMBERS" --window "$WINDOW" --duration "$DURATION" --room-offset "$4" --json
}

echo "fanout M=$MEMBERS W=$WINDOW $DURATION, $ROUNDS rounds; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
sum_l=0 sum_n=0
for r in $(seq "$ROUNDS"); do
    l=$(run labchat "$LABCHAT_PORT" "$LABCHAT_PID" $((100 + r)))
    n=$(run node "$NODE_PORT" "$NODE_PID" $((200 + r)))
    for pair in "labchat:$l" "node:$n"; do
        name="${pair%%:*}" json="${pair#*:}"
        printf 'round %d %-8s %10s deliveries/s  p99 %8s ms  server %6s%% of a core  %s µs/delivery  missing %s dup %s  load %s\n' \
            "$r" "$name" "$(field deliveries_per_s <<<"$json" | cut -d. -f1)" "$(field p99_ms <<<"$json")" \
            "$(field server_cpu_pct <<<"$json" | cut -c1-5)" "$(cpu_of <<<"$json" | cut -c1-6)" \
            "$(field missing <<<"$json")" "$(field duplicated <<<"$json")" "$(field load1 <<<"$json")"
    done
    cl=$(cpu_of <<<"$l") cn=$(cpu_of <<<"$n")
    awk -v l="$cl" -v n="$cn" -v r="$r" 'BEGIN { printf "round %d: Node / labchat CPU per delivery = %.2f\n", r, n / l }'
    sum_l=$(awk -v a="$sum_l" -v b="$cl" 'BEGIN { print a + b }')
    sum_n=$(awk -v a="$sum_n" -v b="$cn" 'BEGIN { print a + b }')
done
awk -v l="$sum_l" -v n="$sum_n" -v k="$ROUNDS" \
    'BEGIN { printf "mean over %d rounds: labchat %.3f µs, Node %.3f µs per delivery: %.2f times less for labchat\n", k, l / k, n / k, n / l }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
