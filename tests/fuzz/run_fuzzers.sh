#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, two at a time, under ASan+UBSan:
#
#   tests/fuzz/run_fuzzers.sh 600                      # each target for 10 minutes
#   tests/fuzz/run_fuzzers.sh 60 fuzz_store_ops        # one target for a minute
#
# ZPAGE_FUZZ_JOBS: how many targets run at once (default: the number of cores).
# Builds the "fuzz" preset (clang, libFuzzer) first. Each target starts from its seeds (that it
# writes itself from the page corpora, plus tests/fuzz/seeds/<target>/) and every earlier
# finding (tests/fuzz/regressions/<target>/); what it learns stays in build/fuzz/corpus/<target>/
# for the next run. A finding (crash, failed check, timeout, leak) is copied into
# tests/fuzz/regressions/<target>/, where ctest replays it in every leg from then on, and the
# script exits 1 naming it. Logs: build/fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source_dir=$PWD

seconds=${1:?usage: tests/fuzz/run_fuzzers.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_stored_bytes fuzz_store_ops fuzz_backing_read fuzz_swap_device fuzz_region fuzz_memcached_session)
fi
jobs=${ZPAGE_FUZZ_JOBS:-$(nproc)}

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$(nproc)"

build=$source_dir/build/fuzz
mkdir -p "$build/logs"
run_one() {
    local t=$1
    local corpus=$build/corpus/$t findings=$build/findings/$t
    rm -rf "$findings"
    mkdir -p "$corpus" "$findings"
    ZPAGE_FUZZ_WRITE_SEEDS=$corpus "$build/tests/fuzz/$t" >/dev/null 2>&1
    mkdir -p "$source_dir/tests/fuzz/regressions/$t"
    local extra=("$source_dir/tests/fuzz/regressions/$t")
    [ -d "$source_dir/tests/fuzz/seeds/$t" ] && extra+=("$source_dir/tests/fuzz/seeds/$t")
    # The first corpus directory takes what the fuzzer learns; the others are only read.
    local rc=0
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$corpus" "${extra[@]}" >"$build/logs/$t.log" 2>&1 || rc=$?
    local found
    found=$(find "$findings" -type f | wc -l)
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    if [ "$found" -eq 0 ] && [ "$rc" -ne 0 ]; then
        echo "[fuzz] $t: the fuzzer stopped with status $rc before fuzzing (log: build/fuzz/logs/$t.log)"
        return 1
    elif [ "$found" -eq 0 ]; then
        echo "[fuzz] $t: ${seconds} s, $execs inputs, no finding"
    else
        mkdir -p "$source_dir/tests/fuzz/regressions/$t"
        cp "$findings"/* "$source_dir/tests/fuzz/regressions/$t/"
        echo "[fuzz] $t: FINDING after $execs inputs, copied to tests/fuzz/regressions/$t/:" \
            "$(cd "$findings" && ls | tr '\n' ' ')(log: build/fuzz/logs/$t.log)"
        return 1
    fi
}

status=0
pids=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
