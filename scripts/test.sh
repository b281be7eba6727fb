#!/usr/bin/env bash
# The whole test suite, set-up included: `./scripts/test.sh` (as root: the tests start real
# Postfix, Exim, OpenSMTPD, Sendmail, nsd and PostgreSQL on loopback, and a campus in network
# namespaces of their own). Extra arguments go to `cargo test`.
#
# The last line counts every test that ran, plus one failure for each test binary that could not
# be built or did not run to its end (a crash, a kill), so a short count can never hide tests that
# never ran.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
./scripts/check-test-prereqs.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: one failing binary must not stop the others from running.
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# A CI-sized run of the namespace campus: a /24 with real Postfix behind NAT, 5 ms delay and
# 0.1 % loss, swept from its own namespace; only addresses inside those namespaces are used.
smoke_passed=0 smoke_failed=0
if RELAYGUARD="$PWD/target/debug/relayguard" bench/campus-smoke.sh; then smoke_passed=1; else smoke_failed=1; status=1; fi
awk -v sp="$smoke_passed" -v sf="$smoke_failed" -v cargo_status="$status" '
    # "     Running tests/cli.rs (target/debug/deps/cli-0123abcd)": a test binary starts.
    /^ +Running / { current = $0; sub(/^ +Running /, "", current); started[++n] = current; finished[current] = 0 }
    /^test result:/ {
        finished[current] = 1
        for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) }
    }
    /^error: could not compile/ { build[++nb] = $0 }
    END {
        for (i = 1; i <= n; i++) if (!finished[started[i]]) { print "test binary did not run to its end (crashed or killed): " started[i]; f++ }
        for (i = 1; i <= nb; i++) { print "build failed: " build[i]; f++ }
        if (cargo_status != 0 && f == 0 && sf == 0) { print "cargo test failed without a failing test (see above)"; f++ }
        printf "%d passed, %d failed\n", p + sp, f + sf
    }' "$log"
exit "$status"
