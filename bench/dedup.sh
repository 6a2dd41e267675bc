#!/usr/bin/env bash
# What a dedup window costs: the same JSON POST through lastmile without dedup, with the
# memory store, and with the Redis store, side by side in one run. Every request carries
# a fresh Idempotency-Key, so every one is a first request (take the key, go upstream,
# store the response): the worst case for the store. The policy allows everything, so the
# only difference between the three is the dedup step.
#
# Throughput: wrk -t1 -c32 (median of 3). Latency: wrk -t1 -c1, one request at a time, so
# the percentiles are the cost of one request rather than queueing (median of 3).
# Usage: bench/dedup.sh [DURATION_SECONDS]   (default 10 s per run; NO_BUILD=1 uses the
# release binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need redis-server; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk redis-server >/dev/null
fi
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p lastmile
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d /tmp/lastmile-dedup-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

body='{"id":"INV-00038199","status":"created"}'
cat > "$work/upstream.conf" <<CONF
worker_processes 1; daemon off; pid $work/upstream.pid; error_log $work/upstream.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18181 reuseport; keepalive_requests 100000;
  location / { default_type application/json; return 201 '$body'; } } }
CONF
mkdir -p "$work/policies"
printf 'package lastmile\n\ndecision := {}\n' > "$work/policies/allow.rego"
redis_port=18190
config() { # name port admin-port [dedup-yaml]
    {
        echo "listen: 127.0.0.1:$2"
        echo "admin_listen: 127.0.0.1:$3"
        echo "policies: {dir: $work/policies}"
        echo "routes: [{name: crm, prefix: /crm, upstream: 'http://127.0.0.1:18181'}]"
        echo "trace: {output: off}"
        if [ -n "${4:-}" ]; then echo "dedup: $4"; fi
    } > "$work/$1.yaml"
}
config off 18182 18192
config memory 18183 18193 "{store: memory, max_entries: 1000000}"
config redis 18184 18194 "{store: redis, max_entries: 1000000, redis: {url: 'redis://127.0.0.1:$redis_port/0'}}"

nginx -c "$work/upstream.conf" & pids+=($!)
redis-server --bind 127.0.0.1 --port $redis_port --save '' --appendonly no >/dev/null & pids+=($!)
declare -A proxy_pid proxy_port=([off]=18182 [memory]=18183 [redis]=18184)
for name in off memory redis; do
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn "$target/release/lastmile" run --config "$work/$name.yaml" & pids+=($!)
    proxy_pid[$name]=$!
done
for port in 18181 18182 18183 18184; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# One Lua state per wrk thread: a per-run prefix and a counter make every key distinct.
cat > "$work/post.lua" <<'LUA'
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
local n = 0
wrk.method = "POST"
wrk.body = '{"invoice":"INV-00038199","amount":1250.5,"currency":"EUR","lines":[{"sku":"A-1","qty":3}]}'
request = function()
    n = n + 1
    return wrk.format(nil, nil, {["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. "-" .. n})
end
LUA
for port in 18182 18183 18184; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -H "idempotency-key: probe-$port" -d '{}' "http://127.0.0.1:$port/crm/v1/invoices")
    [ "$status" = 201 ] || { echo "port $port answered $status, not 201" >&2; exit 1; }
done

ms() { # wrk latency text (e.g. 812.00us, 1.20ms) -> milliseconds
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '| %-14s | %9s | %8s | %8s | %8s | %12s |\n' store "req/s" "p50 ms" "p90 ms" "p99 ms" "CPU µs/req"
printf '|%s|\n' "----------------|-----------|----------|----------|----------|--------------"
for name in off memory redis; do
    url="http://127.0.0.1:${proxy_port[$name]}/crm/v1/invoices"
    rps=() p50=() p90=() p99=() cpu=()
    for _ in 1 2 3; do
        before=$(cpu_ticks "${proxy_pid[$name]}")
        out=$(wrk -t1 -c32 -d"${duration}s" -s "$work/post.lua" "$url")
        after=$(cpu_ticks "${proxy_pid[$name]}")
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        rps+=("$(echo "$out" | awk '/Requests\/sec/ {print $2}')")
        cpu+=("$(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')")
        if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx responses under load" >&2; echo "$out" >&2; exit 1; fi
        out=$(wrk -t1 -c1 -d"${duration}s" --latency -s "$work/post.lua" "$url")
        p50+=("$(ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")")
        p90+=("$(ms "$(echo "$out" | awk '$1 == "90%" {print $2}')")")
        p99+=("$(ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")")
    done
    printf '| %-14s | %9s | %8s | %8s | %8s | %12s |\n' "$name" \
        "$(printf '%s\n' "${rps[@]}" | median)" "$(printf '%s\n' "${p50[@]}" | median)" \
        "$(printf '%s\n' "${p90[@]}" | median)" "$(printf '%s\n' "${p99[@]}" | median)" \
        "$(printf '%s\n' "${cpu[@]}" | median)"
done
