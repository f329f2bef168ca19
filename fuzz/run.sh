#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the pinned stable toolchain (no
# cargo-fuzz, no nightly): the targets are built with the sanitizer-coverage passes
# that cargo-fuzz would ask for, then each runs for SECONDS (default 45) from a seed
# corpus made of the fixtures' and the corpus's objects (.BTF extracted with
# llvm-objcopy-19) and what earlier runs found. Each target first replays the
# inputs that once failed (fuzz/regressions/TARGET/, kept in git), in the same
# overflow-checked build. A crash stops the run with a non-zero status and leaves
# its input in fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ with the
# fix.
# Usage: bash fuzz/run.sh [SECONDS] [TARGET ...]
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"
secs=${1:-45}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(btf_parse btf_load_records split_btf elf_object)
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --target "$host" --bins
objcopy=$(command -v llvm-objcopy-19 || command -v llvm-objcopy || true)
objs=(../tests/fixtures/obj/*.o ../tests/fixtures/corpus/obj/*.o ../tests/scenarios/bpf/obj/*.o)
for t in "${targets[@]}"; do
	mkdir -p "seeds/$t" "corpus/$t" "artifacts/$t"
	if [ "$t" = elf_object ]; then
		cp -f "${objs[@]}" "seeds/$t/"
	elif [ -n "$objcopy" ]; then
		for o in "${objs[@]}"; do
			"$objcopy" --dump-section ".BTF=seeds/$t/$(basename "$o" .o).btf" "$o" /dev/null 2>/dev/null || true
		done
	fi
	old=(regressions/"$t"/*)
	if [ ${#old[@]} -gt 0 ]; then
		echo "fuzz: $t replays ${#old[@]} input(s) that once failed"
		if ! "./target/$host/release/$t" "${old[@]}" >"artifacts/$t/replay.log" 2>&1; then
			grep -E "panicked|SUMMARY|Running" "artifacts/$t/replay.log" >&2 || true
			echo "fuzz: $t fails again on an input of fuzz/regressions/$t/" >&2
			exit 1
		fi
	fi
	echo "fuzz: $t for ${secs}s"
	"./target/$host/release/$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t" \
		2>&1 | grep -E "^(stat::|Done|==|SUMMARY|INFO: Seed|#[0-9]+ +DONE)|artifact|panicked" || true
	# Any of the three kinds (each glob expands to nothing when it matches nothing).
	found=("artifacts/$t"/crash-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-*)
	if [ ${#found[@]} -gt 0 ]; then
		echo "fuzz: $t found an input that fails: see fuzz/artifacts/$t/" >&2
		exit 1
	fi
done
