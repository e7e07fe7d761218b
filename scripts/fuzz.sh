#!/usr/bin/env bash
# Coverage-guided fuzzing of the trace and ring readers: cargo-fuzz
# (libFuzzer + AddressSanitizer) over the harnesses in tests/robustness.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (make fuzz, FUZZ_SECONDS=…)
#
# Installs cargo-fuzz into target/tools on first use. The instrumentation and
# ASan need unstable rustc flags: on the stable toolchain RUSTC_BOOTSTRAP=1
# allows them (no nightly needed). A crash fails the run, and its input is
# copied to fuzz/regressions/<target>/ so a normal test replays it for good.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(trace_reader trace_commands ring_reader)

cargo_fuzz=target/tools/bin/cargo-fuzz
if ! [ -x "$cargo_fuzz" ]; then
    cargo install cargo-fuzz --version 0.13.2 --locked --root target/tools
fi
export RUSTC_BOOTSTRAP=1
fuzz=("$cargo_fuzz" --fuzz-dir fuzz --target-dir target/fuzz-build)

cargo run --release -q -p ttalloc-robustness --example seeds -- target/fuzz/corpus
"$cargo_fuzz" build --fuzz-dir fuzz --target-dir target/fuzz-build

status=0
for t in "${targets[@]}"; do
    art=target/fuzz/artifacts/$t
    log=target/fuzz/$t.log
    rm -rf "$art"
    mkdir -p "$art" "target/fuzz/corpus/$t" "fuzz/regressions/$t"
    # New coverage goes to the first corpus dir; regressions are seeds too.
    if "$cargo_fuzz" run --fuzz-dir fuzz --target-dir target/fuzz-build "$t" \
        "target/fuzz/corpus/$t" "fuzz/regressions/$t" -- \
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
