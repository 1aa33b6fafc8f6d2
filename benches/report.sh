#!/usr/bin/env bash
# Reproduces the README's performance table: builds Pemba and pemba-bench (release), installs
# the SpiceDB server (v1.56.2, through .ci/install-clients.sh) and the OpenFGA server (pinned
# below) with `go install` into ~/.cache/pemba/go-bin, starts a PostgreSQL for both on
# 127.0.0.1 (synchronous_commit on), and runs `pemba-bench report`: every server pinned to the
# upper half of the CPUs (GOMAXPROCS and tokio's workers set to that count), the load generator
# to the lower half. Arguments go to `pemba-bench report` (e.g. --relationships 100000).
# PEMBA_BENCH_PROFILE=dev uses the debug build the test suite makes (CI's smoke run: answers
# cross-checked, timings meaningless).
source "$(dirname "$0")/../.ci/env.sh"
cd "$PEMBA_ROOT"

OPENFGA_VERSION=v1.22.1
CACHE="$HOME/.cache/pemba"
GO_BIN="$CACHE/go-bin"

pemba_install_prerequisites
command -v taskset >/dev/null || { echo "taskset not found (util-linux)" >&2; exit 1; }
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "installing postgresql (the SpiceDB and OpenFGA servers' datastore)" >&2
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
bash .ci/install-clients.sh
# `go install` builds report "dev" as their version: the module's version is in the binary.
openfga_version() { go version -m "$GO_BIN/openfga" 2>/dev/null | awk '$1 == "mod" { print $3 }'; }
if [[ "$(openfga_version)" != "$OPENFGA_VERSION" ]]; then
    echo "building the OpenFGA server $OPENFGA_VERSION (about 2 minutes cold on 2 cores)" >&2
    GOBIN="$GO_BIN" GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        go install "github.com/openfga/openfga/cmd/openfga@$OPENFGA_VERSION"
fi
if [[ "${PEMBA_BENCH_PROFILE:-release}" == dev ]]; then
    # The test suite's package selection, so that nothing it built is linked again.
    cargo build --locked --workspace --exclude pemba-simtests --bins
    bin_dir="$CARGO_TARGET_DIR/debug"
else
    cargo build --release --locked -p pemba -p pemba-benches --bin pemba --bin pemba-bench
    bin_dir="$CARGO_TARGET_DIR/release"
fi

# The cores: servers on the upper half, the load generator on the lower half.
cpus=$(nproc)
if ((cpus >= 2)); then
    half=$((cpus / 2))
    client_cpus="0-$((half - 1))"
    server_cpus="$half-$((cpus - 1))"
    ((half > 1)) || client_cpus=0
    ((cpus - half > 1)) || server_cpus=$half
else
    client_cpus=0
    server_cpus=0
fi

# PostgreSQL, as the SpiceDB and OpenFGA servers' production datastore: fsync and
# synchronous_commit on (the defaults), pinned to the server cores with them.
pg_bin="$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -1)"
pg_dir="$(mktemp -d /tmp/pemba-bench-postgres.XXXXXX)"
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[[ $(id -u) -ne 0 ]] || chown postgres "$pg_dir"
stop_postgres() {
    as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_postgres EXIT
as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
as_postgres taskset -c "$server_cpus" "$pg_bin/pg_ctl" -D "$pg_dir/data" \
    -l "$pg_dir/postgres.log" -w -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 \
    -c synchronous_commit=on -c fsync=on -c track_commit_timestamp=on -c max_connections=300" \
    start >/dev/null
for database in spicedb openfga; do
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$database"
done

taskset -c "$client_cpus" "$bin_dir/pemba-bench" report \
    --server-cpus "$server_cpus" --spicedb "$GO_BIN/spicedb" --openfga "$GO_BIN/openfga" \
    --postgres "postgres://postgres@127.0.0.1:$pg_port" "$@"
