#!/usr/bin/env bash
# Names every missing prerequisite of the test suite once, with the Debian package that brings it,
# before a single test runs: a missing tool must not surface as a panic inside the first test that
# happens to need it. Exits 1 when anything is missing. Called by ./scripts/test.sh after
# ./scripts/install-test-deps.sh; run it alone to see what a machine lacks.
set -uo pipefail

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing+=("$1 (Debian package $2)")
}

[ "$(id -u)" = 0 ] || missing+=("root (the tests add loopback aliases, start MTAs and make network namespaces)")
need postfix postfix
need postconf postfix
need saslpasswd2 sasl2-bin
need postgrey postgrey
need nsd nsd
need nsd-checkzone nsd
need ip iproute2
need nft nftables
need systemctl systemd
need systemd-analyze systemd
need update-rc.d init-system-helpers
need deb-systemd-helper init-system-helpers
need openssl openssl
need dpkg-deb dpkg
need apt-get apt
need unshare util-linux
need flock util-linux
need runuser util-linux
need python3 python3
need cc gcc
need chromium chromium
# PostgreSQL's server binaries live in a versioned directory, not on PATH.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=("initdb and pg_ctl (Debian package postgresql)")
fi
# The MTA harnesses and the agent's package fixtures `apt-get download` real packages.
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  missing+=("apt package lists (run apt-get update)")
fi
# The Postfix harness must work without /etc/postfix/main.cf: only the package's defaults count.
if command -v postconf >/dev/null 2>&1 && ! postconf -d -h mail_version >/dev/null 2>&1; then
  missing+=("a working postconf (postconf -d failed; reinstall the postfix package)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "The test suite cannot run on this machine; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  echo "Install them with ./scripts/install-test-deps.sh (as root), or apt-get install the packages named." >&2
  exit 1
fi
echo "test prerequisites: all present"
