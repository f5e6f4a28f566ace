#!/usr/bin/env bash
# Runs every test, with the race detector, inside a D-Bus session that has an unlocked
# gnome-keyring (the real Secret Service the keyring tests use).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${TESSEL_PROXY_TEST_BUS:-} ]]; then
  export TESSEL_PROXY_TEST_BUS=1
  exec dbus-run-session -- "$0" "$@"
fi
# gnome-keyring-daemon prints the variables to export; the control socket lives in the bus's
# runtime dir.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
eval "$(echo -n test-keyring-password | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL

go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
