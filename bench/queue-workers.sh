#!/usr/bin/env bash
# bench/queue-workers.sh — the cost of sweeping through the job queue: the namespace campus
# (bench/campus) swept once by one `relayguard sweep` process (the reference), then through the
# queue (`sweep --queue` + `relayguard worker`) by 1, 2 and 4 workers, against a throwaway
# PostgreSQL cluster this script starts (unix socket only, removed at the end).
#
# Prints, per run: wall time, CPU of the scanner processes (the workers' summed), CPU of the
# PostgreSQL cluster, peak RSS per process, checkpoints written, and the overhead per address
# against the reference (CPU and wall); then checks that every run found the same open ports
# and the same open findings (address, port, kind, severity) as the reference. Exits 1 when
# a run differs.
#
# On a 2-core machine expect no speed-up from more workers: the point is the overhead.
#
#   bench/queue-workers.sh [--block CIDR] [--live N] [--workers "1 2 4"] [--shard-size N]
#                          [--checkpoint N] [--loss-permille L]
#   defaults: --block 198.18.0.0/16 --live 256 --workers "1 2 4" --shard-size 4096
#             --checkpoint 256 --loss-permille 0 (a lost packet may legitimately change what
#             a run sees; with loss the comparison reports the difference, it does not hide it)
#   RELAYGUARD=/path/to/relayguard (default target/release/relayguard, built if missing)
#
# Needs root, PostgreSQL server binaries (apt-get install postgresql) and what bench/campus
# needs. Nothing is sent outside the campus namespaces: the workers reach PostgreSQL through its
# unix socket, a file, which the scanner namespace (no route but to the campus) can open.
set -euo pipefail
cd "$(dirname "$0")/.."

BLOCK="${BLOCK:-198.18.0.0/16}"
LIVE="${LIVE:-256}"
WORKERS="${WORKERS:-1 2 4}"
SHARD="${SHARD:-4096}"
CHECKPOINT="${CHECKPOINT:-256}"
LOSS="${LOSS:-0}"
if [ "${1:-}" != "--inner" ]; then
    while [ $# -gt 0 ]; do
        case "$1" in
            --block) BLOCK="$2"; shift 2 ;;
            --live) LIVE="$2"; shift 2 ;;
            --workers) WORKERS="$2"; shift 2 ;;
            --shard-size) SHARD="$2"; shift 2 ;;
            --checkpoint) CHECKPOINT="$2"; shift 2 ;;
            --loss-permille) LOSS="$2"; shift 2 ;;
            *) echo "queue-workers: unknown option $1" >&2; exit 2 ;;
        esac
    done
    [ "$(id -u)" = 0 ] || { echo "queue-workers: needs root" >&2; exit 2; }
    if [ -z "${RELAYGUARD:-}" ]; then
        RELAYGUARD="$PWD/target/release/relayguard"
        [ -x "$RELAYGUARD" ] || cargo build --release -q
    fi
    export RELAYGUARD BLOCK LIVE WORKERS SHARD CHECKPOINT LOSS
    exec bench/campus run --name rgqueue --block "$BLOCK" --live "$LIVE" \
        --loss-permille "$LOSS" -- "$0" --inner
fi

# --inner: runs inside `bench/campus run` (CAMPUS_* exported), campus up.
WORK="$CAMPUS_STATE/queue-bench"
mkdir -p "$WORK"
TICKS=$(getconf CLK_TCK)
SWEEP_OPTS=(--rate 2000 --concurrency 512 --connect-timeout 1 --retries 1 --no-dns --no-progress)

# ------------------------------------------------------------------------- PostgreSQL cluster
PG_BIN="$(pg_config --bindir 2>/dev/null || true)"
[ -x "$PG_BIN/initdb" ] || PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_DIR="$(mktemp -d /tmp/relayguard-queue-bench-pg.XXXXXX)"
chown postgres: "$PG_DIR"
pg() { runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; }
cleanup() {
    local pid
    for pid in ${WORKER_PIDS:-}; do kill -KILL "$pid" 2>/dev/null || true; done
    pg pg_ctl -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap cleanup EXIT
pg initdb -D "$PG_DIR/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
pg pg_ctl -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
    -o "-c listen_addresses= -k $PG_DIR -c fsync=off -c max_connections=100" start >/dev/null
psql_in() { psql -h "$PG_DIR" -U postgres -d "$1" -Atqc "$2"; }
url() { echo "postgres://postgres@localhost/$1?host=$PG_DIR"; }
# CPU seconds the cluster used so far: the postmaster's own and that of its ended children
# (each connection's backend ends when the connection closes).
pg_cpu() {
    local pid
    pid="$(head -1 "$PG_DIR/data/postmaster.pid")"
    awk -v t="$TICKS" '{ printf "%.2f\n", ($14 + $15 + $16 + $17) / t }' "/proc/$pid/stat"
}
# CPU seconds and peak RSS (MB) of a running process.
proc_cpu() { awk -v t="$TICKS" '{ printf "%.2f\n", ($14 + $15) / t }' "/proc/$1/stat"; }
proc_rss() { awk '/^VmHWM/ { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status"; }

addresses="$("$RELAYGUARD" sweep "$CAMPUS_BLOCK" --list-targets | wc -l)"
echo "queue-workers: $CAMPUS_BLOCK ($addresses addresses, $LIVE live), shards of $SHARD, checkpoints of $CHECKPOINT"

# The open ports and open findings of a registry, normalised for comparison.
open_findings() {
    RELAYGUARD_DATABASE="$1" "$RELAYGUARD" findings --status open --format csv |
        awk -F, 'NR > 1 && $3 != "registration-expired" { print $1 "," $2 "," $3 "," $4 }' | sort
}

# ------------------------------------------------------------------------------- reference
ref_db="sqlite://$WORK/reference.db"
/usr/bin/time -v -o "$WORK/reference.time" env RELAYGUARD_DATABASE="$ref_db" \
    ip netns exec "$CAMPUS_SCAN_NS" "$RELAYGUARD" sweep "$CAMPUS_BLOCK" --source "$CAMPUS_SOURCE" \
    "${SWEEP_OPTS[@]}" --vantage bench --format json -o "$WORK/reference.json" || true
ref_wall="$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/reference.time")"
ref_cpu="$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f\n", u + s }' "$WORK/reference.time")"
ref_rss="$(awk -F': ' '/Maximum resident/ { printf "%.0f\n", $2 / 1024 }' "$WORK/reference.time")"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for p in sorted("%s,%s" % (h["address"], h["port"]) for h in d["hosts"] if h["state"] == "open"):
    print(p)' "$WORK/reference.json" > "$WORK/reference.ports"
open_findings "$ref_db" > "$WORK/reference.findings"
printf 'queue-workers: reference: one process, %s s wall, %s s CPU, %s MB RSS; %s open ports, %s open findings\n' \
    "$ref_wall" "$ref_cpu" "$ref_rss" "$(wc -l < "$WORK/reference.ports")" "$(wc -l < "$WORK/reference.findings")"

# ---------------------------------------------------------------------------- queued sweeps
printf '%-8s %8s %8s %8s %9s %12s %14s %15s %s\n' WORKERS WALL_S CPU_S PG_CPU_S RSS_MB CHECKPOINTS "CPU_US/ADDR+" "WALL_US/ADDR+" RESULT
failed=0
for w in $WORKERS; do
    db="rgw$w"
    psql_in postgres "CREATE DATABASE $db" >/dev/null
    RELAYGUARD_DATABASE="$(url "$db")" "$RELAYGUARD" sweep --queue --vantage bench "$CAMPUS_BLOCK" \
        "${SWEEP_OPTS[@]}" --shard-size "$SHARD" > "$WORK/plan-$w.out"
    pg_before="$(pg_cpu)"
    start="$(date +%s.%N)"
    WORKER_PIDS=""
    for i in $(seq 1 "$w"); do
        RELAYGUARD_DATABASE="$(url "$db")" ip netns exec "$CAMPUS_SCAN_NS" "$RELAYGUARD" worker \
            --vantage bench --source "$CAMPUS_SOURCE" --checkpoint "$CHECKPOINT" --name "w$i" \
            2> "$WORK/worker-$w-$i.log" &
        WORKER_PIDS="$WORKER_PIDS $!"
    done
    until [ "$(psql_in "$db" "SELECT state FROM queue_vantages WHERE sweep_id = 1")" = merged ]; do
        sleep 0.2
    done
    wall="$(echo "$(date +%s.%N) - $start" | bc)"
    cpu=0
    rss=0
    for pid in $WORKER_PIDS; do
        cpu="$(echo "$cpu + $(proc_cpu "$pid")" | bc)"
        r="$(proc_rss "$pid")"
        [ "$r" -gt "$rss" ] && rss="$r"
    done
    for pid in $WORKER_PIDS; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $WORKER_PIDS; do wait "$pid" 2>/dev/null || true; done
    WORKER_PIDS=""
    sleep 0.5 # the backends of the closed connections end and are counted
    pg_used="$(echo "$(pg_cpu) - $pg_before" | bc)"
    # Checkpoints: one transaction per --checkpoint addresses of each shard.
    checkpoints="$(psql_in "$db" "SELECT sum((addresses + $CHECKPOINT - 1) / $CHECKPOINT) FROM queue_shards WHERE sweep_id = 1")"
    psql_in "$db" "SELECT address || ',' || port FROM queue_results WHERE sweep_id = 1" | sort > "$WORK/w$w.ports"
    open_findings "$(url "$db")" > "$WORK/w$w.findings"
    result=same
    if ! cmp -s "$WORK/reference.ports" "$WORK/w$w.ports" || ! cmp -s "$WORK/reference.findings" "$WORK/w$w.findings"; then
        result="DIFFERS (see $WORK: diff reference.ports w$w.ports, reference.findings w$w.findings)"
        diff "$WORK/reference.ports" "$WORK/w$w.ports" >&2 || true
        diff "$WORK/reference.findings" "$WORK/w$w.findings" >&2 || true
        failed=1
    fi
    cpu_over="$(echo "scale=1; ($cpu + $pg_used - $ref_cpu) * 1000000 / $addresses" | bc)"
    wall_over="$(echo "scale=1; ($wall - $ref_wall) * 1000000 / $addresses" | bc)"
    printf '%-8s %8.2f %8.2f %8.2f %9s %12s %14s %15s %s\n' "$w" "$wall" "$cpu" "$pg_used" "$rss" \
        "$checkpoints" "$cpu_over" "$wall_over" "$result"
done
echo "queue-workers: CPU_US/ADDR+ = (workers' CPU + PostgreSQL's CPU - the reference's CPU) / addresses;"
echo "queue-workers: WALL_US/ADDR+ = (wall - the reference's wall) / addresses (planning excluded)."
[ "$failed" = 0 ] && echo "queue-workers: PASS (every run found what the single process found)" ||
    echo "queue-workers: FAIL"
exit "$failed"
