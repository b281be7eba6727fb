#!/usr/bin/env bash
# CI-sized smoke run of the namespace campus: a /24 with 8 live addresses NATed to
# 2 real Postfix instances (open relay, stock closed), 10 % RST, the rest filtered, 5 ms delay
# and 0.1 % loss each way (SMOKE_LOSS_PERMILLE), swept by relayguard from the scanner namespace.
# Asserts that relayguard found exactly the live hosts and exactly the open relays, with no audit
# errors; exits non-zero otherwise. Takes ~5 s (< 60 s). Discovery and every audit session retry
# a connect that got no answer, so a lost SYN costs a second, not a host.
# Needs root; installs postfix/nftables/iptables/libnetfilter-queue-dev with apt-get if missing.
#   bench/campus-smoke.sh                 # uses target/release/relayguard (built if missing)
#   RELAYGUARD=/path/to/relayguard bench/campus-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inner" ]; then
    start=$SECONDS
    if [ -z "${RELAYGUARD:-}" ]; then
        RELAYGUARD="$PWD/target/release/relayguard"
        [ -x "$RELAYGUARD" ] || cargo build --release -q
    fi
    export RELAYGUARD
    rc=0
    bench/campus run --name rgsmoke --block 198.18.42.0/24 --live 8 --personalities open,closed \
        --closed-pct 10 --loss-permille "${SMOKE_LOSS_PERMILLE:-1}" --delay-ms 5 -- "$0" --inner || rc=$?
    echo "campus-smoke: $([ $rc = 0 ] && echo PASS || echo "FAIL (rc $rc)") in $((SECONDS - start)) s"
    exit $rc
fi

# --inner: runs inside `bench/campus run` (CAMPUS_* exported), campus up.
out="$CAMPUS_STATE/smoke.json"
rc=0
ip netns exec "$CAMPUS_SCAN_NS" "$RELAYGUARD" sweep "$CAMPUS_BLOCK" --source "$CAMPUS_SOURCE" \
    --rate 2000 --concurrency 512 --connect-timeout 1 --retries 1 --no-dns --no-progress \
    --format json -o "$out" || rc=$?
# Exit 1 means "findings" (there must be some: the open relays); anything else is an error.
[ "$rc" = 1 ] || { echo "campus-smoke: relayguard exited $rc (expected 1: findings)" >&2; exit 1; }
python3 - "$out" "$CAMPUS_STATE/live.txt" "$CAMPUS_STATE/open-relays.txt" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
live = {l.split()[0] for l in open(sys.argv[2]) if l.strip()}
relays = {l.strip() for l in open(sys.argv[3]) if l.strip()}
found = {h["address"] for h in doc["hosts"] if h["state"] == "open"}
flagged = {h["address"] for h in doc["hosts"] if any(f["kind"] == "open-relay" for f in h["findings"])}
errors = {h["address"]: h["error"] for h in doc["hosts"] if h.get("error")}
# Every open host's timeline is in order: found, audit started, first reply, verdict.
def ordered(t):
    times = [t["discovered_ms"], t["audit_started_ms"], t.get("first_reply_ms"), t["done_ms"]]
    return None not in times and times == sorted(times)
bad_timeline = [h["address"] for h in doc["hosts"] if h["state"] == "open" and not ordered(h.get("timeline") or {"discovered_ms": None, "audit_started_ms": None, "done_ms": None})]
if bad_timeline:
    print(f"campus-smoke: hosts without an ordered timeline: {bad_timeline}")
ok = found == live and flagged == relays and not errors and not bad_timeline and not doc.get("interrupted")
print(f"campus-smoke: summary {doc['summary']}")
print(f"campus-smoke: live {len(live)} found {len(found)} (missed {sorted(live - found)}, extra {sorted(found - live)}); "
      f"open relays {len(relays)} flagged {len(flagged)} (missed {sorted(relays - flagged)}, wrong {sorted(flagged - relays)}); "
      f"audit errors {errors}")
sys.exit(0 if ok else 1)
EOF
