#!/usr/bin/env bash
# The whole test suite, set-up included: `./scripts/test.sh` (as root: the tests start real
# Postfix instances on loopback aliases).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo test --workspace --all-targets "$@"
