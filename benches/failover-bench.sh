#!/usr/bin/env bash
# failover-bench.sh: time from home failure to the first embassy-served
# response, and requests failed meanwhile, for the gateway (config/failover.toml:
# health checks every 2 s, fall 2, retries on the next site) and for HAProxy
# with the embassy as a `backup` server (the same check interval and fall),
# under the same steady open-loop GET load. Both front the same two
# bench-backends (home on 18081, embassy on 18082), which stamp
# x-backend-name; home is killed mid-run (bench-backend --crash-path: the
# process exits at once, like SIGKILL, timed by the load tool's event).
# Each proxy is measured ROUNDS times; the summary quotes medians.
#
# Environment: ROUNDS=3 RATE=500 DURATION=12s DOWN_AT=4s SKIP_BUILD=1
#   RESULTS_DIR=target/bench-results/failover-<timestamp> TARGETS="gateway haproxy"
set -euo pipefail
SCRIPT=failover-bench
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/bench-lib.sh
source benches/bench-lib.sh

ROUNDS=${ROUNDS:-3}
RATE=${RATE:-500}
DURATION=${DURATION:-12s}
DOWN_AT=${DOWN_AT:-4s}
TARGETS=${TARGETS:-gateway haproxy}
RESULTS_DIR=${RESULTS_DIR:-target/bench-results/failover-$(date +%Y%m%d-%H%M%S)}
HOME_PORT=18081
EMBASSY_PORT=18082
GATEWAY_PORT=18080
HAPROXY_PORT=18091

TMP=$(mktemp -d "${TMPDIR:-/tmp}/failover-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RESULTS_DIR/logs"
# Absolute: nginx resolves relative paths against its own prefix.
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then cargo build --release -p gateway -p gateway-bench; fi
read -r LOADAVG _ </proc/loadavg
log "load average before the run: $LOADAVG"

cat >"$TMP/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    # A refused connection is retried, then redispatched; the backup only
    # takes traffic once the health check has marked home down.
    retries 3
    option redispatch
    timeout connect 1s
    timeout client 30s
    timeout server 30s
listen population
    bind 127.0.0.1:$HAPROXY_PORT
    option httpchk GET /health
    server home 127.0.0.1:$HOME_PORT check inter 2s fall 2 rise 2
    server embassy 127.0.0.1:$EMBASSY_PORT check inter 2s fall 2 rise 2 backup
CONF
# config/failover.toml as shipped, its admin port moved off the demo's 19901
# so a demo running beside this bench does not stop the gateway starting.
sed 's/127.0.0.1:19901/127.0.0.1:19951/' config/failover.toml >"$TMP/gateway-failover.toml"
cp "$TMP/haproxy.cfg" "$TMP/gateway-failover.toml" "$RESULTS_DIR/logs/"

# The scenario: steady reads, home crashes at DOWN_AT; which site served is
# read from bench-backend's x-backend-name, the same for both proxies.
write_scenario() {
    cat >"$TMP/failover.toml" <<TOML
name = "failover"
target = "http://127.0.0.1:$1"
site_header = "x-backend-name"
timeout = "3s"
load = { mode = "open", connections = 32, stages = [{ duration = "$DURATION", rate = $RATE }] }
[[classes]]
name = "read"
paths = ["/population/people/48001082717", "/population/people/37506212848"]
[[events]]
name = "home-down"
at = "$DOWN_AT"
method = "POST"
url = "http://127.0.0.1:$HOME_PORT/__crash"
[failover]
home_site = "home"
down_event = "home-down"
TOML
}

# Waits (bounded) until the proxy answers from home.
wait_home() {
    local port=$1 tick
    for ((tick = 0; tick < 100; tick++)); do
        if curl -s -o /dev/null -D - "http://127.0.0.1:$port/population/people/48001082717" 2>/dev/null |
            grep -qi '^x-backend-name: home'; then return 0; fi
        sleep 0.1
    done
    return 1
}

run_round() {
    local proxy=$1 round=$2 port pid
    start_server "home-$proxy-$round" "$HOME_PORT" target/release/bench-backend \
        --listen "127.0.0.1:$HOME_PORT" --name home --crash-path /__crash || return 1
    start_server "embassy-$proxy-$round" "$EMBASSY_PORT" target/release/bench-backend \
        --listen "127.0.0.1:$EMBASSY_PORT" --name embassy || return 1
    if [[ $proxy == gateway ]]; then
        port=$GATEWAY_PORT
        GATEWAY_ADMIN_TOKEN=failover-bench-local-token start_server "gateway-$round" "$port" \
            target/release/gateway run --config "$TMP/gateway-failover.toml" || return 1
    else
        port=$HAPROXY_PORT
        start_server "haproxy-$round" "$port" "$(find_bin haproxy)" -db -f "$TMP/haproxy.cfg" || return 1
    fi
    pid=$SERVER_PID
    wait_home "$port" || log "$proxy round $round: never answered from home"
    write_scenario "$port"
    "${LOAD_PIN[@]}" target/release/gateway-load --scenario "$TMP/failover.toml" --target "$proxy=http://127.0.0.1:$port" \
        --out "$RESULTS_DIR/round$round" >"$RESULTS_DIR/round$round-$proxy.txt" 2>"$RESULTS_DIR/logs/load-$proxy-$round.log" || true
    log "$proxy round $round: $(grep -E 'time to first|until then' "$RESULTS_DIR/round$round-$proxy.txt" | tr -s ' ' | tr '\n' ';')"
    local p
    for p in "${!LIVE[@]}"; do stop_pid "$p"; done
}

for ((round = 1; round <= ROUNDS; round++)); do
    for proxy in $TARGETS; do
        run_round "$proxy" "$round" || log "$proxy round $round could not start"
    done
done

python3 - "$RESULTS_DIR" "$ROUNDS" $TARGETS <<'PY' | tee "$RESULTS_DIR/summary.txt"
import json, os, statistics, sys
d, rounds, proxies = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
keys = ["first_other_site_ms", "failed_until_other_site", "failed_while_down", "recovered_ms"]
print("%-8s %4s %22s %21s %18s %22s %9s %9s" % ("proxy", "runs", "home down->embassy ms", "failed until embassy", "failed after down", "recovered ms", "p99 ms", "requests"))
for p in proxies:
    runs = []
    for r in range(1, rounds + 1):
        try:
            runs.append(json.load(open(os.path.join(d, "round%d" % r, p, "report.json"))))
        except OSError:
            pass
    fo = [r["failover"] for r in runs if r.get("failover")]
    def med(k):
        vals = [f[k] for f in fo if f[k] is not None]
        return "%g (%s)" % (statistics.median(vals), ",".join(str(v) for v in vals)) if vals else "-"
    reqs = statistics.median(r["total"]["requests"] for r in runs) if runs else 0
    # p99 of the whole run: a proxy that holds requests instead of failing them shows here.
    p99 = statistics.median(r["total"]["p99_us"] / 1000 for r in runs) if runs else 0
    print("%-8s %4d %22s %21s %18s %22s %9.1f %9d" % (p, len(fo), med(keys[0]), med(keys[1]), med(keys[2]), med(keys[3]), p99, reqs))
PY
echo "medians (and each run); rate $RATE req/s open loop, home killed at $DOWN_AT; load average before: $LOADAVG; results: $RESULTS_DIR"
