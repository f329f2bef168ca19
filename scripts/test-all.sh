#!/usr/bin/env bash
# Every test: set-up, formatting and lints, the workspace tests (kernel comparisons
# included; KPTR_REQUIRE_KERNEL=1 makes a comparison that cannot run a failure) under
# the suite-wide allocator tally, then the loom models in their own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# kernel-core on its own (without the features other crates turn on) and the docs:
# warning-free too.
cargo clippy -p kernel-core --lib -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
# Every allocator model of the workspace tests adds its counts to one tally file;
# the suite passes only with zero leaks, double frees and uses after free in it.
tally="$(mktemp -t kptr-tally.XXXXXX)"
trap 'rm -f "$tally"' EXIT
KPTR_TALLY_FILE="$tally" cargo test --release --workspace
cargo run -q --release -p shim-std --bin kptr-tally -- "$tally" \
  teardown_fields teardown_example cli
# kernel-core's unit tests without `std` too: the workspace build turns it on, and a
# build without tasks keeps no per-task lists (its own tests run only here).
cargo test --release -p kernel-core --lib
# Every loom model finishes at 3 preemptions (about 4 s of model time; README).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
  cargo test --release -p loom-tests --target-dir target-loom -- --test-threads=1
