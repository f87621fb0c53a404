#!/usr/bin/env bash
# Starts, stops and locates the MongoDB-compatible test server used by labchat's tests.
#
# No MongoDB server package is installable on the project's machines, so the tests run against
# nx-27017 (PyPI), a MongoDB wire-protocol server on SQLite, kept in memory. It is installed into
# a virtualenv at <repo>/.venv on first use; its state files live in <repo>/.ci-state/.
#
#   scripts/mongo-test-server.sh start   # install if needed, start on a free port, wait until it accepts connections
#   scripts/mongo-test-server.sh uri     # print mongodb://127.0.0.1:PORT of the running server
#   scripts/mongo-test-server.sh stop    # stop it (does nothing when it is not running)
#
# Every command is idempotent: `start` on a running server just reports its URI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE="$ROOT/.ci-state"
PID_FILE="$STATE/mongo-test-server.pid"
LOG_FILE="$STATE/mongo-test-server.log"
URI_FILE="$STATE/mongo-test-server.uri"
PACKAGE_SPEC='nx-27017>=0.8,<0.9'
START_TIMEOUT_SECS="${LABCHAT_MONGO_START_TIMEOUT:-30}"
PYTHON="${PYTHON:-python3}"

NAME=mongo-test-server
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

running_pid() {
    # Prints the pid of the running server, if any.
    running_pid_of "$PID_FILE" 'nx-27017\|nx_27017'
}

ensure_installed() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        command -v "$PYTHON" >/dev/null || die "$PYTHON not found: Python 3 is needed to run the test MongoDB server"
        echo "mongo-test-server: creating virtualenv $VENV" >&2
        "$PYTHON" -m venv "$VENV" || die "could not create the virtualenv $VENV"
    fi
    if ! "$VENV/bin/python" - "$PACKAGE_SPEC" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
v = tuple(int(p) for p in version("nx-27017").split(".")[:2])
sys.exit(0 if (0, 8) <= v < (0, 9) else 1)
PY
        echo "mongo-test-server: installing $PACKAGE_SPEC" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PACKAGE_SPEC" \
            || die "could not install $PACKAGE_SPEC into $VENV"
    fi
    [[ -x "$VENV/bin/nx-27017" ]] || die "$VENV/bin/nx-27017 is missing after installing $PACKAGE_SPEC"
}


port_open() {
    "$VENV/bin/python" -c 'import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

cmd_start() {
    if pid="$(running_pid)" && [[ -f "$URI_FILE" ]]; then
        echo "mongo-test-server: already running (pid $pid) at $(cat "$URI_FILE")" >&2
        return 0
    fi
    cmd_stop >/dev/null 2>&1 || true
    ensure_installed
    mkdir -p "$STATE"
    local port tries=0
    while :; do
        port="$(free_port "$VENV/bin/python")"
        rm -f "$PID_FILE" "$URI_FILE"
        : >"$LOG_FILE"
        "$VENV/bin/nx-27017" -d --host 127.0.0.1 -p "$port" --db memory \
            --pid-file "$PID_FILE" --log-file "$LOG_FILE" >>"$LOG_FILE" 2>&1 \
            || die "nx-27017 failed to start; see $LOG_FILE:
$(tail -n 20 "$LOG_FILE")"
        local deadline=$((SECONDS + START_TIMEOUT_SECS))
        while ((SECONDS < deadline)); do
            if port_open "$port"; then
                echo "mongodb://127.0.0.1:$port" >"$URI_FILE"
                echo "mongo-test-server: started (pid $(running_pid || echo '?')) at mongodb://127.0.0.1:$port" >&2
                return 0
            fi
            # The daemon died (e.g. the port was taken between picking and binding it): retry.
            if [[ -f "$PID_FILE" ]] && ! running_pid >/dev/null; then
                break
            fi
            sleep 0.2
        done
        cmd_stop >/dev/null 2>&1 || true
        tries=$((tries + 1))
        if ((tries >= 3)); then
            die "the server did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT_SECS}s; see $LOG_FILE:
$(tail -n 20 "$LOG_FILE" 2>/dev/null)"
        fi
    done
}

cmd_stop() {
    local pid
    if pid="$(running_pid)"; then
        stop_pid "$pid"
        echo "mongo-test-server: stopped (pid $pid)" >&2
    fi
    rm -f "$PID_FILE" "$URI_FILE"
}

cmd_uri() {
    running_pid >/dev/null && [[ -f "$URI_FILE" ]] || die "not running; start it with: $0 start"
    cat "$URI_FILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    uri) cmd_uri ;;
    *)
        echo "usage: $0 start|stop|uri" >&2
        exit 2
        ;;
esac
