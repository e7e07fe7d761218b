#!/usr/bin/env bash
# Coverage-guided fuzzing of the trace and ring readers: libFuzzer (the
# libfuzzer-sys crate) + AddressSanitizer over the harnesses in tests/robustness.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (make fuzz, FUZZ_SECONDS=…)
#
# Builds the targets with plain cargo and the instrumentation flags cargo-fuzz
# 0.13 passes (sancov counters, pc table, trace-compares, ASan, debug
# assertions, --cfg fuzzing): installing cargo-fuzz itself took a fresh
# machine ~4 minutes. The flags are unstable: on the stable toolchain
# RUSTC_BOOTSTRAP=1 allows them (no nightly needed). A crash fails the run, and
# its input is copied to fuzz/regressions/<target>/ so a normal test replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(trace_reader trace_commands ring_reader)

triple=$(rustc -vV | sed -n 's/^host: //p')
build=target/fuzz-build
flags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cllvm-args=-sanitizer-coverage-stack-depth
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0
    --cfg fuzzing
    -Zsanitizer=address
    -Cdebug-assertions
    -Coverflow-checks
)

cargo run --release -q -p ttalloc-robustness --example seeds -- target/fuzz/corpus
# --target: the flags then apply to the fuzzed code but not to build scripts.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="${flags[*]}" cargo build --manifest-path fuzz/Cargo.toml \
    --target "$triple" --release --config 'profile.release.debug="line-tables-only"' \
    --target-dir "$build" --bins

status=0
for t in "${targets[@]}"; do
    art=target/fuzz/artifacts/$t
    log=target/fuzz/$t.log
    rm -rf "$art"
    mkdir -p "$art" "target/fuzz/corpus/$t" "fuzz/regressions/$t"
    # New coverage goes to the first corpus dir; regressions are seeds too.
    if "$build/$triple/release/$t" "target/fuzz/corpus/$t" "fuzz/regressions/$t" \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
        -artifact_prefix="$art/" -print_final_stats=1 >"$log" 2>&1; then
        verdict="no crash"
    else
        verdict="CRASH"
        status=1
        for f in "$art"/*; do
            [ -f "$f" ] && cp "$f" "fuzz/regressions/$t/" && echo "fuzz: kept $f as fuzz/regressions/$t/$(basename "$f")"
        done
        grep -E "panicked|ERROR|SUMMARY" "$log" | head -5 || true
    fi
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz $t: ${execs:-?} executions in ${secs}s, $verdict (log: $log)"
done
exit $status
