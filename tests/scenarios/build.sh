#!/usr/bin/env bash
# Rebuild every tests/scenarios/bpf/*.c into tests/scenarios/bpf/obj/<name>.o
# with exactly `clang-19 -g -O2 -target bpf -c NAME.c`, run from src/ (so that
# the objects' debug info is the same whoever builds them). Idempotent: rebuilds
# everything each run (outputs are deterministic), removes objects whose source
# is gone.
# Usage: tests/scenarios/build.sh            (from anywhere)
set -euo pipefail

CLANG=${CLANG:-clang-19}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir="$here/bpf"
obj_dir="$here/bpf/obj"

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "build.sh: ERROR: $CLANG not found in PATH." >&2
	echo "build.sh: install it with: apt-get install clang-19 llvm-19" >&2
	exit 1
fi

mkdir -p "$obj_dir"

shopt -s nullglob
srcs=("$src_dir"/*.c)
if [ ${#srcs[@]} -eq 0 ]; then
	echo "build.sh: ERROR: no sources in $src_dir" >&2
	exit 1
fi

# Drop stale objects (source removed or renamed).
for o in "$obj_dir"/*.o; do
	n=$(basename "$o" .o)
	if [ ! -f "$src_dir/$n.c" ]; then
		echo "removing stale obj/$n.o"
		rm -f "$o"
	fi
done

built=0
failed=0
for s in "${srcs[@]}"; do
	n=$(basename "$s" .c)
	o="$obj_dir/$n.o"
	tmp="$o.tmp.$$"
	if (cd "$src_dir" && "$CLANG" -g -O2 -target bpf -c "$n.c" -o "$tmp"); then
		mv -f "$tmp" "$o"
		echo "built obj/$n.o"
		built=$((built + 1))
	else
		rm -f "$tmp"
		echo "build.sh: ERROR: failed to compile src/$n.c" >&2
		failed=$((failed + 1))
	fi
done

echo "build.sh: $built object(s) built, $failed failure(s)"
[ "$failed" -eq 0 ]
