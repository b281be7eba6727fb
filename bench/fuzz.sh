#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a fixed number of executions, on the stable toolchain.
#
# The targets use libfuzzer-sys and the cargo-fuzz layout, but are built here with plain cargo
# and the instrumentation flags cargo-fuzz passes with `--sanitizer none` (coverage counters,
# comparison tracing, `--cfg fuzzing`), plus debug assertions and overflow checks, so neither
# nightly nor cargo-fuzz has to be installed. See docs/reliability.md.
#
#   bench/fuzz.sh              # FUZZ_RUNS executions per target (default 5,000,000: 10^7 total)
#   FUZZ_RUNS=200000 bench/fuzz.sh
#   bench/fuzz.sh --smoke      # build, then run each target once on every seed (CI)
#
# New inputs go to fuzz/scratch/<target>/ (ignored by git), never into the committed seeds in
# fuzz/corpus/<target>/; a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=(parse_reply session)
runs=${FUZZ_RUNS:-5000000}
host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# Not --locked: fuzz/Cargo.lock follows the scanner's dependencies as they change (cargo adds what
# is new and keeps every version it already has).
cargo build --release --target "$host" --bins

for t in "${targets[@]}"; do
    bin="target/$host/release/$t"
    if [ "${1:-}" = "--smoke" ]; then
        "$bin" -timeout=10 corpus/"$t"/* >/dev/null 2>&1 ||
            { echo "fuzz $t: a seed fails" >&2; "$bin" corpus/"$t"/* 2>&1 | tail -20 >&2; exit 1; }
        echo "fuzz $t: $(ls corpus/"$t" | wc -l) seeds ok"
        continue
    fi
    mkdir -p "scratch/$t" "artifacts/$t"
    log="scratch/$t.log"
    start=$SECONDS
    "$bin" -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "scratch/$t" "corpus/$t" >"$log" 2>&1 ||
        { tail -40 "$log" >&2; echo "fuzz $t: FAILED (input in fuzz/artifacts/$t/)" >&2; exit 1; }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: $execs executions in $((SECONDS - start)) s ($rate exec/s, $cov), no crash"
done
