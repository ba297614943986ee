#!/usr/bin/env bash
# Workshop overlay figures measured inside a throwaway booted systemd (needs root) with the
# stand-in Steam Web API: an unchanged refresh of a 200-item collection (time beyond the API
# round trips, bytes downloaded) and ten overlays sharing 50 items (disk against one copy).
# See tests/src/bin/left4me-bench-workshop.rs for what each figure is.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/left4me-bench-workshop"
