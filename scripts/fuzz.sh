#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each (FUZZTIME, default 15s), as CI
# does after scripts/test.sh. A crasher is written to the package's testdata/fuzz/FuzzX/ by
# go test: fix the code and commit the file, which then runs as a regression case in every
# `go test`. Usage: scripts/fuzz.sh [PACKAGE-DIR...] (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-15s}
dirs=("$@")
if ((${#dirs[@]} == 0)); then
  mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fi
failed=()
for dir in "${dirs[@]}"; do
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | cut -d' ' -f2 | sort -u); do
    echo "== $target ($dir, $fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"; then
      failed+=("$dir $target")
    fi
  done
done
if ((${#failed[@]})); then
  printf 'fuzz target failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
