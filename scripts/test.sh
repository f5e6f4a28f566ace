#!/usr/bin/env bash
# Runs every test, with the race detector, inside a D-Bus session that has an unlocked
# gnome-keyring (the real Secret Service the keyring tests use).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${TESSEL_PROXY_TEST_BUS:-} ]]; then
  export TESSEL_PROXY_TEST_BUS=1
  exec dbus-run-session -- "$0" "$@"
fi
# A keyring of the tests' own: gnome-keyring keeps its files under XDG_DATA_HOME, so a fresh
# directory means a fresh login keyring created with this password, whatever the machine's
# user already has. gnome-keyring-daemon prints the variables to export.
keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME=$keyring_home/data XDG_RUNTIME_DIR=$keyring_home/run
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
eval "$(echo -n test-keyring-password | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL

go vet ./...
# The release builds for macOS and Windows too: the code (tests included) must at least
# type-check there.
GOOS=darwin go vet ./...
GOOS=windows go vet ./...
# go.mod and go.sum say what go mod tidy would write.
go mod tidy -diff
go test -race -count=1 -timeout 20m "$@" ./...
