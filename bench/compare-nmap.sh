#!/usr/bin/env bash
# Runs nmap's smtp-open-relay and relayguard against the same real Postfix personalities on
# loopback and prints both verdicts side by side (docs/benchmarks.md). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
command -v nmap >/dev/null || apt-get install -y -qq nmap >/dev/null
cargo test --release --test bench_sweep compare_with_nmap -- --ignored --nocapture 2>&1 | grep -E '^\|'
