#!/usr/bin/env bash
# Installs the Debian packages relayguard's tests run against, when they are missing.
# Real parts only: Postfix for SMTP behaviour (with Cyrus SASL for the notify AUTH test), nsd as
# the authoritative DNS server of the DNS tests, PostgreSQL for the registry tests (they start
# their own throwaway cluster), systemd for `systemctl --root` checks of the agent,
# postgrey as the greylisting policy daemon of the gate tests (they start their own on a
# loopback port; the package's own service is not used), init-system-helpers (update-rc.d,
# deb-systemd-helper) to enable services in fixture roots the way maintainer scripts do,
# iproute2 for loopback aliases and network namespaces, nftables for the DNAT in front of the
# Postfix instances of the NAT verdict test, chromium (headless) to load the registry's pages.
set -euo pipefail

packages=(postfix sasl2-bin libsasl2-modules nsd postgresql postgrey systemd init-system-helpers iproute2 nftables openssl ca-certificates chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The agent's fixtures `apt-get download` real MTA packages: the package lists must exist.
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The system Postfix must stay unconfigured and stopped: the tests run their own instances.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
