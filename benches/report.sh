#!/usr/bin/env bash
# Reproduces the README's performance table: builds Pemba and pemba-bench (release), installs real
# SpiceDB's embedded library (the differential test's oracle, into ~/.cache/pemba/oracle) and
# runs every workload against Pemba, SpiceDB in-process and a no-op gRPC service.
# Arguments go to `pemba-bench report` (e.g. --sizes 100000 --duration 5s).
source "$(dirname "$0")/../.ci/env.sh"
cd "$PEMBA_ROOT"
pemba_install_prerequisites
bash crates/pemba-difftest/oracle/install.sh
cargo build --release --locked -p pemba -p pemba-benches --bin pemba --bin pemba-bench
exec "$CARGO_TARGET_DIR/release/pemba-bench" report "$@"
