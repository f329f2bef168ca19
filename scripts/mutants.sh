#!/usr/bin/env bash
# Mutation testing of the teardown and synchronisation code: cargo-mutants
# over kernel-core's sync/, module.rs, record/parse.rs, obj/, tally.rs and map/runtime.rs with
# the workspace tests and the loom suite as the test command, run in stages so that
# 1,100 mutants fit on a 2-core machine. A mutant a stage catches is caught; only the
# ones it misses go on to the next stage (cargo-mutants --iterate), so the verdict is
# that of "workspace tests + loom suite at bound 3":
#   unit   kernel-core's unit tests (debug, feature std: the host's threads as tasks,
#          as the workspace builds it; without it the per-task tests do not run)
#   loom2  the loom suite at LOOM_MAX_PREEMPTIONS=2 (opt-level 1: unoptimised, a
#          model overflows loom's 32 KiB coroutine stacks; every seeded fault is
#          caught at 2)
#   int    the integration tests of teardown, the helpers' edges and the record rules
#          (debug; record_edges, htab_updates, map_lookups and scenarios_kernel ask
#          the kernel)
#   loom3  the loom suite at LOOM_MAX_PREEMPTIONS=3, release, as scripts/test-all.sh
#   ws     `cargo test --workspace` (debug): the tests of scripts/test-all.sh, kernel
#          comparisons included
# A mutant only the loom build cannot compile (a type that differs under --cfg loom)
# is unviable to a loom stage alone; the int and ws stages then judge it by itself
# (results in $MUTANTS_OUT/<file>/gap).
# The debug stages build without overflow checks or debug assertions, as release
# does, so they catch what the release suite catches and nothing more, in a third of
# the build time. Each stage's tests first run on the unmutated tree, once per
# invocation: a stage whose tests fail unmutated would call every mutant caught, so
# the script stops there (cargo-mutants' own baseline tests the mutated file's
# package, not the stage's).
# The tree is copied to $MUTANTS_OUT/src and mutated in place there (one build
# directory, incremental builds); each file gets its own results directory
# $MUTANTS_OUT/<file>/mutants.out (caught.txt, missed.txt, timeout.txt, unviable.txt,
# previously_caught.txt) and each stage's verdicts in $MUTANTS_OUT/<file>/*.log
# (`scripts/mutants.sh --summary` counts them per file). Running the script again resumes: a mutant once caught or
# unviable is not tested again, so after adding a test only the survivors run.
# Not part of .ci/run: hours on this machine (README, "Mutation testing"). The loom
# stages run the models on several test threads (their bookkeeping is per thread):
# cargo-mutants passes trailing test arguments to cargo without "--".
# Usage: bash scripts/mutants.sh [FILE ...]   (default: the files below, in this order)
#   MUTANTS_OUT (default ./mutants-out), MUTANTS_STAGES (default "unit loom2 int loom3 ws"),
#   MUTANTS_VMEM_KB (default 8388608: each stage's address-space limit)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${MUTANTS_OUT:-$root/mutants-out}"
stages="${MUTANTS_STAGES:-unit loom2 int loom3 ws}"
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked
default_files=(
	kernel-core/src/sync/mod.rs kernel-core/src/sync/rcu.rs
	kernel-core/src/sync/refcount.rs kernel-core/src/sync/spinlock.rs
	kernel-core/src/sync/task.rs kernel-core/src/sync/warn.rs kernel-core/src/sync/word.rs
	kernel-core/src/module.rs kernel-core/src/record/parse.rs
	kernel-core/src/obj/helpers.rs kernel-core/src/obj/free_fields.rs
	kernel-core/src/obj/local_frees.rs kernel-core/src/obj/mem.rs
	kernel-core/src/obj/uptr.rs kernel-core/src/obj/user_pages.rs
	kernel-core/src/obj/runtime.rs kernel-core/src/tally.rs kernel-core/src/map/runtime.rs
)
files=("$@")
[ ${#files[@]} -gt 0 ] || [ "${1:-}" = --summary ] || files=("${default_files[@]}")
# The integration tests of teardown, the helpers' edges, the record rules, hash map
# updates, value locks, lookups and the run-time scenarios; record_edges,
# htab_updates, map_lookups and scenarios_kernel ask the kernel too (15 BTF loads, map
# updates and lookups, the scenarios: about 10 s).
int_tests=(teardown_fields teardown_example mem_tally free_fields_profiles map_lifetime
	local_storage uptr migrate_task kernel_btf_lifetime module_refs helper_edges record_edges
	htab_updates value_locks map_lookups scenarios_kernel)

src="$out/src"
# Address space per stage, in KiB (8 GiB): a mutant that makes a loom model grow
# without bound fails its test instead of waking the OOM killer (a loom model
# reached 24 GB resident on this 24 GB machine).
vmem="${MUTANTS_VMEM_KB:-8388608}"

config() { # NAME: the stage's environment (ENV), its cargo-mutants arguments (MUT)
	# and the same tests as a `cargo test` command line (TEST)
	ENV=(CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false CARGO_PROFILE_DEV_DEBUG_ASSERTIONS=false)
	case "$1" in
	unit) ENV+=(CARGO_TARGET_DIR="$out/target")
		MUT=(--test-package kernel-core --features std --cargo-test-arg=--lib --timeout 15)
		TEST=(-p kernel-core --lib --features std) ;;
	loom2) ENV+=(CARGO_TARGET_DIR="$out/target-loom" RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2
		CARGO_PROFILE_DEV_OPT_LEVEL=1)
		MUT=(--test-package loom-tests --timeout 60)
		TEST=(-p loom-tests) ;;
	int) ENV+=(CARGO_TARGET_DIR="$out/target")
		MUT=(--test-package kptr-tests --timeout 60)
		TEST=(-p kptr-tests)
		for t in "${int_tests[@]}"; do MUT+=(--cargo-test-arg=--test="$t"); TEST+=(--test "$t"); done ;;
	loom3) ENV+=(CARGO_TARGET_DIR="$out/target-loom" RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3)
		MUT=(--test-package loom-tests --cargo-arg=--release --timeout 120)
		TEST=(-p loom-tests --release) ;;
	ws) ENV+=(CARGO_TARGET_DIR="$out/target")
		MUT=(--test-workspace=true --timeout 900)
		TEST=(--workspace) ;;
	*) echo "no stage $1" >&2; exit 1 ;;
	esac
}

baseline() { # NAME: the stage's tests on the unmutated tree, once per invocation
	local name="$1"
	[ -e "$out/.baseline-$name" ] && return 0
	config "$name"
	echo "== $(date -u +%FT%TZ) stage $name on the unmutated tree"
	if ! (cd "$src" && ulimit -v "$vmem" && env "${ENV[@]}" nice -n 10 cargo test "${TEST[@]}" \
		>"$out/baseline-$name.log" 2>&1 </dev/null); then
		echo "stage $name fails on the unmutated tree ($out/baseline-$name.log):" \
			"it would call every mutant caught" >&2
		exit 4
	fi
	touch "$out/.baseline-$name"
}

stage() { # NAME FILE [RE]: one stage over FILE's mutants not yet caught (named by RE)
	local name="$1" file="$2" dir="$out/${2//\//_}" re="${3:-}"
	baseline "$name"
	config "$name"
	local res="$dir"
	[ -z "$re" ] || res="$dir/gap"
	local args=(--in-place -d "$src" -f "$file" --baseline skip --iterate
		-o "$res" --no-shuffle --build-timeout 900 "${MUT[@]}")
	[ -z "$re" ] || args+=(--re "$re")
	mkdir -p "$res"
	echo "== $(date -u +%FT%TZ) $file: stage $name${re:+ (only $re)}"
	# cargo-mutants exits 2 when a mutant survives, 3 on a timeout: the next stage
	# takes those; anything else but 0 is an error.
	local rc=0
	(ulimit -v "$vmem" && env "${ENV[@]}" nice -n 10 cargo mutants "${args[@]}" </dev/null) || rc=$?
	case $rc in 0 | 2 | 3) ;; *) echo "cargo mutants failed ($rc)" >&2; exit "$rc" ;; esac
	# Each stage's verdicts, kept (cargo-mutants folds earlier unviable mutants into
	# previously_caught.txt): "STAGE MUTANT" lines in caught.log, unviable.log, ...
	for k in caught unviable timeout missed; do
		sed "s|^|$name |" "$res/mutants.out/$k.txt" >>"$dir/$k.log"
	done
	[ -s "$res/mutants.out/missed.txt" ] || [ -s "$res/mutants.out/timeout.txt" ]
}

# A mutant that only the loom build cannot compile (a type that differs under
# --cfg loom) is unviable to the loom stages alone: the int and ws stages judge it.
loom_gap() { # FILE
	local file="$1" dir="$out/${1//\//_}" m
	{ grep -E '^loom[23] ' "$dir/unviable.log" 2>/dev/null || true; } | cut -d' ' -f2- | sort -u |
		while IFS= read -r m; do
			grep -qxF "$m" <(cut -d' ' -f2- "$dir/caught.log" 2>/dev/null) && continue
			# The whole name, as a regular expression.
			local re
			re="^$(printf '%s' "$m" | sed 's/[][\.*^$(){}?+|]/\\&/g')\$"
			for s in int ws; do stage "$s" "$file" "$re" || break; done
		done
}

summary() { # per file: generated, caught, unviable, timeouts, survivors (named)
	local f dir gen c u t m
	for f in "${files[@]}"; do
		dir="$out/${f//\//_}"
		gen=$(cargo mutants --list -d "$root" -f "$f" | wc -l)
		[ -d "$dir" ] || { echo "$f: $gen mutants, not run"; continue; }
		c=$(cut -d' ' -f2- "$dir/caught.log" 2>/dev/null | sort -u || true)
		# Unviable and caught by none (a loom stage's unviable may be caught later).
		u=$(cut -d' ' -f2- "$dir/unviable.log" 2>/dev/null | sort -u | comm -23 - <(echo "$c") || true)
		# Missed or timed out in the last stage of the last run, caught by none.
		m=$(sort -u "$dir/mutants.out/missed.txt" "$dir/mutants.out/timeout.txt" |
			comm -23 - <(echo "$c"))
		t=$(sort -u "$dir/mutants.out/timeout.txt" | comm -23 - <(echo "$c"))
		echo "$f: $gen mutants, $(echo -n "$c" | grep -c .) caught, $(echo -n "$u" | grep -c .) unviable, $(echo -n "$t" | grep -c .) timeouts, $(echo -n "$m" | grep -c .) survived"
		[ -z "$m" ] || echo "$m" | sed 's/^/  survived: /'
	done
}

if [ "${1:-}" = --summary ]; then
	shift
	files=("$@")
	[ ${#files[@]} -gt 0 ] || files=("${default_files[@]}")
	summary
	exit 0
fi

# The tree as it is now (tracked files), mutated in place there. Extracted with the
# time of extraction (-m): with their own older times, files changed since the last
# build there would look built already, and the unmutated-tree check would build
# stale code.
mkdir -p "$src"
(cd "$root" && git ls-files -z | tar --null -T - -cf -) | tar -xmf - -C "$src"
rm -f "$out"/.baseline-*
for f in "${files[@]}"; do
	for s in $stages; do stage "$s" "$f" || break; done
	loom_gap "$f"
done
