#!/usr/bin/env bash
# Mutation testing of the teardown and synchronisation code (issue 14): cargo-mutants
# over kernel-core's obj/, sync/, record/parse.rs, map/runtime.rs and module.rs,
# with the workspace tests as the test command (release builds). About 1,100 mutants:
# many hours on a 2-core machine, so it is not part of .ci/run. The loom models are
# not run per mutant (cargo-mutants runs `cargo test`); run them on the survivors by
# hand (RUSTFLAGS="--cfg loom" cargo test --release -p loom-tests --target-dir
# target-loom) before calling a survivor equivalent.
# Usage: bash scripts/mutants.sh [FILE ...]   (default: the files above)
# Results: mutants.out/ (caught.txt, missed.txt, timeout.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(
	'kernel-core/src/obj/*.rs' 'kernel-core/src/sync/*.rs'
	kernel-core/src/record/parse.rs kernel-core/src/map/runtime.rs kernel-core/src/module.rs
)
args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
exec cargo mutants "${args[@]}" --test-workspace=true --cargo-arg=--release --timeout 600 -j 1
