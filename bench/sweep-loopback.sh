#!/usr/bin/env bash
# Sweeps a loopback /16 (and a /20) holding 8 real Postfix instances with the release binary and
# prints wall time, CPU time, addresses/s and peak RSS as a Markdown table (docs/benchmarks.md).
# Only loopback is touched. Needs root (loopback aliases for Postfix).
#   bench/sweep-loopback.sh                       # default: --rate 0 --concurrency 2048
#   RELAYGUARD_BENCH_ARGS="--rate 20000" bench/sweep-loopback.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cargo test --release --test bench_sweep sweep_loopback_blocks -- --ignored --nocapture 2>&1 | grep -E '^\||^extra'
