#!/usr/bin/env bash
# The scale run (docs/benchmarks.md, "Scale"): redis-server, the test MongoDB and NODES release
# nodes on 127.0.0.1; SMALL_ROOMS rooms of SMALL_MEMBERS members and one room of BIG_MEMBERS
# members spread over every node, opened by GENERATORS `labchat-bench scale` processes (a process
# holds at most 20,000 open files) from the source addresses 127.0.0.2..127.0.0.9; then idle CPU,
# fan-out in the large room while RATE msg/s flow over the small rooms, and `kill -9` of the last
# node while messages flow (its clients reconnect to the others and catch up).
#
# Prints each generator's report (JSON), the nodes' RSS and idle CPU, Redis commands/s (INFO
# commandstats) and CPU (INFO cpu), store operations/s (the nodes' labchat_store_op_seconds), and
# the CPU of the test MongoDB and of each generator per phase, and the machine's load. Everything
# is bounded (the whole run by `timeout`), and everything started is stopped on exit. Sizes
# (environment): NODES=6 GENERATORS=6 SMALL_ROOMS=20000 SMALL_MEMBERS=5 BIG_MEMBERS=1000 RATE=200
# OPEN_SECS=420 (time allowed to open every connection). REDIS_CLUSTER=1 runs the backplane on a
# local Redis Cluster (three masters, three replicas; --redis-cluster) instead of one
# redis-server; Redis figures are then summed over its six servers. KEEP_LOGS=DIR keeps every
# process's log in DIR. GEN_NICE=-5 (the default) runs the generators ahead of the servers.
# SETTLE=20s waits that long after traffic before each generator checks its rooms against the
# store (default 2s; past the nodes' quiet-room check, 5 s, a message delivered late is told from
# one never delivered).
#
#   scripts/scale.sh                                  # the full run: 101,000 connections
#   NODES=3 GENERATORS=1 SMALL_ROOMS=200 BIG_MEMBERS=100 scripts/scale.sh   # a small one
#   REDIS_CLUSTER=1 scripts/scale.sh                  # the same on a Redis Cluster
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAME=scale
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
command -v redis-server >/dev/null || apt_install redis-server
command -v jq >/dev/null || apt_install jq
command -v pgrep >/dev/null || apt_install procps

NODES="${NODES:-6}"
GENERATORS="${GENERATORS:-6}"
SMALL_ROOMS="${SMALL_ROOMS:-20000}"
SMALL_MEMBERS="${SMALL_MEMBERS:-5}"
BIG_MEMBERS="${BIG_MEMBERS:-1000}"
RATE="${RATE:-200}"
SETTLE="${SETTLE:-2s}"
OPEN_SECS="${OPEN_SECS:-420}"
STEADY="${STEADY:-15s}"
# The generators' niceness: ahead of the servers by default, standing in for clients on their own
# machines (a generator left waiting for a core answers its pings late, and the nodes rightly
# close it as silent; docs/benchmarks.md, "Coalesced point reads"). Below 0 needs root; without
# it `nice` says so and runs them at 0. GEN_NICE=0 runs everything alike.
GEN_NICE="${GEN_NICE:--5}"
SECRET="scale-run-secret-0123456789abcdef"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
WORK="$(mktemp -d /tmp/labchat-scale.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    # KEEP_LOGS=DIR keeps the nodes', the generators' and the Redis servers' logs there.
    if [[ -n "${KEEP_LOGS:-}" ]]; then mkdir -p "$KEEP_LOGS" && cp "$WORK"/*.log "$WORK"/*.err "$KEEP_LOGS"/ 2>/dev/null || true; fi
    bash "$ROOT/scripts/mongo-test-server.sh" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "scale: cargo build --release -p labchat -p labchat-bench" >&2
cargo build --release -p labchat -p labchat-bench
ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; open files $(ulimit -n); load before: $(uptime)"

REDIS_PORTS=()
start_redis() { # start_redis PORT [ARGS...]: a redis-server in the background, waited for
    local port="$1"; shift
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
        --loglevel warning --maxclients 30000 --dir "$WORK" "$@" >"$WORK/redis-$port.log" 2>&1 &
    PIDS+=("$!"); REDIS_PORTS+=("$port")
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
if [[ "${REDIS_CLUSTER:-0}" == 1 ]]; then
    while ((${#REDIS_PORTS[@]} < 6)); do # each port with its cluster bus port (+10000) free
        port="$(free_port)"
        ((port < 55535)) && ! (echo >"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null || continue
        start_redis "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
            --cluster-node-timeout 5000 --repl-diskless-sync-delay 0
    done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${REDIS_PORTS[@]}") --cluster-replicas 1 \
        --cluster-yes >"$WORK/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed: $(tail -3 "$WORK/cluster-create.log")"
    for _ in $(seq 300); do
        ok=0; for p in "${REDIS_PORTS[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
        ((ok == 6)) && break; sleep 0.1
    done
    BACKPLANE=(LABCHAT_REDIS_CLUSTER="$(printf 'redis://127.0.0.1:%s/,' "${REDIS_PORTS[@]}")")
    echo "redis: a cluster of three masters and three replicas on ports ${REDIS_PORTS[*]}"
else
    start_redis "$(free_port)"
    BACKPLANE=(LABCHAT_REDIS_URL="redis://127.0.0.1:${REDIS_PORTS[0]}/")
fi
bash "$ROOT/scripts/mongo-test-server.sh" start >&2
MONGO_URI="$(bash "$ROOT/scripts/mongo-test-server.sh" uri)"
MONGO_PID="$(cat "$ROOT/.ci-state/mongo-test-server.pid" 2>/dev/null || true)"
DB="scale_$(date +%s)"

# The requests, as the lab system stores them.
ROOMS=$((SMALL_ROOMS + 1))
"$TARGET/labchat-bench" seed --rooms "$ROOMS" --out "$WORK/seed.json"
"$ROOT/.venv/bin/python" - "$MONGO_URI" "$DB" "$WORK/seed.json" <<'PY'
import json, sys
from bson import ObjectId
from pymongo import MongoClient
uri, db, path = sys.argv[1:4]
ids = [r["id"] for r in json.load(open(path))]
coll = MongoClient(uri)[db]["requests"]
for i in range(0, len(ids), 1000):
    coll.insert_many([{"_id": ObjectId(x), "title": "scale", "quantity": 1, "createdBy": "t-scale"} for x in ids[i:i + 1000]])
PY

URLS=(); NODE_PIDS=()
for i in $(seq 0 $((NODES - 1))); do
    port="$(free_port)"
    env LABCHAT_JWT_SECRET="$SECRET" LABCHAT_MONGO_URI="$MONGO_URI" LABCHAT_MONGO_DB="$DB" \
        "${BACKPLANE[@]}" LABCHAT_NODE_ID="node-$i" \
        "$TARGET/labchat" serve --listen "127.0.0.1:$port" --log-format json --log warn \
        --rate-per-second 1000 --rate-burst 1000 --max-connections 60000 --max-pending-connections 4096 \
        >"$WORK/node-$i.log" 2>&1 &
    PIDS+=("$!"); NODE_PIDS+=("$!"); URLS+=("ws://127.0.0.1:$port/ws")
done
for i in $(seq 0 $((NODES - 1))); do
    port="${URLS[$i]#ws://127.0.0.1:}"; port="${port%/ws}"
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
VICTIM=$((NODES - 1))

# The phases are measured on the nodes that stay up (every node but the one killed).
LIVE=$(seq 0 $((NODES - 2)))
metric_sum() { # metric_sum NAME_SUFFIX: the store-op metric summed over those nodes
    local total=0 v
    for i in $LIVE; do
        v="$(curl -sf "$(echo "${URLS[$i]}" | sed 's#^ws://#http://#; s#/ws$#/metrics#')" 2>/dev/null \
            | awk -v m="labchat_store_op_seconds_$1" '$1 ~ "^"m {s += $2} END {printf "%.6f", s}')" || v=0
        total="$(echo "$total + ${v:-0}" | bc -l)"
    done
    echo "$total"
}
redis_stats() { for p in "${REDIS_PORTS[@]}"; do redis-cli -p "$p" info commandstats; done; }
redis_calls() { redis_stats | awk -F'[=,:]' '/^cmdstat_/ {s += $3} END {print s}'; }
redis_by_command() { redis_stats | awk -F'[=,:]' '/^cmdstat_/ {n[$1] += $3} END {for (k in n) print k, n[k]}' | sort; }
redis_cpu() { # CPU seconds of every Redis server so far (used_cpu_user + used_cpu_sys)
    for p in "${REDIS_PORTS[@]}"; do redis-cli -p "$p" info cpu; done \
        | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'
}
cpu_ticks() { local s=0; for p in "$@"; do [[ -r /proc/$p/stat ]] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }
# cpu_each PIDS...: each process's CPU ticks so far, space-separated (0 for one gone).
cpu_each() { local p out=(); for p in "$@"; do out+=("$(cpu_ticks "$p")"); done; echo "${out[*]}"; }
# percent_each BEFORE AFTER SECONDS: per process, the % of a core between two cpu_each lines
# (`ended` for one that ended meanwhile).
percent_each() {
    paste -d' ' <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") \
        | awk -v hz="$(getconf CLK_TCK)" -v s="$3" '$2 < $1 {printf "ended "; next} {printf "%.0f ", ($2 - $1) / hz / s * 100}'
}
# store_by_op: the live nodes' store calls so far, one "op:outcome count" line each.
store_by_op() {
    for i in $LIVE; do
        curl -sf "$(echo "${URLS[$i]}" | sed 's#^ws://#http://#; s#/ws$#/metrics#')" 2>/dev/null \
            | grep '^labchat_store_op_seconds_count' || true
    done | sed -E 's/^labchat_store_op_seconds_count\{op="([^"]*)",outcome="([^"]*)"\} /\1:\2 /' \
        | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' | sort
}
phase() { # phase LABEL SECONDS: Redis commands/s and CPU, store ops/s and mean latency over the next SECONDS
    local r0 c0 s0 t0 u0 r1 c1 s1 t1 u1
    r0="$(redis_calls)"; c0="$(metric_sum count)"; s0="$(metric_sum sum)"; t0="$(cpu_ticks "${NODE_PIDS[@]:0:NODES-1}")"; u0="$(redis_cpu)"
    local g0 g1 m0 m1
    local gens; read -ra gens <<<"$(for p in "${GEN_PIDS[@]}"; do pgrep -P "$p" || echo 0; done | tr '\n' ' ')"
    g0="$(cpu_each "${gens[@]}")"; m0="$(cpu_ticks $MONGO_PID)"
    redis_by_command >"$WORK/redis-$1-0"; store_by_op >"$WORK/store-$1-0"
    sleep "$2"
    g1="$(cpu_each "${gens[@]}")"; m1="$(cpu_ticks $MONGO_PID)"
    r1="$(redis_calls)"; c1="$(metric_sum count)"; s1="$(metric_sum sum)"; t1="$(cpu_ticks "${NODE_PIDS[@]:0:NODES-1}")"; u1="$(redis_cpu)"
    redis_by_command >"$WORK/redis-$1-1"; store_by_op >"$WORK/store-$1-1"
    echo "phase $1 (${2}s): redis $(echo "($r1 - $r0) / $2" | bc) cmd/s, $(echo "($u1 - $u0) / $2 * 100" | bc -l | cut -c1-5) % of a core; store $(echo "($c1 - $c0) / $2" | bc) ops/s," \
        "mean $(echo "if ($c1 > $c0) ($s1 - $s0) * 1000 / ($c1 - $c0) else 0" | bc -l | cut -c1-6) ms;" \
        "node CPU $(echo "($t1 - $t0) / $(getconf CLK_TCK) / $2 * 100" | bc -l | cut -c1-6) % of a core (nodes 0..$((NODES - 2))); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "  redis commands/s: $(join -a 2 "$WORK/redis-$1-0" "$WORK/redis-$1-1" \
        | awk -v s="$2" '{d = (NF == 3 ? $3 - $2 : $2) / s} d >= 1 {printf "%s=%d ", substr($1, 9), d}')"
    echo "  store calls/s by operation: $(join -a 2 "$WORK/store-$1-0" "$WORK/store-$1-1" \
        | awk -v s="$2" '{d = (NF == 3 ? $3 - $2 : $2) / s} d >= 0.5 {printf "%s=%.0f ", $1, d}')"
    echo "  CPU, % of a core: test MongoDB $(echo "($m1 - $m0) / $(getconf CLK_TCK) / $2 * 100" | bc -l | cut -c1-5);" \
        "each generator $(percent_each "$g0" "$g1" "$2")"
}

# closed WHEN: the connections the live nodes closed or lost so far, by how each ended
# (labchat_connections_closed_total{code}: a close code the server sent, `peer`, `gone`).
closed() {
    echo "connections closed $1 (nodes 0..$((NODES - 2)) together): $(for i in $LIVE; do
        curl -sf "$(echo "${URLS[$i]}" | sed 's#^ws://#http://#; s#/ws$#/metrics#')" 2>/dev/null \
            | grep '^labchat_connections_closed_total' || true
    done | sed -E 's/^labchat_connections_closed_total\{code="([^"]*)"\} /\1 /' \
        | awk '{n[$1] += $2} END {for (k in n) printf "%s=%d ", k, n[k]}')"
}

TRAFFIC_AT=$(($(date +%s) + OPEN_SECS))
URL_LIST="$(IFS=,; echo "${URLS[*]}")"
PID_LIST="$(IFS=,; echo "${NODE_PIDS[*]}")"
GEN_PIDS=()
for g in $(seq 0 $((GENERATORS - 1))); do
    kill_args=(--other-kills "$VICTIM")
    [[ "$g" == 0 ]] && kill_args=(--kill-node "$VICTIM" --kill-pid "${NODE_PIDS[$VICTIM]}")
    sources="127.0.0.$((2 + g % 8))"
    LABCHAT_JWT_SECRET="$SECRET" nice -n "$GEN_NICE" timeout $((OPEN_SECS + 400)) "$TARGET/labchat-bench" scale --json \
        --url "$URL_LIST" --seed-file "$WORK/seed.json" --server-pid "$PID_LIST" \
        --small-rooms "$SMALL_ROOMS" --small-members "$SMALL_MEMBERS" --big-members "$BIG_MEMBERS" \
        --shard "$g" --shards "$GENERATORS" --source "$sources" --traffic-at "$TRAFFIC_AT" \
        --rate "$(echo "$RATE / $GENERATORS" | bc -l)" --steady "$STEADY" --open-timeout "$((OPEN_SECS - 10))s" \
        --settle "$SETTLE" "${kill_args[@]}" >"$WORK/gen-$g.json" 2>"$WORK/gen-$g.err" &
    GEN_PIDS+=("$!"); PIDS+=("$!")
done

# Wait until every connection is open (the generators wait for TRAFFIC_AT), then measure idle.
expected=$((SMALL_ROOMS * SMALL_MEMBERS + BIG_MEMBERS))
while (($(date +%s) < TRAFFIC_AT - 25)); do
    open="$(for p in "${NODE_PIDS[@]}"; do ls "/proc/$p/fd" 2>/dev/null | wc -l; done | paste -sd+ | bc)"
    ((open >= expected)) && break
    sleep 5
done
echo "opened after $(( $(date +%s) - TRAFFIC_AT + OPEN_SECS )) s (open files of the nodes: $open)"
echo "nodes' RSS (KiB): $(for p in "${NODE_PIDS[@]}"; do awk '/VmRSS/ {printf "%s ", $2}' "/proc/$p/status"; done)"
left=$((TRAFFIC_AT - $(date +%s) - 2))
((left > 3)) && phase idle "$left"
closed "by the end of the idle phase"
phase traffic 10
phase storm 30
closed "by the end of the storm phase"
for p in "${GEN_PIDS[@]}"; do wait "$p" || echo "a generator failed (exit $?)"; done
for g in $(seq 0 $((GENERATORS - 1))); do cat "$WORK/gen-$g.json"; tail -3 "$WORK/gen-$g.err" >&2; done
# sum_maps(f): the generators' maps of counts at f, summed key by key.
jq -s 'def sum_maps(f): map(f // {} | to_entries) | add // [] | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries;
    {opened: (map(.opened) | add), connections: (map(.connections) | add), gaps: (map(.gaps) | add), gaps_held_by_another_member: (map(.gaps_held_by_another_member) | add), gaps_held_by_a_member_that_stayed: (map(.gaps_held_by_a_member_that_stayed) | add), gaps_of_members_that_came_back: (map(.gaps_of_members_that_came_back) | add),
        not_caught_up_at_end: (map(.not_caught_up_at_end) | add), rooms: (map(.rooms) | add), rooms_checked: (map(.rooms_checked) | add),
        duplicates: (map(.duplicates) | add), lost: (map(.lost) | add), back: (map(.back) | add),
        back_after_s: (map(.back_after_s // 0) | max), connect_join_p99_ms_max: (map(.connect_join.p99_ms) | max),
        steady_p99_ms_max: (map(.steady.p99_ms) | max), storm_p99_ms_max: (map(.storm.p99_ms) | max),
        peak_rejoins_per_s_sum: (map(.peak_rejoins_per_s) | add),
        back_by_s: (map(.rejoins_by_second // []) | transpose | map(map(. // 0) | add) as $per | ($per | add // 0) as $n
          | [foreach $per[] as $x (0; . + $x)] as $cum | [0.5, 0.9, 0.99, 1] | map(. as $q | ($cum | map(. >= $n * $q) | index(true)) as $i | if $i == null then null else $i + 1 end)
          | {half: .[0], "90%": .[1], "99%": .[2], all: .[3]}), server_errors: (map(.server_errors) | add),
        server_errors_by_code: sum_maps(.server_errors_by_code),
        not_back_why: sum_maps(.not_back_why),
        not_back_sample: (map(.not_back_sample // []) | add | .[:5]), settle_s: (map(.settle_s) | max),
        loop_lag_max_ms_from_traffic: (map(.loop_lag_max_ms_from_traffic) | max), loop_stalls: (map(.loop_stalls) | add), gap_sample: (map(.gap_sample) | add | .[:10])}' \
    "$WORK"/gen-*.json
echo "Redis: $(redis_stats | grep -E 'publish|subscribe' | awk -F'[=,:]' '{n[$1] += $3} END {for (k in n) printf "%s=%d ", k, n[k]}')"
echo "store calls by operation, nodes 0..$((NODES - 2)) together:"
store_by_op | tr ':' ' ' | sed 's/^/  /'
echo "load after: $(uptime)"
