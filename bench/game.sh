#!/usr/bin/env bash
# Game install and update figures (issue 9) measured inside a throwaway booted systemd (needs
# root): player-visible downtime of an update against stop → update → start, the new version's
# disk use, and the time to publish; see tests/src/bin/left4me-bench-game.rs for how each is
# measured. LEFT4ME_BENCH_GAME_BYTES sets the size of the game (default 2 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/left4me-bench-game"
