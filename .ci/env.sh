# Shared setup for Pemba's scripts: sourced, not run.
# Installs what a fresh machine lacks (the Rust build needs a C toolchain and libclang for
# rocksdb's bindings) and keeps build output in a cache outside the clone.
set -euo pipefail

PEMBA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PEMBA_ROOT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pemba-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The simulation is built with `--cfg tokio_unstable` (seeded tokio), so it gets its own target
# directory: the flag would otherwise rebuild everything, RocksDB included, in the main one.
export PEMBA_SIM_TARGET_DIR="${PEMBA_SIM_TARGET_DIR:-$HOME/.cache/pemba-sim-target}"

pemba_install_prerequisites() {
  local missing=()
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
  command -v cc >/dev/null || missing+=(build-essential)
  command -v clang >/dev/null || missing+=(clang)
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null \
    || missing+=(libclang-dev)
  # The clock tests shift one node's wall clock with libfaketime.
  compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" >/dev/null || missing+=(faketime)
  # The TLS tests check the certificates deploy/make-cluster-certs.sh makes.
  command -v openssl >/dev/null || missing+=(openssl)
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} (needed to build rocksdb and run the tests)" >&2
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
