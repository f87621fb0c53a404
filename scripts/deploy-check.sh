#!/usr/bin/env bash
# Checks the files of deploy/ with their own tools (called by scripts/test.sh):
#   - deploy/prometheus/alerts.yml with `promtool check rules` and `promtool test rules
#     alerts.test.yml` (Debian package prometheus, installed when missing);
#   - deploy/haproxy.cfg with `haproxy -c` (Debian package haproxy, installed when missing),
#     its addresses given through the environment as the tests give them;
#   - deploy/labchat.service with `systemd-analyze verify`, its ExecStart pointed at the built
#     binary (target/debug/labchat); where systemd-analyze cannot run (no systemd), this is said
#     and skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=deploy-check
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

command -v haproxy >/dev/null || apt_install haproxy
LABCHAT_LB_BIND=127.0.0.1:18080 LABCHAT_NODE_1=127.0.0.1:1 LABCHAT_NODE_2=127.0.0.1:2 LABCHAT_NODE_3=127.0.0.1:3 \
    haproxy -c -q -f "$ROOT/deploy/haproxy.cfg" || die "deploy/haproxy.cfg is invalid"
echo "deploy-check: deploy/haproxy.cfg is valid (haproxy -c)" >&2

command -v promtool >/dev/null || apt_install prometheus
promtool check rules "$ROOT/deploy/prometheus/alerts.yml" >/dev/null || die "deploy/prometheus/alerts.yml is invalid"
(cd "$ROOT/deploy/prometheus" && promtool test rules alerts.test.yml >/dev/null) \
    || die "deploy/prometheus/alerts.test.yml fails: run promtool test rules there"
echo "deploy-check: deploy/prometheus/alerts.yml checked and unit-tested (promtool)" >&2

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/labchat"
if ! command -v systemd-analyze >/dev/null; then
    echo "deploy-check: systemd-analyze missing: deploy/labchat.service NOT verified" >&2
    exit 0
fi
[[ -x "$BIN" ]] || die "$BIN is missing: build it first (cargo build -p labchat)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/labchat#$BIN#" "$ROOT/deploy/labchat.service" >"$dir/labchat.service"
# systemd-analyze exits 0 on a directive it ignores (a bad value, a typo): any line naming the
# unit file fails the check. Other lines are about the host (no running systemd) and are printed.
out="$(systemd-analyze verify "$dir/labchat.service" 2>&1)" || die "deploy/labchat.service: $out"
if grep -q 'labchat.service:' <<<"$out"; then
    die "deploy/labchat.service: $out"
fi
if [[ -n "$out" ]]; then echo "$out" >&2; fi
echo "deploy-check: deploy/labchat.service verified (systemd-analyze verify)" >&2
