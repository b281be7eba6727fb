#!/usr/bin/env bash
# Installs the Debian packages relayguard's tests run against, when they are missing.
# Real parts only: Postfix for SMTP behaviour, systemd for `systemctl --root` checks of the agent,
# iproute2 for loopback aliases and network namespaces.
set -euo pipefail

packages=(postfix systemd iproute2 openssl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The system Postfix must stay unconfigured and stopped: the tests run their own instances.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
