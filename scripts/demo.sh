#!/usr/bin/env bash
# The main job, end to end, on the embedded default: build tessel-proxy, start a local proxy
# server (`serve --dev`), start a real HTTP server as the target, and fetch from it with curl
# started through `tessel-proxy run`. The proxy server's log then shows that the tunnel, not
# curl, made the connection to the target.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for FILE PATTERN: until FILE holds a line matching PATTERN (20 s at most)
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: timed out waiting for $2 in $1:" >&2; cat "$1" >&2; return 1
}

echo "== building tessel-proxy"
go build -o "$work/tessel-proxy" .
export PATH="$work:$PATH"
# A home of its own, so the demo neither reads nor writes your configuration.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_STATE_HOME="$work/home/.local/state"
unset PROXY_HOST PROXY_PORT PROXY_TOKEN TM_API_KEY PROXY_CERT PROXY_LOCAL PROXY_TRUSTED PROXY_IDLE

echo "== starting a target: python3 -m http.server on 127.0.0.1"
mkdir -p "$work/www"
echo "hello from the target, fetched through the tunnel" >"$work/www/hello.txt"
python3 -u -m http.server --bind 127.0.0.1 --directory "$work/www" 0 >"$work/www.log" 2>&1 &
pids+=($!)
wait_for "$work/www.log" 'Serving HTTP'
target_port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/www.log" | head -1)

echo "== starting the proxy: tessel-proxy serve --dev"
tessel-proxy serve --dev --log-level debug --dir "$work/dev" >"$work/serve.env" 2>"$work/serve.log" &
pids+=($!)
wait_for "$work/serve.env" '^export PROXY_LOCAL='
cat "$work/serve.env" | sed 's/\(PROXY_TOKEN=\).*/\1<random token, hidden>/'
# shellcheck disable=SC1091
source "$work/serve.env"

echo "== tessel-proxy run -- curl http://127.0.0.1:$target_port/hello.txt"
tessel-proxy run -- curl -sS --fail "http://127.0.0.1:$target_port/hello.txt"

echo "== tessel-proxy route 127.0.0.1"
tessel-proxy route "127.0.0.1:$target_port"

echo "== the proxy server's log of that connection"
wait_for "$work/serve.log" ":$target_port"
grep ":$target_port" "$work/serve.log"
echo "== done: curl's connection rode the tunnel to the proxy, which connected to the target"
