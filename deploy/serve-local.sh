#!/usr/bin/env bash
# Runs one Pemba node on ./pemba-data, building it first (installing the C toolchain and libclang
# that rocksdb needs if they are missing). Arguments go to `pemba serve`, e.g.
#   bash deploy/serve-local.sh --grpc-preshared-key somerandomkeyhere
source "$(dirname "$0")/../.ci/env.sh"
pemba_install_prerequisites
cd "$PEMBA_ROOT"
cargo build --release --locked -q -p pemba
exec "$CARGO_TARGET_DIR/release/pemba" serve "$@"
