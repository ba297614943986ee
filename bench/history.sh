#!/usr/bin/env bash
# `left4mectl history` over 10,000 revisions (issue 12, target ≤ 50 ms): see
# history/src/bin/left4me-bench-history.rs for how the history is filled and the verb timed.
# Usage: bench/history.sh [PATH/TO/left4mectl]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
cargo build --release --quiet -p left4me-history --bin left4me-bench-history
cargo build --release --quiet -p left4mectl --bin left4mectl
exec "$bin/left4me-bench-history" "${1:-$bin/left4mectl}"
