#!/usr/bin/env bash
# Enforces the architecture's invariants written as absences (docs/ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fail=0
deps() { cargo tree -q --locked -p "$1" -e normal --prefix none | sed 's/ v.*//' | sort -u; }
forbid() { # crate, regex of forbidden dependencies, reason
  local found
  found=$(deps "$1" | grep -E "^($2)$" || true)
  if [[ -n "$found" ]]; then
    echo "FAIL: $1 depends on $(echo "$found" | tr '\n' ' ')- $3"
    fail=1
  else
    echo "ok: $1 does not depend on $2"
  fi
}
forbid labchat-domain 'tokio|mongodb|bson|tungstenite|tokio-tungstenite|serde_json|hyper|async-trait' "the domain is synchronous and I/O-free"
forbid labchat-core 'mongodb|bson|tungstenite|tokio-tungstenite|serde_json|hyper' "ports know no driver and no wire format"
forbid labchat-memory 'mongodb|bson|tungstenite|tokio-tungstenite|serde_json|hyper' "the in-memory adapters know no driver and no wire format"
forbid labchat-transport-ws 'mongodb|bson' "the transport knows no database"
forbid labchat-store-mongo 'tungstenite|tokio-tungstenite|hyper' "the store knows no wire format"
exit $fail
