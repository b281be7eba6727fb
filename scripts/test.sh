#!/usr/bin/env bash
# The whole test suite, set-up included: `./scripts/test.sh` (as root: the tests start real
# Postfix, Exim, OpenSMTPD, Sendmail, nsd and PostgreSQL on loopback, and a campus in network
# namespaces of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
# A CI-sized run of the namespace campus (issue 7): a /24 with real Postfix behind NAT, 5 ms delay
# and 0.1 % loss, swept from its own namespace; only addresses inside those namespaces are used.
smoke_passed=0 smoke_failed=0
if RELAYGUARD="$PWD/target/debug/relayguard" bench/campus-smoke.sh; then smoke_passed=1; else smoke_failed=1; status=1; fi
# One closing line for the whole suite: the sum over every test binary, plus the campus run.
awk -v sp="$smoke_passed" -v sf="$smoke_failed" '
    /^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
    END { printf "%d passed, %d failed\n", p + sp, f + sf }' "$log"
exit "$status"
