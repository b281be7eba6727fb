#!/bin/sh
# Builds the Debian package of the relayguard host agent with plain dpkg-deb.
#
#   build-deb.sh BINARY OUTDIR
#
# BINARY is a built relayguard-agent (e.g. target/x86_64-unknown-linux-musl/release/
# relayguard-agent); the package version is what it reports with --version. Prints the path
# of the .deb. Layout:
#
#   /usr/sbin/relayguard-agent
#   /lib/systemd/system/relayguard-agent.{service,timer}   (from this directory, binary path
#                                                           rewritten to /usr/sbin)
#   /etc/relayguard-agent/agent.env                          (conffile: registry URL, address)
#   /usr/share/doc/relayguard-agent/relayguard-agent.cron.example (for hosts without systemd)
#
# The maintainer scripts are the ones debhelper's dh_installsystemd writes: postinst enables
# the timer with deb-systemd-helper (which honours DPKG_ROOT, so installing into another root
# with `dpkg --root DIR --force-script-chrootless` enables it there) and starts it only on a
# running systemd; prerm stops it; postrm masks it on remove and purges its state on purge.
set -eu

BIN=${1:?usage: build-deb.sh BINARY OUTDIR}
OUT=${2:?usage: build-deb.sh BINARY OUTDIR}
DIST=$(cd "$(dirname "$0")" && pwd)

for tool in dpkg-deb dpkg md5sum; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-deb: '$tool' not found: install dpkg" >&2
        exit 2
    }
done

VERSION=$("$BIN" --version | awk '{print $2}')
[ -n "$VERSION" ] || { echo "build-deb: $BIN --version printed no version" >&2; exit 2; }
ARCH=$(dpkg --print-architecture)
# A static (musl) build needs nothing; a glibc build needs libc6.
DEPENDS=""
if command -v readelf >/dev/null 2>&1 && readelf -d "$BIN" 2>/dev/null | grep -q NEEDED; then
    DEPENDS="Depends: libc6"
fi

mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT

install -D -m 0755 "$BIN" "$STAGE/usr/sbin/relayguard-agent"
for u in relayguard-agent.service relayguard-agent.timer; do
    mkdir -p "$STAGE/lib/systemd/system"
    sed 's|/usr/local/bin/relayguard-agent|/usr/sbin/relayguard-agent|g' "$DIST/$u" \
        > "$STAGE/lib/systemd/system/$u"
    chmod 0644 "$STAGE/lib/systemd/system/$u"
done
# The manual installation notes of the unit do not apply to the packaged copy.
sed -i '/^# Install: /,/systemctl enable --now/c\
# Installed by the relayguard-agent package, which enables the timer. Settings in\
# /etc/relayguard-agent/agent.env, the agent token in /etc/relayguard-agent/token (mode 0600).' \
    "$STAGE/lib/systemd/system/relayguard-agent.service"
install -d -m 0700 "$STAGE/etc/relayguard-agent"
cat > "$STAGE/etc/relayguard-agent/agent.env" <<'ENV'
# Settings of the relayguard host agent (read by relayguard-agent.service).
# The agent token goes in /etc/relayguard-agent/token (mode 0600), from
# `relayguard agents token ADDRESS` on the registry.
RELAYGUARD_REGISTRY=https://registry.campus.example:8025
RELAYGUARD_ADDRESS=192.0.2.42
ENV
chmod 0600 "$STAGE/etc/relayguard-agent/agent.env"
install -d "$STAGE/usr/share/doc/relayguard-agent"
cat > "$STAGE/usr/share/doc/relayguard-agent/copyright" <<'COPY'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: relayguard

Files: *
License: MIT or Apache-2.0
COPY
install -m 0644 "$DIST/relayguard-agent.cron" \
    "$STAGE/usr/share/doc/relayguard-agent/relayguard-agent.cron.example"

mkdir -p "$STAGE/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
{
    echo "Package: relayguard-agent"
    echo "Version: $VERSION"
    echo "Architecture: $ARCH"
    echo "Maintainer: relayguard maintainers <relayguard@localhost>"
    echo "Installed-Size: $SIZE"
    [ -z "$DEPENDS" ] || echo "$DEPENDS"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: relayguard host agent: finds and disables unwanted mail servers"
    echo " Finds mail transfer agents that are installed, enabled at boot, running or"
    echo " listening, and on hosts the relayguard registry marks non-mail switches them"
    echo " off reversibly (journaled; relayguard-agent revert restores every byte)."
    echo " A systemd timer runs harden and report every six hours."
} > "$STAGE/DEBIAN/control"
echo /etc/relayguard-agent/agent.env > "$STAGE/DEBIAN/conffiles"

cat > "$STAGE/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ] ; then
	# was-enabled defaults to true, so new installations run enable.
	if deb-systemd-helper --quiet was-enabled 'relayguard-agent.timer'; then
		deb-systemd-helper enable 'relayguard-agent.timer' >/dev/null || true
	else
		deb-systemd-helper update-state 'relayguard-agent.timer' >/dev/null || true
	fi
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		deb-systemd-invoke start 'relayguard-agent.timer' >/dev/null || true
	fi
fi
SH
cat > "$STAGE/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ] ; then
	deb-systemd-invoke stop 'relayguard-agent.timer' 'relayguard-agent.service' >/dev/null || true
fi
SH
cat > "$STAGE/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] ; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "remove" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper mask 'relayguard-agent.timer' >/dev/null || true
	fi
fi
if [ "$1" = "purge" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper purge 'relayguard-agent.timer' >/dev/null || true
		deb-systemd-helper unmask 'relayguard-agent.timer' >/dev/null || true
	fi
fi
SH
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
(cd "$STAGE" && find usr lib etc -type f -exec md5sum {} + | sort -k 2 > DEBIAN/md5sums)
chmod 0644 "$STAGE/DEBIAN/md5sums" "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles"

DEB="$OUT/relayguard-agent_${VERSION}_${ARCH}.deb"
# xz for real packages; tests pass RELAYGUARD_DEB_COMPRESS=gzip to save time on debug builds.
dpkg-deb --root-owner-group "-Z${RELAYGUARD_DEB_COMPRESS:-xz}" --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
