#!/usr/bin/env bash
# The browser end-to-end tests: two headless Chromium pages chat through labchat's demo page, and
# watch its inbox, members list and "… is typing" line.
#
# Installs what it needs when missing (Debian's chromium via apt, playwright-core via `npm ci` in
# tests/browser), builds the labchat binary (debug), and runs tests/browser/*.test.mjs with node's
# test runner, one file at a time. Exits non-zero on any failure.
#
#   scripts/browser-test.sh
#   LABCHAT_SCREENSHOTS=/tmp/shots scripts/browser-test.sh   # also save screenshots of the pages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
log() { printf 'browser-test: %s\n' "$*" >&2; }

NAME=browser-test
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
if [[ ! -x "$CHROMIUM" ]]; then
    apt_install chromium
fi
"$CHROMIUM" --version >&2

for tool in node npm; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    log "npm ci (tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# The same selection as the test run (`cargo test --workspace`), so features unify the same way
# and nothing is rebuilt.
log "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/labchat"

log "running the browser test"
cd tests/browser
LABCHAT_BIN="$BIN" CHROMIUM="$CHROMIUM" timeout 600 node --test --test-reporter=spec --test-concurrency=1 \
    chat.test.mjs inbox.test.mjs presence.test.mjs
