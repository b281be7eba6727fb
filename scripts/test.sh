#!/usr/bin/env bash
# The whole test suite, set-up included: `./scripts/test.sh` (as root: the tests start real
# Postfix instances on loopback aliases).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo test --workspace --all-targets "$@"
# A CI-sized run of the namespace campus (issue 7): a /24 with real Postfix behind NAT, 5 ms delay
# and 0.1 % loss, swept from its own namespace; only addresses inside those namespaces are used.
RELAYGUARD="$PWD/target/debug/relayguard" bench/campus-smoke.sh
