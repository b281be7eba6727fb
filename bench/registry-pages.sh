#!/usr/bin/env bash
# Times the registry's pages and CSV downloads against a large generated registry.
#
#   bench/registry-pages.sh [--postgres] [--findings N] [--sweeps N] [--runs N]
#
# Generates a registry with N findings (default 100,000), one per address, in 40 network
# blocks, 2,000 registrations, N sweeps (default 1,000) from four vantages and 5,000 agent
# reports; SQLite by default, or a throwaway PostgreSQL cluster with --postgres. Then starts the
# real server (`relayguard serve`, release build) on loopback and times each request with curl,
# best and median of --runs (default 5): the dashboard, the first page of each list, a deep page
# reached by following cursors, filtered pages, and the CSV download of every open finding.
# Target: every page under 200 ms. Prints one line per request: name, best ms, median ms, bytes.
#
# Loopback only; everything lives in a temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

findings=100000 sweeps=1000 runs=5 backend=sqlite
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) backend=postgres ;;
    --findings) findings=$2; shift ;;
    --sweeps) sweeps=$2; shift ;;
    --runs) runs=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

bin=${RELAYGUARD_BIN:-target/release/relayguard}
if [ -z "${RELAYGUARD_BIN:-}" ]; then
  cargo build --release -q -p relayguard --bin relayguard
fi
work=$(mktemp -d /tmp/relayguard-bench.XXXXXX)
pids=()
pgdata=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pgdata" ]; then pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "$backend" = postgres ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgdata=$work/pg
  mkdir -p "$pgdata"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$work"
  pg "$pgbin/initdb" -D "$pgdata" -A trust -U postgres --no-sync -E UTF8 >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg "$pgbin/pg_ctl" -D "$pgdata" -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=off" -l "$work/pg.log" -w start >/dev/null
  db="postgres://postgres@127.0.0.1:$port/postgres"
  run_sql() { psql -q -v ON_ERROR_STOP=1 "$db" -f -; }
  series() { echo "SELECT g AS n FROM generate_series(0, $1 - 1) AS g"; }
else
  db="sqlite://$work/registry.db"
  run_sql() { sqlite3 -bail "$work/registry.db"; }
  series() { echo "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $1) SELECT n FROM s"; }
fi
export RELAYGUARD_DATABASE=$db
token=bench-admin-token-0123456789abcdef
echo "$token" > "$work/token"

# The server creates the schema; stop it, fill the tables in bulk, start it again to measure.
start() {
  # A fresh output file: the first server's "listening on" line must not be read for the second.
  rm -f "$work/serve.out"
  "$bin" serve --listen 127.0.0.1:0 --admin-token-file "$work/token" > "$work/serve.out" 2>"$work/serve.err" &
  pids+=($!)
  for _ in $(seq 300); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$work/serve.out")
  [ -n "$url" ] || { cat "$work/serve.err" >&2; exit 1; }
}
start
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'

echo "generating $findings findings, $sweeps sweeps ($backend)..." >&2
t0=$(date +%s)
run_sql <<SQL
BEGIN;
INSERT INTO networks (cidr, owner_name, owner_email, note)
  SELECT '10.' || n || '.0.0/16', 'Dept ' || n, 'dept' || n || '@campus.test', '' FROM ($(series 40)) s;
INSERT INTO hosts (address, hostname, role, admin_name, admin_email, note, registered_on, reviewed_on, status)
  SELECT '10.' || (n % 40) || '.' || ((n / 40) % 250) || '.' || (n / 10000 + 1), 'h' || n || '.campus.test',
         CASE n % 4 WHEN 0 THEN 'mail-direct' WHEN 1 THEN 'non-mail' WHEN 2 THEN 'internal-only' ELSE 'mail-via-gateway' END,
         'Admin ' || (n % 300), 'admin' || (n % 300) || '@campus.test', '', '2026-06-01', '2026-09-01', 'active'
  FROM ($(series 2000)) s;
INSERT INTO sweeps (vantage, targets, ports, started_at, finished_at, recorded_at, results, open_ports,
                    smtp_listeners, findings_opened, findings_resolved, notes)
  SELECT CASE n % 4 WHEN 0 THEN 'inside' WHEN 1 THEN 'outside' WHEN 2 THEN 'dorm' ELSE 'lab' END,
         '["10.' || (n % 40) || '.0.0/16"]', '[25,465,587]',
         1735689600 + n * 28800, 1735689600 + n * 28800 + 1800, 1735689600 + n * 28800 + 1800,
         196608, n % 500, n % 300, n % 20, n % 17, '[]'
  FROM ($(series "$sweeps")) s;
-- Findings: one per (address, port, kind); a third resolved, severities skewed to the mild.
INSERT INTO findings (address, port, kind, source, severity, severity_rank, summary, evidence, status,
                      first_seen, last_seen, resolved_at, last_sweep, tested_from)
  SELECT '10.' || (n % 40) || '.' || ((n / 40) % 250) || '.' || ((n / 10000) % 250 + 1),
         CASE (n / 100000) % 3 WHEN 0 THEN 25 WHEN 1 THEN 587 ELSE 465 END,
         CASE (n * 7) % 5 WHEN 0 THEN 'open-relay' WHEN 1 THEN 'backscatter-source' WHEN 2 THEN 'auth-over-plaintext'
              WHEN 3 THEN 'mta-on-non-mail-host' ELSE 'unregistered-mail-server' END,
         CASE n % 3 WHEN 0 THEN 'sweep' WHEN 1 THEN 'agent' ELSE 'registry' END,
         CASE WHEN n % 50 = 0 THEN 'critical' WHEN n % 10 = 0 THEN 'high' WHEN n % 4 = 0 THEN 'medium' WHEN n % 2 = 0 THEN 'low' ELSE 'info' END,
         CASE WHEN n % 50 = 0 THEN 4 WHEN n % 10 = 0 THEN 3 WHEN n % 4 = 0 THEN 2 WHEN n % 2 = 0 THEN 1 ELSE 0 END,
         'generated finding ' || n || ' <b>with markup</b>', '{}',
         CASE WHEN n % 3 = 0 THEN 'resolved' ELSE 'open' END,
         1735689600 + (n * 311) % 30000000, 1735689600 + (n * 311) % 30000000 + 86400,
         CASE WHEN n % 3 = 0 THEN 1735689600 + (n * 311) % 30000000 + 86400 * (1 + n % 60) END,
         NULL, '192.0.2.1'
  FROM ($(series "$findings")) s;
INSERT INTO agent_tokens (address, token_hash, created_at)
  SELECT address, 'bench-' || address, 1764547200 FROM hosts WHERE role = 'non-mail';
INSERT INTO agent_reports (address, report_id, received_at, generated_at, hostname, agent_version,
                           mta_enabled, mta_listening, actions, body)
  SELECT h.address, 'r' || s.n, 1764547200 + s.n * 600, 1764547200 + s.n * 600, 'pc', '0.1.0', 0, s.n % 2, 0, '{}'
  FROM ($(series 10)) s JOIN hosts h ON h.role = 'non-mail';
COMMIT;
SQL
echo "generated in $(( $(date +%s) - t0 )) s" >&2
[ "$backend" = sqlite ] && sqlite3 "$work/registry.db" "ANALYZE;" || psql -q "$db" -c "ANALYZE;"

start
auth=(-H "authorization: Bearer $token")
# time_url NAME PATH: best and median of $runs, in ms, and the body size.
time_url() {
  local name=$1 path=$2 times=() size=0 code
  curl -s -o /dev/null "${auth[@]}" "$url$path" || true   # warm the connection pool and caches
  for _ in $(seq "$runs"); do
    read -r code t size < <(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "${auth[@]}" "$url$path")
    [ "$code" = 200 ] || { echo "$name: HTTP $code for $path" >&2; exit 1; }
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v size="$size" \
    '{ v[NR] = $1 * 1000 } END { printf "%-34s best %7.1f ms  median %7.1f ms  %9d bytes\n", name, v[1], v[int((NR + 1) / 2)], size }'
}
# deep PATH PAGES: the path of the page reached by following PAGES cursors from PATH.
deep() {
  local path=$1 n=$2 sep next
  for _ in $(seq "$n"); do
    next=$(curl -s -D - -o /dev/null -H "authorization: Bearer $token" "$url/api/v1${path}" \
      | tr -d '\r' | sed -n 's/^x-next-cursor: //Ip')
    [ -n "$next" ] || break
    sep='?'; case "$path" in *\?*) sep='&' ;; esac
    path="${path%%[?&]after=*}${sep}after=$next"
  done
  echo "$path"
}

echo "registry: $findings findings, $sweeps sweeps, $backend; $runs runs each" >&2
time_url "dashboard" "/dashboard"
time_url "findings, first page" "/findings"
time_url "findings, open, first page" "/findings?status=open"
time_url "findings, page 200 (cursor)" "$(deep "/findings?limit=100" 200)"
time_url "findings, kind+severity filter" "/findings?kind=open-relay&severity=high&status=open"
time_url "findings, admin filter" "/findings?admin=dept7@campus.test&status=open"
time_url "findings API, first page" "/api/v1/findings"
time_url "hosts, first page" "/hosts"
time_url "hosts, page 10 (cursor)" "$(deep "/hosts?limit=100" 10)"
time_url "hosts, role filter" "/hosts?role=mail-direct"
time_url "sweeps, first page" "/sweeps"
time_url "sweeps, page 9 (cursor)" "$(deep "/sweeps?limit=100" 9)"
time_url "sweeps, vantage filter" "/sweeps?vantage=outside"
time_url "agent reports, first page" "/reports"
time_url "host page" "/hosts/10.7.0.1"
time_url "CSV, all open findings" "/findings.csv?status=open"
time_url "CSV, all findings" "/api/v1/findings.csv"
