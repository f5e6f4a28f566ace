#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine (run as root): the real clients
# and servers the end-to-end tests drive, the shells completions are tested in, a Secret Service
# for the keyring, and the OAuth test server's npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  curl git python3 iproute2 openssl      # clients run through `run`; network namespaces; cert checks
  nginx-light                            # the target in scripts/bench.sh; the reverse proxy in front of serve --ws-listen
  tinyproxy                              # the upstream HTTP proxy (CONNECT, BasicAuth) of a corporate network
  caddy                                  # the other documented reverse proxy in front of serve --ws-listen
  haproxy                                # an L4 balancer in front of several `serve` (failover tests)
  openssh-server openssh-client busybox  # devices reached over ssh, BusyBox sh on the device
  dbus dbus-x11 gnome-keyring libsecret-tools  # a real Secret Service for the keyring
  zsh fish bash-completion groff-base man-db make  # completions, man pages, make install
  nodejs npm                             # the OAuth test server (oidc-provider)
  tcpdump                                # run --transparent: the DNS-leak capture
  systemd                                # systemd-analyze verifies deploy/systemd/tessel-proxy.service
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then :; else
    # node and npm come with the machine; do not replace them with Debian's older ones
    filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
    missing=("${filtered[@]}")
  fi
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The tests start their own tinyproxy, nginx and Caddy; the packages' services (started by
# the install where systemd runs) would only hold ports.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl disable --now tinyproxy caddy >/dev/null 2>&1 || true
fi

# The OAuth test server.
if [[ -f oauth/testdata/oidcserver/package.json ]]; then
  (cd oauth/testdata/oidcserver && npm ci --no-audit --no-fund --loglevel=error)
fi
