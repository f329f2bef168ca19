#!/usr/bin/env bash
# Rebuild every tests/scenarios/bpf/*.c into tests/scenarios/bpf/obj/<name>.o with
# exactly `clang-19 -g -O2 -target bpf -c NAME.c`, run from bpf/ (the fixtures'
# build script, on these directories).
# Usage: tests/scenarios/build.sh            (from anywhere)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../fixtures/build.sh" "$here/bpf" "$here/bpf/obj"
