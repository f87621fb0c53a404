# Shell helpers shared by labchat's scripts (sourced, not run). Each caller sets NAME (the prefix
# of its messages) before sourcing.

die() {
    echo "${NAME:-labchat}: $*" >&2
    exit 1
}

# apt_install PACKAGE: installs a Debian package (apt-get update first), as root or with sudo.
apt_install() {
    echo "${NAME:-labchat}: installing $1 (Debian package)" >&2
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$1" >/dev/null \
        || die "could not install $1"
}

# running_pid_of PID_FILE PATTERN: prints the pid in PID_FILE if that process runs and its command
# line matches PATTERN (never act on an unrelated process that reused a stale pid).
running_pid_of() {
    local pid_file="$1" pattern="$2" pid
    [[ -f "$pid_file" ]] || return 1
    pid="$(tr -dc '0-9' <"$pid_file")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$pattern"; then
        return 1
    fi
    echo "$pid"
}

# free_port [PYTHON]: prints a free TCP port of 127.0.0.1.
free_port() {
    "${1:-python3}" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# stop_pid PID: asks the process to stop, waits up to 5 s, then kills it.
stop_pid() {
    local pid="$1"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
}
