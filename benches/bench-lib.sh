# bench-lib.sh: helpers shared by proxy-bench.sh, side-by-side.sh and
# failover-bench.sh (sourced, not run; the script sets SCRIPT for the log
# prefix). Servers started here are tracked in LIVE and stopped by cleanup;
# everything listens on 127.0.0.1 only.

log() { printf '[%s] %s\n' "$SCRIPT" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# One CPU for the load generator, the other for every server process, so the
# client never competes with what it measures. The direct baseline uses the
# same split, which is what makes the ratios comparable.
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    LOAD_PIN=(taskset -c 0)
    SERVER_PIN=(taskset -c 1)
else
    log "warning: taskset or a second CPU is missing; running unpinned (noisier)"
    LOAD_PIN=()
    SERVER_PIN=()
fi

declare -A LIVE=() # pid -> name

alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

stop_pid() {
    local pid=$1 tick
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((tick = 0; tick < 50; tick++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
    unset "LIVE[$pid]"
}

cleanup() {
    local pid
    for pid in "${!LIVE[@]}"; do
        stop_pid "$pid"
    done
    [[ -n ${TMP:-} ]] && rm -rf "$TMP"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT_WAIT_TICKS=100 # x 0.1 s: how long a server gets to start accepting

# Polls, bounded, until the port accepts; fails early if the server died.
wait_port() {
    local port=$1 pid=$2 tick
    for ((tick = 0; tick < PORT_WAIT_TICKS; tick++)); do
        port_open "$port" && return 0
        alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

# start_server NAME PORT CMD...: pinned to the server CPU; sets SERVER_PID,
# or START_ERROR (also logged) and fails.
start_server() {
    local name=$1 port=$2
    shift 2
    SERVER_PID=""
    # Whatever already listens there is not what we mean to measure, and
    # would make the readiness check below pass for the wrong process.
    if port_open "$port"; then
        START_ERROR="port $port is already in use by another process"
        log "$name: $START_ERROR"
        return 1
    fi
    # fd 9 (proxy-bench.sh's run lock) is closed so a stray server cannot hold it.
    "${SERVER_PIN[@]}" "$@" 9>&- >>"$RESULTS_DIR/logs/$name.log" 2>&1 &
    SERVER_PID=$!
    LIVE[$SERVER_PID]=$name
    # The second look catches a server that lost a bind race and exited.
    if ! wait_port "$port" "$SERVER_PID" || ! { sleep 0.2 && alive "$SERVER_PID"; }; then
        START_ERROR="did not start listening on port $port (log: $RESULTS_DIR/logs/$name.log)"
        log "$name: $START_ERROR"
        stop_pid "$SERVER_PID"
        SERVER_PID=""
        return 1
    fi
}

find_bin() {
    command -v "$1" 2>/dev/null && return 0
    [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1" && return 0
    return 1
}

# write_nginx_conf DIR PORT BACKEND_PORT
write_nginx_conf() {
    local dir=$1 port=$2 backend=$3 temp_paths="" module
    mkdir -p "$dir"
    # Point every compiled-in temp path into the temp dir so nginx never
    # writes under /var/lib; naming a module that is absent is an error.
    for module in client_body proxy fastcgi uwsgi scgi; do
        if ! "$(find_bin nginx)" -V 2>&1 | grep -q -- "--without-http_${module}_module"; then
            temp_paths+="    ${module}_temp_path $dir/${module}_temp;"$'\n'
        fi
    done
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $RESULTS_DIR/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$temp_paths
    # The default of 1000 requests per connection would make nginx, alone
    # among the targets, close and reopen connections during the run.
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$backend;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
}

# write_haproxy_conf FILE PORT BACKEND_PORT: HAProxy as the gateway's
# equivalent, one thread, connections to the backend kept alive and reused.
write_haproxy_conf() {
    local file=$1 port=$2 backend=$3
    cat >"$file" <<CONF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

listen gateway_equivalent
    bind 127.0.0.1:$port
    server backend 127.0.0.1:$backend
CONF
}
