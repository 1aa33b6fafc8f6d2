#!/usr/bin/env bash
# Installs what the client-compatibility tests run, none of it committed: the SpiceDB server
# (built with `go install` at a pinned version into ~/.cache/pemba/go-bin), our Go suite over
# SpiceDB's Go client (built into the same place) and SpiceDB's official Node client (npm, at the version pinned in crates/pemba/tests/node/package-lock.json,
# into ~/.cache/pemba/node-client). Idempotent: a second run only checks what is there.
set -euo pipefail

SPICEDB_VERSION=v1.56.2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${PEMBA_CLIENTS_DIR:-$HOME/.cache/pemba}"
GO_BIN="$CACHE/go-bin"
NODE_DIR="$CACHE/node-client"

spicedb_version() { "$GO_BIN/spicedb" version 2>/dev/null | head -1 || true; }
if [[ "$(spicedb_version)" != "spicedb $SPICEDB_VERSION" ]]; then
    command -v go >/dev/null || { echo "go not found: the SpiceDB server is built with go" >&2; exit 1; }
    echo "building the SpiceDB server $SPICEDB_VERSION (about 2.5 minutes cold on 2 cores)" >&2
    GOBIN="$GO_BIN" GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        go install "github.com/authzed/spicedb/cmd/spicedb@$SPICEDB_VERSION"
fi

# Our Go suite over SpiceDB's Go client (authzed-go, pinned in tests/go/go.mod).
GO_SUITE="$GO_BIN/pemba-go-client-suite"
GO_SRC="$ROOT/crates/pemba/tests/go"
if [[ ! -x "$GO_SUITE" || -n "$(find "$GO_SRC" -newer "$GO_SUITE" -type f)" ]]; then
    command -v go >/dev/null || { echo "go not found: the Go client suite is built with go" >&2; exit 1; }
    (cd "$GO_SRC" && GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        go build -o "$GO_SUITE" .)
fi

mkdir -p "$NODE_DIR"
if ! cmp -s "$ROOT/crates/pemba/tests/node/package-lock.json" "$NODE_DIR/package-lock.json" \
    || [[ ! -d "$NODE_DIR/node_modules/@authzed/authzed-node" ]]; then
    command -v npm >/dev/null || { echo "npm not found: the Node client is installed with npm" >&2; exit 1; }
    cp "$ROOT/crates/pemba/tests/node/package.json" "$ROOT/crates/pemba/tests/node/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "SpiceDB server: $GO_BIN/spicedb ($(spicedb_version)); Node client: $NODE_DIR"
