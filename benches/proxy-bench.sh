#!/usr/bin/env bash
# proxy-bench.sh: throughput and latency through the gateway versus the same
# backend reached directly, and versus nginx and HAProxy as equivalent
# reverse proxies. See benches/README.md for how to read the results.
#
# Environment (all optional):
#   ROUNDS=3  DURATION=10s  WARMUP=2s  CONNECTIONS=64  LOAD_THREADS=1
#   H2=1                      also drive the gateway over h2c ("gateway-h2")
#   TARGETS="direct gateway nginx haproxy"   subset and order of targets
#   RESULTS_DIR=target/bench-results/<timestamp>
#   GATEWAY_CONFIG=config/minimal.toml
#   SKIP_BUILD=1              use the binaries already in target/release
#   BACKEND_PORT=18081 GATEWAY_PORT=18080 NGINX_PORT=18090 HAPROXY_PORT=18091
#                             (the gateway's ports must match GATEWAY_CONFIG)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
LOAD_THREADS=${LOAD_THREADS:-1}
H2=${H2:-0}
TARGETS=${TARGETS:-direct gateway nginx haproxy}
RESULTS_DIR=${RESULTS_DIR:-target/bench-results/$(date +%Y%m%d-%H%M%S)}
GATEWAY_CONFIG=${GATEWAY_CONFIG:-config/minimal.toml}
SKIP_BUILD=${SKIP_BUILD:-0}

# The defaults match config/minimal.toml (gateway 18080 -> backend 18081);
# the other proxies get neighbouring ports. Loopback only: a CPU benchmark.
BACKEND_PORT=${BACKEND_PORT:-18081}
GATEWAY_PORT=${GATEWAY_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18090}
HAPROXY_PORT=${HAPROXY_PORT:-18091}
REQUEST_PATH=/population/people/38001085718

LOAD=target/release/gateway-load
BACKEND=target/release/bench-backend
GATEWAY=target/release/gateway

SCRIPT=proxy-bench
# shellcheck source=benches/bench-lib.sh
source benches/bench-lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
command -v python3 >/dev/null || die "python3 is needed for the summary"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/proxy-bench.XXXXXX")
declare -A SKIP=() # target -> reason it is skipped for the rest of the run

trap cleanup EXIT
trap 'exit 130' INT TERM

wants() { [[ " $TARGETS " == *" $1 "* ]]; }

build() {
    if [[ $SKIP_BUILD == 1 ]]; then
        [[ -x $LOAD && -x $BACKEND ]] || die "SKIP_BUILD=1 but $LOAD or $BACKEND is missing"
        return 0
    fi
    if ! wants gateway; then
        cargo build --release -p gateway-bench
    elif ! cargo build --release -p gateway -p gateway-bench; then
        # A stale target/release/gateway from an older build must not be
        # measured as if it were the current code.
        SKIP[gateway]="the gateway did not build"
        SKIP[gateway-h2]="the gateway did not build"
        log "gateway build failed; building the load tools alone"
        cargo build --release -p gateway-bench
    fi
}

install_proxies() {
    local missing=()
    if wants nginx && ! find_bin nginx >/dev/null; then missing+=(nginx-light); fi
    if wants haproxy && ! find_bin haproxy >/dev/null; then missing+=(haproxy); fi
    ((${#missing[@]})) || return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
            log "apt-get install ${missing[*]} failed"
    fi
    find_bin nginx >/dev/null || SKIP[nginx]="nginx is not installed"
    find_bin haproxy >/dev/null || SKIP[haproxy]="haproxy is not installed"
}

# Starts the proxy for TARGET fresh (nothing for "direct"); sets PORT.
start_target() {
    case $1 in
    direct)
        PORT=$BACKEND_PORT
        SERVER_PID=""
        ;;
    gateway | gateway-h2)
        PORT=$GATEWAY_PORT
        start_server gateway "$PORT" "$GATEWAY" run --config "$GATEWAY_CONFIG"
        ;;
    nginx)
        PORT=$NGINX_PORT
        start_server nginx "$PORT" "$(find_bin nginx)" -p "$TMP/nginx" \
            -c "$TMP/nginx/nginx.conf" -e "$RESULTS_DIR/logs/nginx-error.log"
        ;;
    haproxy)
        PORT=$HAPROXY_PORT
        start_server haproxy "$PORT" "$(find_bin haproxy)" -db -f "$TMP/haproxy.cfg"
        ;;
    esac
}

# A proxy that listens but answers with errors must not be charted as fast.
probe() {
    local url=$1 out=$TMP/probe.json
    shift
    "$LOAD" --url "$url" --connections 1 --duration 2s --warmup 0s \
        --max-requests 3 --json "$out" "$@" >/dev/null 2>&1 || return 1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r["status"]["2xx"]!=r["requests"] or r["requests"]==0)' "$out"
}

run_target() {
    local target=$1 round=$2 extra=() base
    if [[ $target == gateway-h2 ]]; then extra=(--h2); fi
    base=$RESULTS_DIR/round$round-$target
    if ! start_target "$target"; then
        SKIP[$target]=$START_ERROR
        log "  $target: ${SKIP[$target]}; skipped from now on"
        return 0
    fi
    local url=http://127.0.0.1:$PORT$REQUEST_PATH
    if ! probe "$url" "${extra[@]}"; then
        SKIP[$target]="probe request to $url did not get a 2xx"
        log "  $target: ${SKIP[$target]}; skipped from now on"
    elif "${LOAD_PIN[@]}" "$LOAD" --url "$url" --connections "$CONNECTIONS" \
        --duration "$DURATION" --warmup "$WARMUP" --threads "$LOAD_THREADS" \
        --json "$base.json" "${extra[@]}" >"$base.txt" 2>&1; then
        log "  $target: $(grep -E '^throughput' "$base.txt" | tr -s ' ')"
    else
        log "  $target: load generator failed, see $base.txt"
        rm -f "$base.json"
    fi
    if [[ -n $SERVER_PID ]]; then stop_pid "$SERVER_PID"; fi
}

write_environment() {
    {
        echo "date: $(date -Is)"
        echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
        echo "kernel: $(uname -sr)"
        echo "cpus: $(nproc)"
        echo "load average before the build: $LOADAVG"
        echo "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP connections=$CONNECTIONS load_threads=$LOAD_THREADS h2=$H2"
        echo "targets: $TARGETS"
        if find_bin nginx >/dev/null; then "$(find_bin nginx)" -v 2>&1; fi
        if find_bin haproxy >/dev/null; then "$(find_bin haproxy)" -v 2>&1 | head -1; fi
        echo "pinning: load='${LOAD_PIN[*]}' servers='${SERVER_PIN[*]}'"
    } >"$RESULTS_DIR/environment.txt"
}

summarise() {
    python3 - "$RESULTS_DIR" <<'PY'
import glob, json, os, re, statistics, sys

results_dir = sys.argv[1]
order = ["direct", "gateway", "gateway-h2", "nginx", "haproxy"]
runs = {}
for path in sorted(glob.glob(os.path.join(results_dir, "round*-*.json"))):
    target = re.match(r"round\d+-(.+)\.json$", os.path.basename(path)).group(1)
    runs.setdefault(target, []).append(json.load(open(path)))

def med(rs, key):
    return statistics.median(r[key] for r in rs)

rows = {}
for target, rs in runs.items():
    rows[target] = {
        "runs": len(rs),
        "rps": med(rs, "rps"),
        "p50_ms": med(rs, "p50_us") / 1000,
        "p99_ms": med(rs, "p99_us") / 1000,
        "non_2xx": sum(r["requests"] - r["status"]["2xx"] for r in rs),
        "errors": sum(r["errors"] for r in rs),
    }

def ratio(target, base):
    if base not in rows or rows[base]["rps"] == 0:
        return None
    return rows[target]["rps"] / rows[base]["rps"]

lines = ["%-11s %4s %11s %8s %8s %9s %9s %8s %7s" % (
    "target", "runs", "req/s", "p50 ms", "p99 ms", "vs direct", "vs nginx", "non-2xx", "errors")]
fmt_ratio = lambda x: "-" if x is None else "%.2fx" % x
for target in sorted(rows, key=lambda t: (order.index(t) if t in order else 99, t)):
    row = rows[target]
    row["vs_direct"] = ratio(target, "direct")
    row["vs_nginx"] = ratio(target, "nginx")
    lines.append("%-11s %4d %11.1f %8.3f %8.3f %9s %9s %8d %7d" % (
        target, row["runs"], row["rps"], row["p50_ms"], row["p99_ms"],
        fmt_ratio(row["vs_direct"]), fmt_ratio(row["vs_nginx"]), row["non_2xx"], row["errors"]))
table = "\n".join(lines)
print(table)
open(os.path.join(results_dir, "summary.txt"), "w").write(table + "\n")
json.dump(rows, open(os.path.join(results_dir, "summary.json"), "w"), indent=2)
PY
}

main() {
    # Two runs at once would share ports and CPUs and measure each other.
    exec 9>"${TMPDIR:-/tmp}/gateway-proxy-bench.lock"
    flock -n 9 || die "another proxy-bench.sh is running on this machine"
    # The summary takes every round*.json it finds; old ones would mix in.
    if compgen -G "$RESULTS_DIR/round*.json" >/dev/null; then
        die "$RESULTS_DIR already holds results; choose another RESULTS_DIR"
    fi
    mkdir -p "$RESULTS_DIR/logs"
    RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
    local port ports=$BACKEND_PORT
    if wants gateway || wants gateway-h2; then ports+=" $GATEWAY_PORT"; fi
    if wants nginx; then ports+=" $NGINX_PORT"; fi
    if wants haproxy; then ports+=" $HAPROXY_PORT"; fi
    for port in $ports; do
        if port_open "$port"; then die "127.0.0.1:$port is already in use; stop whatever listens there"; fi
    done
    if [[ $H2 == 1 ]] && ! wants gateway-h2; then
        # Right after the h1 gateway run, so both see the same machine state.
        local t with_h2=""
        for t in $TARGETS; do
            with_h2+="$t "
            if [[ $t == gateway ]]; then with_h2+="gateway-h2 "; fi
        done
        TARGETS=${with_h2% }
    fi

    # Checked before our own build raises it: other work on the machine
    # (a compile, a test run) skews results far more than run-to-run noise.
    read -r LOADAVG _ </proc/loadavg
    if python3 -c 'import sys; sys.exit(float(sys.argv[1]) < 0.5)' "$LOADAVG"; then
        log "warning: load average is $LOADAVG; results will be distorted by other work"
    fi
    build
    if wants gateway && [[ -z ${SKIP[gateway]:-} ]]; then
        if [[ ! -x $GATEWAY ]]; then SKIP[gateway]="$GATEWAY is missing"; fi
        if [[ ! -f $GATEWAY_CONFIG ]]; then SKIP[gateway]="$GATEWAY_CONFIG is missing"; fi
        if [[ -n ${SKIP[gateway]:-} ]]; then SKIP[gateway-h2]=${SKIP[gateway]}; fi
    fi
    install_proxies
    if wants nginx; then write_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$BACKEND_PORT"; fi
    if wants haproxy; then write_haproxy_conf "$TMP/haproxy.cfg" "$HAPROXY_PORT" "$BACKEND_PORT"; fi
    write_environment
    # Keep the exact proxy configs next to the numbers they produced.
    if [[ -f $TMP/nginx/nginx.conf ]]; then cp "$TMP/nginx/nginx.conf" "$RESULTS_DIR/logs/"; fi
    if [[ -f $TMP/haproxy.cfg ]]; then cp "$TMP/haproxy.cfg" "$RESULTS_DIR/logs/"; fi

    start_server backend "$BACKEND_PORT" "$BACKEND" --listen "127.0.0.1:$BACKEND_PORT" ||
        die "bench-backend: $START_ERROR"
    local backend_pid=$SERVER_PID

    local round target
    for ((round = 1; round <= ROUNDS; round++)); do
        log "round $round/$ROUNDS: $DURATION per target, $CONNECTIONS connections, warmup $WARMUP"
        for target in $TARGETS; do
            if [[ -n ${SKIP[$target]:-} ]]; then
                log "  $target: skipped (${SKIP[$target]})"
                continue
            fi
            run_target "$target" "$round"
        done
    done
    stop_pid "$backend_pid"

    echo
    echo "Median of $ROUNDS round(s); quote ratios against 'direct' from this same run."
    summarise
    local skipped
    for skipped in "${!SKIP[@]}"; do
        echo "skipped: $skipped (${SKIP[$skipped]})"
    done
    echo
    echo "Raw results: $RESULTS_DIR"
}

main "$@"
