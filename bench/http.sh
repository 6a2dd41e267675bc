#!/usr/bin/env bash
# HTTP load, side by side in one run: direct to the upstream, nginx as a plain reverse
# proxy, lastmile with a pass-through policy, and lastmile with the one-file demo policy
# policies/demo (identity verified, tool contract, scope filter added). Same upstream, same load tool.
#
# Usage: bench/http.sh [DURATION_SECONDS] [CONNECTIONS]   (default 10 s, 32 connections)
# Every server runs with one worker (nginx worker_processes 1, lastmile
# TOKIO_WORKER_THREADS=1) and the load generator with one thread, on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
cargo build --release -q -p lastmile -p lastmile-bench

work=$(mktemp -d /tmp/lastmile-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

body='{"invoices":[{"id":"INV-00038122","account":"acme","amount":1250.00,"currency":"EUR","status":"open","due":"2026-10-27"},{"id":"INV-00038123","account":"acme","amount":310.50,"currency":"EUR","status":"paid","due":"2026-09-30"}]}'
cat > "$work/upstream.conf" <<CONF
worker_processes 1; daemon off; pid $work/upstream.pid; error_log $work/upstream.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18081 reuseport; keepalive_requests 100000;
  location / { default_type application/json; return 200 '$body'; } } }
CONF
cat > "$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; upstream up { server 127.0.0.1:18081; keepalive 64; }
  server { listen 127.0.0.1:18082; keepalive_requests 100000;
    location /crm/ { proxy_pass http://up/; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
head -c 48 /dev/urandom | base64 > "$work/identity-secret"
echo "bench-crm-token" > "$work/crm-token"
lastmile_config() { # name listen admin policy-dir identity(yes|no)
    {
        echo "listen: 127.0.0.1:$2"
        echo "admin_listen: 127.0.0.1:$3"
        echo "policies: {dir: $4}"
        if [ "$5" = yes ]; then
            echo "identity: {hs256_secret_file: $work/identity-secret, issuer: https://idp.bench, audience: lastmile}"
        fi
        echo "routes:"
        echo "  - {name: crm, prefix: /crm, upstream: http://127.0.0.1:18081, require_user: $([ "$5" = yes ] && echo true || echo false),"
        echo "     credential: {header: authorization, value_file: $work/crm-token, prefix: 'Bearer '}}"
        echo "trace: {output: $work/$1-trace.jsonl}"
    } > "$work/$1.yaml"
}
lastmile_config passthrough 18083 18093 "$PWD/bench/policies/allow-all" no
lastmile_config demo 18084 18094 "$PWD/policies/demo" yes
token=$(target/release/token "$work/identity-secret" u_alice account:acme)

nginx -c "$work/upstream.conf" & pids+=($!); upstream_pid=$!
nginx -c "$work/nginx.conf" & pids+=($!); nginx_pid=$!
TOKIO_WORKER_THREADS=1 RUST_LOG=warn target/release/lastmile run --config "$work/passthrough.yaml" >/dev/null & pids+=($!); pass_pid=$!
TOKIO_WORKER_THREADS=1 RUST_LOG=warn target/release/lastmile run --config "$work/demo.yaml" >/dev/null & pids+=($!); demo_pid=$!
for port in 18081 18082 18083 18084; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
status=$(curl -s -o /dev/null -w '%{http_code}' -H "x-lastmile-user: $token" http://127.0.0.1:18084/crm/v1/invoices)
[ "$status" = 200 ] || { echo "lastmile (demo policy) answered $status, not 200" >&2; exit 1; }

# A server's CPU and memory include its worker processes (nginx forks its worker).
tree() { echo "$1" $(pgrep -P "$1" || true); }
cpu_ticks() { local t=0; for p in $(tree "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
rss_kb() { local k=0; for p in $(tree "$1"); do k=$((k + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $k; }
printf '| %-24s | %9s | %8s | %8s | %8s | %12s | %7s |\n' target "req/s" "p50 ms" "p90 ms" "p99 ms" "CPU µs/req" "RSS MB"
printf '|%s|\n' "--------------------------|-----------|----------|----------|----------|--------------|---------"
run() { # label url pid [header]
    local before after out rps reqs
    before=$(cpu_ticks "$3")
    if [ -n "${4:-}" ]; then
        out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency -H "$4" "$2")
    else
        out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "$2")
    fi
    after=$(cpu_ticks "$3")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    pct() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.3f", v}' <<<"$out"; }
    local errors; errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    local cpu_us; cpu_us=$(awk -v t=$((after - before)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / r}')
    printf '| %-24s | %9.0f | %8s | %8s | %8s | %12s | %7.1f |\n' "$1" "$rps" "$(pct 50%)" "$(pct 90%)" "$(pct 99%)" "$cpu_us" "$(($(rss_kb "$3") / 1024))"
    [ -z "$errors" ] || echo "  $1: $errors"
}
run "direct (nginx upstream)" http://127.0.0.1:18081/v1/invoices "$upstream_pid"
run "nginx reverse proxy" http://127.0.0.1:18082/crm/v1/invoices "$nginx_pid"
run "lastmile pass-through" http://127.0.0.1:18083/crm/v1/invoices "$pass_pid"
run "lastmile demo policy" http://127.0.0.1:18084/crm/v1/invoices "$demo_pid" "x-lastmile-user: $token"
echo
echo "wrk -t1 -c$connections -d${duration}s; CPU and RSS are the server process's (for direct: the upstream's)."
