#!/usr/bin/env bash
# side-by-side.sh: one scenario against the backend directly, the gateway,
# nginx and HAProxy in one run, with ratios to the direct baseline. The load
# generator runs on CPU 0; bench-backend and the proxy under test on CPU 1.
# See benches/README.md ("Scenarios side by side").
#
# Environment (all optional):
#   SCENARIO=benches/scenarios/population-peak.toml
#   TARGETS="direct gateway nginx haproxy"
#   RESULTS_DIR=target/bench-results/side-by-side-<timestamp>
#   GATEWAY_CONFIG=config/minimal.toml   SKIP_BUILD=1
#   BACKEND_PORT=18081 GATEWAY_PORT=18080 NGINX_PORT=18090 HAPROXY_PORT=18091
set -euo pipefail
SCRIPT=side-by-side
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=benches/bench-lib.sh
source benches/bench-lib.sh

SCENARIO=${SCENARIO:-benches/scenarios/population-peak.toml}
TARGETS=${TARGETS:-direct gateway nginx haproxy}
RESULTS_DIR=${RESULTS_DIR:-target/bench-results/side-by-side-$(date +%Y%m%d-%H%M%S)}
GATEWAY_CONFIG=${GATEWAY_CONFIG:-config/minimal.toml}
BACKEND_PORT=${BACKEND_PORT:-18081}
GATEWAY_PORT=${GATEWAY_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18090}
HAPROXY_PORT=${HAPROXY_PORT:-18091}
LOAD=target/release/gateway-load

TMP=$(mktemp -d "${TMPDIR:-/tmp}/side-by-side.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -f $SCENARIO ]] || die "no scenario at $SCENARIO"
mkdir -p "$RESULTS_DIR/logs"
# Absolute: nginx resolves relative paths against its own prefix.
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then cargo build --release -p gateway -p gateway-bench; fi
read -r LOADAVG _ </proc/loadavg
log "load average before the run: $LOADAVG (other work on the machine distorts results)"

start_server backend "$BACKEND_PORT" target/release/bench-backend \
    --listen "127.0.0.1:$BACKEND_PORT" --name backend || die "bench-backend did not start"

# Each proxy runs alone beside the backend while it is measured, so the
# proxies never compete with each other for CPU 1.
target_args=()
run_one() {
    local name=$1 port=$2
    shift 2
    local pid=""
    if (($#)); then
        start_server "$name" "$port" "$@" || return 0
        pid=$SERVER_PID
    fi
    "${LOAD_PIN[@]}" "$LOAD" --scenario "$SCENARIO" --target "$name=http://127.0.0.1:$port" \
        --out "$RESULTS_DIR" --format json >"$RESULTS_DIR/$name.json" 2>"$RESULTS_DIR/logs/$name-load.log" ||
        log "$name: gateway-load failed (see $RESULTS_DIR/logs/$name-load.log)"
    [[ -n $pid ]] && stop_pid "$pid"
    target_args+=("$name")
}

for target in $TARGETS; do
    log "running $SCENARIO against $target"
    case $target in
    direct) run_one direct "$BACKEND_PORT" ;;
    gateway) run_one gateway "$GATEWAY_PORT" target/release/gateway run --config "$GATEWAY_CONFIG" ;;
    nginx)
        if find_bin nginx >/dev/null; then
            write_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$BACKEND_PORT"
            cp "$TMP/nginx/nginx.conf" "$RESULTS_DIR/logs/"
            run_one nginx "$NGINX_PORT" "$(find_bin nginx)" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$RESULTS_DIR/logs/nginx-error.log"
        else log "nginx is not installed (apt-get install nginx-light); skipped"; fi
        ;;
    haproxy)
        if find_bin haproxy >/dev/null; then
            write_haproxy_conf "$TMP/haproxy.cfg" "$HAPROXY_PORT" "$BACKEND_PORT"
            cp "$TMP/haproxy.cfg" "$RESULTS_DIR/logs/"
            run_one haproxy "$HAPROXY_PORT" "$(find_bin haproxy)" -db -f "$TMP/haproxy.cfg"
        else log "haproxy is not installed (apt-get install haproxy); skipped"; fi
        ;;
    *) log "unknown target $target; skipped" ;;
    esac
done

# The comparison reads the per-target JSON, so each target was measured
# with its proxy alone on CPU 1; ratios are to "direct" from this run.
python3 - "$RESULTS_DIR" ${target_args[@]+"${target_args[@]}"} <<'PY' | tee "$RESULTS_DIR/comparison.txt"
import json, os, sys
d, names = sys.argv[1], sys.argv[2:]
rows = []
for n in names:
    try:
        rows.append(json.load(open(os.path.join(d, n, "report.json"))))
    except OSError:
        pass
base = next((r for r in rows if r["target"] == "direct"), rows[0] if rows else None)
print("%-10s %9s %10s %8s %8s %8s %9s %9s %7s" % ("target", "requests", "req/s", "p50 ms", "p99 ms", "unsent", "req/s x", "p99 x", "failed"))
for r in rows:
    t = r["total"]
    failed = t["errors"] + t["status"]["5xx"] + t["status"]["other"]
    rx = "%.2fx" % (t["rps"] / base["total"]["rps"]) if base and base["total"]["rps"] else "-"
    px = "%.2fx" % (t["p99_us"] / base["total"]["p99_us"]) if base and base["total"]["p99_us"] else "-"
    print("%-10s %9d %10.1f %8.3f %8.3f %8d %9s %9s %7d" % (r["target"], t["requests"], t["rps"], t["p50_us"] / 1000, t["p99_us"] / 1000, r["unsent"], rx, px, failed))
PY
echo "scenario: $SCENARIO; load average before: $LOADAVG; results: $RESULTS_DIR"
