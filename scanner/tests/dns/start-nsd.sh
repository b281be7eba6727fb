#!/bin/sh
# Starts nsd in the foreground serving the test zones on 127.0.0.1:PORT (for manual poking with
#   dig @127.0.0.1 -p PORT mx campus.test
# ). The Rust tests do the same thing themselves (tests/dns/server.rs) and kill nsd when done.
# Needs the Debian package nsd:  apt-get install -y nsd
set -eu
PORT=${1:?usage: start-nsd.sh PORT [DIR]}
DIR=${2:-$(mktemp -d)}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || { echo "nsd not installed: apt-get install -y nsd" >&2; exit 1; }
cp "$HERE"/zones/*.zone "$DIR"/
sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" -e "s|@SILENT_PORT@|9|g" "$HERE/nsd.conf.in" > "$DIR/nsd.conf"
echo "nsd on 127.0.0.1:$PORT, files in $DIR" >&2
exec /usr/sbin/nsd -d -c "$DIR/nsd.conf"
