#!/usr/bin/env bash
# Renders the registry's pages in Debian's headless Chromium and writes PNG screenshots, to check
# them as a person would: docs/screenshots/hosts.png by default (the dashboard, findings and host
# screenshots come from the registry's dashboard test, the desk's from its desk_browser test).
#
#   scripts/screenshot-pages.sh [OUT_DIR]
#
# Loopback only: a scripted SMTP listener on 127.0.0.66:2525 whose banner carries HTML (to show
# that attacker-controlled text is escaped), a real sweep of it posted to `relayguard serve` on
# 127.0.0.1, and Chromium with background networking off.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
mkdir -p "$out"
command -v chromium >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
cargo build --release -q
bin=target/release/relayguard
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export RELAYGUARD_DATABASE="sqlite://$work/registry.db"
token=screenshot-admin-token-0123456789
echo "$token" > "$work/token"

python3 - <<'PY' &
import socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.66", 2525))
srv.listen(16)
def handle(c):
    f = c.makefile("rb")
    c.sendall(b'220 lab7.campus.test ESMTP <script>alert("banner")</script>\r\n')
    for line in f:
        u = line.upper()
        if u.startswith(b"EHLO"):
            c.sendall(b"250-lab7.campus.test\r\n250 AUTH PLAIN LOGIN\r\n")
        elif u.startswith(b"QUIT"):
            c.sendall(b"221 bye\r\n")
            break
        elif u.startswith(b"VRFY") or u.startswith(b"EXPN"):
            c.sendall(b"502 no\r\n")
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
PY
pids+=($!)

"$bin" hosts add 127.0.0.10 --hostname mx.campus.test --role mail-direct \
    --admin-name "Mail Team" --admin-email mail-team@campus.test >/dev/null
"$bin" hosts add 127.0.0.66 --hostname lab7.campus.test --role non-mail \
    --admin-name "Lab 7 <Admin>" --admin-email lab7@campus.test >/dev/null
"$bin" serve --listen 127.0.0.1:0 --admin-token-file "$work/token" > "$work/serve.out" &
pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
sleep 0.5
RELAYGUARD_TOKEN=$token "$bin" sweep 127.0.0.66 127.0.0.10 --ports 2525 --no-dns --no-progress \
    --registry "$url" >/dev/null || true

shot() { # $1 path, $2 file, $3 window height
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/chromium" --hide-scrollbars --window-size=1280,"${3:-900}" \
        --screenshot="$2" "http://admin:$token@${url#http://}$1" 2>/dev/null
    echo "$2"
}
shot /hosts "$out/hosts.png"
