#!/usr/bin/env bash
# Runs one Pemba node on ./pemba-data, building it first (installing the C toolchain and libclang
# that rocksdb needs if they are missing). Arguments go to `pemba serve`, e.g.
#   bash deploy/serve-local.sh --grpc-preshared-key somerandomkeyhere
source "$(dirname "$0")/../.ci/env.sh"
pemba_install_prerequisites
cd "$PEMBA_ROOT"
# Cargo shows its progress (each crate as it compiles, and a progress bar on a terminal): the
# first build compiles RocksDB's C++ and takes about 20 minutes on 2 cores; later ones, seconds.
if [[ ! -x "$CARGO_TARGET_DIR/release/pemba" ]]; then
    echo "building pemba (release) into $CARGO_TARGET_DIR: the first build takes about 20 minutes on 2 cores" >&2
fi
cargo build --release --locked -p pemba
exec "$CARGO_TARGET_DIR/release/pemba" serve "$@"
