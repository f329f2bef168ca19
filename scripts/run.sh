#!/usr/bin/env bash
# The main job: set up, build, and run the CLI on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release -q -p shim-std --bin kptr-model -- "$@"
