#!/usr/bin/env bash
# Measures the tunnel against baselines in the same run, on loopback: a large download
# (throughput) and many short requests on new connections (per-connection cost), through
#   direct        curl straight to nginx
#   ssh -D        OpenSSH dynamic forwarding (curl --socks5-hostname), the tool users compare with
#   run           curl started by `tessel-proxy run`, via `serve --dev`
#   transparent   curl started by `tessel-proxy run --transparent` (Linux; a section of its own)
#   wss           curl started by `run` with the tunnel over WebSocket, straight to serve and
#                 through nginx in front of `serve --ws-listen` (deploy/nginx; the last section)
# and prints each as a ratio to its baseline. Runs vary by 15-30% from minute to minute: compare
# the ratios, not the absolute numbers. Needs nginx, sshd, curl (scripts/install-deps.sh), root.
#
#   scripts/bench.sh [SIZE_MB] [REQUESTS]      defaults: 400 500
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-400}
requests=${2:-500}

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [[ -f $work/nginx-ws.pid ]] && kill "$(cat "$work/nginx-ws.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

go build -o "$work/tessel-proxy" .

# nginx with a large file; keepalive off so that every request is a new connection.
mkdir -p "$work/www"
head -c "$((size_mb << 20))" /dev/urandom >"$work/www/big"
echo ok >"$work/www/small"
http_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
daemon on; pid $work/nginx.pid; error_log $work/nginx.err; worker_processes 1;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_timeout 0;
  server { listen 127.0.0.1:$http_port; root $work/www; } }
CONF
nginx -c "$work/nginx.conf"
wait_port "$http_port"

# sshd for ssh -D, with throwaway keys.
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/user_key"
cp "$work/user_key.pub" "$work/authorized_keys"
ssh_port=$(free_port)
mkdir -p /run/sshd
/usr/sbin/sshd -f /dev/null -o "Port=$ssh_port" -o "ListenAddress=127.0.0.1" -o "HostKey=$work/host_key" \
  -o "AuthorizedKeysFile=$work/authorized_keys" -o "StrictModes=no" -o "PermitRootLogin=yes" \
  -o "PidFile=$work/sshd.pid" -D &
pids+=($!)
wait_port "$ssh_port"
socks_port=$(free_port)
# With a terminal (-tt), as `ssh -D` is usually run, ssh sets TCP_NODELAY on its connection;
# with -N it does not, and Nagle's algorithm adds milliseconds to every new connection.
ssh -tt -F /dev/null -i "$work/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p "$ssh_port" -D "127.0.0.1:$socks_port" \
  root@127.0.0.1 'sleep 3600' </dev/null >/dev/null 2>&1 &
pids+=($!)
wait_port "$socks_port"

# tessel-proxy serve --dev
"$work/tessel-proxy" serve --dev --dir "$work/dev" >"$work/dev.env" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^export PROXY_LOCAL' "$work/dev.env" && break; sleep 0.1; done
set -a; source "$work/dev.env"; set +a

big="http://127.0.0.1:$http_port/big"
small="http://127.0.0.1:$http_port/small"
urls=(); for _ in $(seq "$requests"); do urls+=("$small"); done

# best of three, bytes per second
throughput() {
  local best=0 v
  for _ in 1 2 3; do
    v=$("$@" -s -o /dev/null -w '%{speed_download}' "$big")
    v=${v%.*}; ((v > best)) && best=$v
  done
  echo "$best"
}
# microseconds per request on a new connection, best of three
per_request() {
  local best=0 t
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s%N)
    "$@" -s "${urls[@]}" >/dev/null
    t1=$(date +%s%N)
    t=$(((t1 - t0) / 1000 / requests))
    ((best == 0 || t < best)) && best=$t
  done
  echo "$best"
}

direct_bw=$(throughput curl)
ssh_bw=$(throughput curl --socks5-hostname "127.0.0.1:$socks_port")
run_bw=$(throughput "$work/tessel-proxy" run -- curl)
direct_rq=$(per_request curl)
ssh_rq=$(per_request curl --socks5-hostname "127.0.0.1:$socks_port")
run_rq=$(per_request "$work/tessel-proxy" run -- curl)

awk -v d="$direct_bw" -v s="$ssh_bw" -v r="$run_bw" -v dq="$direct_rq" -v sq="$ssh_rq" -v rq="$run_rq" \
  -v mb="$size_mb" -v n="$requests" 'BEGIN {
  printf "throughput, %d MiB download (best of 3)\n", mb
  printf "  %-8s %8.0f MB/s\n", "direct", d/1e6
  printf "  %-8s %8.0f MB/s   %.2f x direct\n", "ssh -D", s/1e6, s/d
  printf "  %-8s %8.0f MB/s   %.2f x direct   %.2f x ssh -D\n", "run", r/1e6, r/d, r/s
  printf "new connection, %d sequential requests in one curl (best of 3)\n", n
  printf "  %-8s %8d us/request\n", "direct", dq
  printf "  %-8s %8d us/request   %.2f x direct\n", "ssh -D", sq, sq/dq
  printf "  %-8s %8d us/request   %.2f x direct   %.2f x ssh -D\n", "run", rq, rq/dq, rq/sq
}'

# --- run --transparent ------------------------------------------------------------------------
# In transparent mode 127.0.0.1 is the program's own loopback, so the program asks for a name
# that only the proxy server resolves: a second `serve --dev` runs in a mount namespace of its
# own whose /etc/hosts maps bench.tessel-proxy.test to 127.0.0.1. Plain `run` is measured again
# through that same server, alternating with transparent mode round by round (best of 5), so
# that both see the same minute. The cost of a new connection is marginal here: the time of
# 2N requests less that of N, over N, which leaves out each mode's start-up (transparent mode
# makes namespaces; its start-up is printed apart).
transparent_bench() {
  printf '127.0.0.1 bench.tessel-proxy.test\n' >"$work/hosts"
  unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$work/hosts" \
    "$work/tessel-proxy" serve --dev --dir "$work/dev-t" >"$work/dev-t.env" 2>"$work/serve-t.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^export PROXY_LOCAL' "$work/dev-t.env" 2>/dev/null && break; sleep 0.1; done
  (
    set -a; source "$work/dev-t.env"; set +a
    local big="http://bench.tessel-proxy.test:$http_port/big"
    local small="http://bench.tessel-proxy.test:$http_port/small"
    local once=() twice=()
    for _ in $(seq "$requests"); do once+=("$small"); twice+=("$small" "$small"); done
    local plain=("$work/tessel-proxy" run --) tr=("$work/tessel-proxy" run --transparent --)
    ns() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $((t1 - t0)); }
    local run_bw=0 tr_bw=0 run_1=0 run_2=0 tr_1=0 tr_2=0 run_up=0 tr_up=0 v
    min() { local -n m=$1; ((m == 0 || $2 < m)) && m=$2; return 0; }
    for _ in 1 2 3 4 5; do
      v=$("${plain[@]}" curl -s -o /dev/null -w '%{speed_download}' "$big"); v=${v%.*}; ((v > run_bw)) && run_bw=$v
      v=$("${tr[@]}" curl -s -o /dev/null -w '%{speed_download}' "$big"); v=${v%.*}; ((v > tr_bw)) && tr_bw=$v
      min run_1 "$(ns "${plain[@]}" curl -s "${once[@]}")"
      min tr_1 "$(ns "${tr[@]}" curl -s "${once[@]}")"
      min run_2 "$(ns "${plain[@]}" curl -s "${twice[@]}")"
      min tr_2 "$(ns "${tr[@]}" curl -s "${twice[@]}")"
      min run_up "$(ns "${plain[@]}" true)"
      min tr_up "$(ns "${tr[@]}" true)"
    done
    local run_rq=$(((run_2 - run_1) / 1000 / requests)) tr_rq=$(((tr_2 - tr_1) / 1000 / requests))
    run_up=$((run_up / 1000)) tr_up=$((tr_up / 1000))
    awk -v r="$run_bw" -v t="$tr_bw" -v rq="$run_rq" -v tq="$tr_rq" -v ru="$run_up" -v tu="$tr_up" \
      -v mb="$size_mb" -v n="$requests" 'BEGIN {
    printf "run --transparent, through a second serve --dev, plain run beside it (best of 5)\n"
    printf "  %d MiB download\n", mb
    printf "    %-12s %8.0f MB/s\n", "run", r/1e6
    printf "    %-12s %8.0f MB/s   %.2f x run\n", "transparent", t/1e6, t/r
    printf "  new connection, marginal over %d more sequential requests in one curl\n", n
    printf "    %-12s %8d us/request\n", "run", rq
    printf "    %-12s %8d us/request   %.2f x run\n", "transparent", tq, tq/rq
    printf "  start-up (run -- true)\n"
    printf "    %-12s %8.1f ms\n", "run", ru/1000
    printf "    %-12s %8.1f ms\n", "transparent", tu/1000
    }'
  )
}
if [[ $(uname -s) == Linux ]]; then
  transparent_bench
fi

# --- WebSocket transport ----------------------------------------------------------------------
# The tunnel's transports, in the same conditions: a third `serve --dev` that also listens for
# WebSocket over plain HTTP, behind nginx with the configuration the README documents. Its
# PROXY_* settings are loaded in a subshell, so that they stay there.
websocket_transport() {
  local ws_port tls_port
  ws_port=$(free_port)
  tls_port=$(free_port)
  "$work/tessel-proxy" serve --dev --dir "$work/dev" --ws-listen "127.0.0.1:$ws_port" >"$work/dev-ws.env" 2>"$work/serve-ws.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^export PROXY_LOCAL' "$work/dev-ws.env" && break; sleep 0.1; done
  wait_port "$ws_port"
  mkdir -p "$work/www-ws"
  sed -e "s|listen 443 ssl;|listen 127.0.0.1:$tls_port ssl;|" -e "s|listen \[::\]:443 ssl;||" \
    -e "s|/etc/letsencrypt/live/proxy.example.net/fullchain.pem|$work/dev/cert.pem|" \
    -e "s|/etc/letsencrypt/live/proxy.example.net/privkey.pem|$work/dev/key.pem|" \
    -e "s|http://127.0.0.1:8080;|http://127.0.0.1:$ws_port;|" -e "s|root /var/www/html;|root $work/www-ws;|" \
    deploy/nginx/tessel-proxy.conf >"$work/tessel-proxy-nginx.conf"
  cat >"$work/nginx-ws.conf" <<CONF
daemon on; pid $work/nginx-ws.pid; error_log $work/nginx-ws.err; worker_processes 1;
events { worker_connections 1024; }
http { access_log off; include $work/tessel-proxy-nginx.conf; }
CONF
  nginx -c "$work/nginx-ws.conf"
  wait_port "$tls_port"
  (
  set -a; source "$work/dev-ws.env"; set +a

  # The three transports take turns, round after round, and each keeps its best: on a shared
  # machine the load moves between rounds, and a transport measured in a quiet moment only
  # would make the ratios lie.
  local wss="PROXY_HOST=wss://127.0.0.1:$PROXY_PORT/tunnel"
  local via_nginx="PROXY_HOST=wss://127.0.0.1:$tls_port/tunnel"
  local -a tls_cmd=(env "$work/tessel-proxy" run -- curl)
  local -a wss_cmd=(env "$wss" "$work/tessel-proxy" run -- curl)
  local -a nginx_cmd=(env "$via_nginx" PROXY_PORT= "$work/tessel-proxy" run -- curl)
  local tls_bw=0 wss_bw=0 nginx_bw=0 tls_rq=0 wss_rq=0 nginx_rq=0 v t0 t1
  best_bw() { v=$("$@" -s -o /dev/null -w '%{speed_download}' "$big"); v=${v%.*}; echo "$v"; }
  best_rq() { t0=$(date +%s%N); "$@" -s "${urls[@]}" >/dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000 / requests)); }
  for _ in 1 2 3 4 5; do
    v=$(best_bw "${tls_cmd[@]}"); ((v > tls_bw)) && tls_bw=$v
    v=$(best_bw "${wss_cmd[@]}"); ((v > wss_bw)) && wss_bw=$v
    v=$(best_bw "${nginx_cmd[@]}"); ((v > nginx_bw)) && nginx_bw=$v
  done
  for _ in 1 2 3; do
    v=$(best_rq "${tls_cmd[@]}"); ((tls_rq == 0 || v < tls_rq)) && tls_rq=$v
    v=$(best_rq "${wss_cmd[@]}"); ((wss_rq == 0 || v < wss_rq)) && wss_rq=$v
    v=$(best_rq "${nginx_cmd[@]}"); ((nginx_rq == 0 || v < nginx_rq)) && nginx_rq=$v
  done
  awk -v t="$tls_bw" -v w="$wss_bw" -v x="$nginx_bw" -v tq="$tls_rq" -v wq="$wss_rq" -v xq="$nginx_rq" \
    -v mb="$size_mb" -v n="$requests" 'BEGIN {
  printf "WebSocket transport: run, %d MiB download (best of 5, taking turns)\n", mb
  printf "  %-12s %8.0f MB/s\n", "tls", t/1e6
  printf "  %-12s %8.0f MB/s   %.2f x tls\n", "wss", w/1e6, w/t
  printf "  %-12s %8.0f MB/s   %.2f x tls\n", "wss (nginx)", x/1e6, x/t
  printf "WebSocket transport: run, new connection, %d sequential requests (best of 3, taking turns)\n", n
  printf "  %-12s %8d us/request\n", "tls", tq
  printf "  %-12s %8d us/request   %.2f x tls\n", "wss", wq, wq/tq
  printf "  %-12s %8d us/request   %.2f x tls\n", "wss (nginx)", xq, xq/tq
}'
  )
}
websocket_transport
