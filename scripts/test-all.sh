#!/usr/bin/env bash
# Every test: set-up, formatting and lints, the workspace tests (kernel comparisons
# included; KPTR_REQUIRE_KERNEL=1 makes a comparison that cannot run a failure), then
# the loom models in their own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --release --workspace
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
  cargo test --release -p loom-tests --target-dir target-loom -- --test-threads=1
