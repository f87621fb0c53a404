#!/usr/bin/env bash
# Runs CI (`bash .ci/run`) as a fresh machine would: on a new clone of this repository's HEAD,
# with a new, empty cargo home (no registry cache, no cargo-installed tools such as cargo-deny)
# and a new target directory. The Rust toolchain is still found through rustup. Prints how long
# it took; exits with CI's status.
#
#   scripts/ci-fresh.sh             # clone into a new temporary directory, removed afterwards
#   KEEP=1 scripts/ci-fresh.sh      # keep the clone and the cargo home (their paths are printed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/labchat-ci-fresh.XXXXXX)"
cleanup() { [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"; }
trap cleanup EXIT

git clone --quiet --no-hardlinks "$ROOT" "$WORK/repo"
export CARGO_HOME="$WORK/cargo-home"
mkdir -p "$CARGO_HOME/bin" "$WORK/shims"
# Only the toolchain from the old PATH: rustup and its proxies, nothing cargo installed there.
rustup_bin="$(command -v rustup)"
for tool in rustup cargo rustc rustfmt cargo-fmt cargo-clippy clippy-driver rustdoc; do
    ln -s "$rustup_bin" "$WORK/shims/$tool"
done
path_without_cargo_bin="$(tr ':' '\n' <<<"$PATH" | grep -v -x "$(dirname "$rustup_bin")" | paste -sd: -)"
export PATH="$CARGO_HOME/bin:$WORK/shims:$path_without_cargo_bin"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
unset CARGO_TARGET_DIR
echo "ci-fresh: clone $WORK/repo, CARGO_HOME=$CARGO_HOME" >&2

start=$SECONDS
status=0
(cd "$WORK/repo" && CI=true bash .ci/run) || status=$?
echo "ci-fresh: .ci/run exited $status after $((SECONDS - start)) s" >&2
exit "$status"
