#!/usr/bin/env bash
# The reaction of `left4mectl restart --when-empty` after the last player leaves (issue 11,
# target ≤ 1 s), measured inside a throwaway booted systemd (needs root); see
# tests/src/bin/left4me-bench-when-empty.rs for how it is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/left4me-bench-when-empty"
