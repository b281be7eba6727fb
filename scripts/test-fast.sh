#!/usr/bin/env bash
# The fast loop: the tests that need no root, no apt-get and no MTA (unit tests, the scripted
# hostile servers, the host deadline, the registry store and API on SQLite and on a throwaway
# PostgreSQL cluster when its binaries are installed, the agent's lock). A minute or two once
# built. ./scripts/test.sh still runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --lib --bins
cargo test -p relayguard-scanner --test hostile_corpus --test host_deadline
cargo test -p relayguard-agent --test lock
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || [ -n "${RELAYGUARD_TEST_PG_URL:-}" ]; then
    cargo test -p relayguard-registry --test store --test api
else
    echo "test-fast: PostgreSQL binaries not installed: registry store/API tests skipped (apt-get install postgresql)" >&2
fi
