#!/usr/bin/env bash
# Starts, stops and locates the Redis server used by labchat's multi-node tests.
#
# Debian's redis-server (7.x) is installed with apt-get when missing. It runs on a free port of
# 127.0.0.1 with no persistence (no RDB snapshots, no AOF): Redis holds no labchat data, only
# pub/sub. Its state files live in <repo>/.ci-state/.
#
#   scripts/redis-test-server.sh start     # install if needed, start on a free port, wait until it answers PING
#   scripts/redis-test-server.sh uri       # print redis://127.0.0.1:PORT/ of the running server
#   scripts/redis-test-server.sh stop      # stop it (does nothing when it is not running)
#   scripts/redis-test-server.sh restart   # stop it and start it again on the same port
#
# `start` on a running server just reports its URI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.ci-state"
PID_FILE="$STATE/redis-test-server.pid"
LOG_FILE="$STATE/redis-test-server.log"
PORT_FILE="$STATE/redis-test-server.port"
START_TIMEOUT_SECS="${LABCHAT_REDIS_START_TIMEOUT:-20}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"

NAME=redis-test-server
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

running_pid() {
    # Prints the pid of the running server, if any.
    running_pid_of "$PID_FILE" 'redis-server'
}

ensure_installed() {
    command -v "$REDIS_SERVER" >/dev/null && command -v "$REDIS_CLI" >/dev/null && return 0
    apt_install redis-server
    command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER is missing after installing redis-server"
}


launch() {
    # Starts redis-server on port $1 in the background and waits until it answers PING.
    local port="$1"
    mkdir -p "$STATE"
    rm -f "$PID_FILE"
    : >"$LOG_FILE"
    "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" --dir "$STATE" \
        || die "redis-server failed to start; see $LOG_FILE:
$(tail -n 20 "$LOG_FILE")"
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    while ((SECONDS < deadline)); do
        if [[ "$("$REDIS_CLI" -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
            echo "$port" >"$PORT_FILE"
            echo "redis-test-server: started (pid $(running_pid || echo '?')) at redis://127.0.0.1:$port/" >&2
            return 0
        fi
        sleep 0.1
    done
    return 1
}

cmd_start() {
    if pid="$(running_pid)" && [[ -f "$PORT_FILE" ]]; then
        echo "redis-test-server: already running (pid $pid) at $(cmd_uri)" >&2
        return 0
    fi
    cmd_stop >/dev/null 2>&1 || true
    ensure_installed
    local tries
    for tries in 1 2 3; do
        # A port taken between picking and binding it: pick another.
        launch "$(free_port)" && return 0
        cmd_stop >/dev/null 2>&1 || true
    done
    die "redis-server did not answer within ${START_TIMEOUT_SECS}s (3 tries); see $LOG_FILE:
$(tail -n 20 "$LOG_FILE" 2>/dev/null)"
}

stop_server() {
    local pid
    if pid="$(running_pid)"; then
        stop_pid "$pid"
        echo "redis-test-server: stopped (pid $pid)" >&2
    fi
    rm -f "$PID_FILE"
}

cmd_stop() {
    stop_server
    rm -f "$PORT_FILE"
}

cmd_restart() {
    [[ -f "$PORT_FILE" ]] || die "not started; start it with: $0 start"
    local port
    port="$(cat "$PORT_FILE")"
    stop_server
    ensure_installed
    launch "$port" || die "could not restart redis-server on port $port; see $LOG_FILE"
}

cmd_uri() {
    running_pid >/dev/null && [[ -f "$PORT_FILE" ]] || die "not running; start it with: $0 start"
    echo "redis://127.0.0.1:$(cat "$PORT_FILE")/"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_restart ;;
    uri) cmd_uri ;;
    *)
        echo "usage: $0 start|stop|restart|uri" >&2
        exit 2
        ;;
esac
