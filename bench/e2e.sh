#!/usr/bin/env bash
# End-to-end figures measured inside a throwaway booted systemd (needs root); see
# tests/src/bin/left4me-bench-e2e.rs for what each figure is.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/left4me-bench-e2e"
