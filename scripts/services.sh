#!/usr/bin/env bash
# Start and stop real local servers for dailyfeed, without Docker:
#   kafka  Apache Kafka 3.9.1, single-node KRaft (broker+controller), 127.0.0.1:9092
#   mongo  FerretDB 1.24.2 embedded in a small Go program, SQLite backend, 127.0.0.1:27017
#
# Usage: scripts/services.sh COMMAND [kafka|mongo|all]
#   start [kafka|mongo|all]   build/resolve if needed, start, wait until ready (default: all)
#   stop  [kafka|mongo|all]   SIGTERM, wait up to 20 s, then SIGKILL (default: all)
#   restart [kafka|mongo|all]
#   status [kafka|mongo|all]  exit 0 if every named service runs, 1 otherwise
#   env                       print export lines: DAILYFEED_MONGO_URI, DAILYFEED_KAFKA_BOOTSTRAP_SERVERS
#                             (and DAILYFEED_KAFKA_BOOTSTRAP, same address)
#   check [kafka|mongo|all]   exit 0 if the tools to build and run are present, 3 if not
#   logs  kafka|mongo         last 50 lines of the service log
#   kafka-kill                kill -9 the broker (fault tests); `start kafka` brings it back
#   promtool                  build Prometheus's promtool (services/promtool) if needed; prints its path
#   kafka-start               same as `start kafka`
#
# State (jars, binary, data, logs, pid files) lives in $DAILYFEED_SERVICES_DIR,
# default <repo>/.services/. Jars are reused while services/kafka/pom.xml is
# unchanged; the FerretDB binary is reused while services/ferretdb/{go.mod,go.sum,main.go}
# are unchanged.
#
# Exit codes: 0 ok, 1 failure (e.g. not ready in time), 2 usage, 3 missing prerequisite
# (java, mvn or go) -- callers may skip integration tests on 3.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${DAILYFEED_SERVICES_DIR:-$REPO_ROOT/.services}"

HOST=127.0.0.1
KAFKA_PORT="${DAILYFEED_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${DAILYFEED_KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${DAILYFEED_MONGO_PORT:-27017}"

KAFKA_READY_TIMEOUT="${DAILYFEED_KAFKA_READY_TIMEOUT:-90}"
MONGO_READY_TIMEOUT="${DAILYFEED_MONGO_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${DAILYFEED_STOP_TIMEOUT:-20}"
KAFKA_HEAP_OPTS="${DAILYFEED_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
FERRETDB_LOG_LEVEL="${DAILYFEED_FERRETDB_LOG_LEVEL:-warn}" # info logs every client connection

KAFKA_SRC="$REPO_ROOT/services/kafka"
KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_CONF_DIR="$KAFKA_DIR/config"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_MAIN=kafka.Kafka

FERRET_SRC="$REPO_ROOT/services/ferretdb"
FERRET_BIN="$STATE_DIR/bin/ferretdb-dailyfeed"
MONGO_DIR="$STATE_DIR/mongo"
MONGO_DATA="$MONGO_DIR/data"
MONGO_LOG="$MONGO_DIR/ferretdb.log"
MONGO_PID="$MONGO_DIR/ferretdb.pid"

say() { echo "services: $*"; }
err() { echo "services: error: $*" >&2; }
die() { err "$*"; exit 1; }

# --- time ----------------------------------------------------------------------
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- hashing -------------------------------------------------------------------
hash_files() {
    if command -v sha256sum >/dev/null 2>&1; then
        cat "$@" | sha256sum | cut -d' ' -f1
    else
        cat "$@" | shasum -a 256 | cut -d' ' -f1
    fi
}

# --- prerequisites ---------------------------------------------------------------
missing_tools() { # prints the names of missing tools for the given service
    local svc=$1 t
    local -a need=()
    case $svc in
        kafka)
            need+=(java)
            kafka_libs_cached || need+=(mvn)
            ;;
        mongo)
            ferret_bin_cached || need+=(go)
            ;;
    esac
    for t in "${need[@]}"; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
}

require_tools() {
    local svc=$1 missing
    missing="$(missing_tools "$svc" | tr '\n' ' ')"
    if [[ -n "${missing// /}" ]]; then
        err "$svc needs: ${missing% } (not found on PATH)"
        exit 3
    fi
}

# --- processes -------------------------------------------------------------------
# pid_alive PIDFILE MARKER: the pid in PIDFILE runs and its command line contains MARKER
# (guards against a recycled pid and against zombies, whose cmdline is empty).
pid_alive() {
    local pidfile=$1 marker=$2 pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    fi
    return 0
}

read_pid() { cat "$1" 2>/dev/null || true; }

port_open() { # port_open PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# wait_ports_free SECONDS PORT...: a killed process can linger briefly with its sockets
# open after its pid stops looking alive; give the kernel a moment before deciding.
wait_ports_free() {
    local secs=$1 i p busy
    shift
    for ((i = 0; i < secs * 10; i++)); do
        busy=0
        for p in "$@"; do
            if port_open "$p"; then busy=1; fi
        done
        ((busy == 0)) && return 0
        sleep 0.1
    done
    return 1
}

# launch PIDFILE LOGFILE CMD...: start CMD detached, stdout+stderr appended to LOGFILE.
launch() {
    local pidfile=$1 logfile=$2
    shift 2
    {
        echo
        echo "===== services.sh: starting at $(date -u +%Y-%m-%dT%H:%M:%SZ): $*"
    } >>"$logfile"
    if command -v setsid >/dev/null 2>&1; then
        # Not a process-group leader here, so setsid execs in place: $! is the server's pid.
        setsid "$@" >>"$logfile" 2>&1 </dev/null &
    else
        nohup "$@" >>"$logfile" 2>&1 </dev/null &
    fi
    echo $! >"$pidfile"
}

# launched_alive PIDFILE: is the process we just launched still there? Only kill -0: until setsid has exec'd
# the server, /proc/PID/cmdline still shows this script, so the marker check of pid_alive would call a server
# that is starting "exited" (and leave it running without a pid file).
launched_alive() {
    local pid
    pid="$(read_pid "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# wait_ready SVC WHAT PIDFILE LOG PORT TIMEOUT INTERVAL CHECK T0: poll CHECK every INTERVAL seconds until it
# succeeds; fail with the log tail when the launched process dies or TIMEOUT seconds pass (the process is then
# left running, so `stop` can end it).
wait_ready() {
    local svc=$1 what=$2 pidfile=$3 log=$4 port=$5 timeout=$6 interval=$7 check=$8 t0=$9 deadline
    deadline=$(($(date +%s) + timeout))
    while (($(date +%s) < deadline)); do
        if ! launched_alive "$pidfile"; then
            show_log_tail "$log"
            rm -f "$pidfile"
            die "$svc: $what exited during startup (log: $log)"
        fi
        if "$check"; then
            say "$svc: ready on $HOST:$port (pid $(read_pid "$pidfile")) in $(since "$t0")"
            return 0
        fi
        sleep "$interval"
    done
    show_log_tail "$log"
    die "$svc: not ready after ${timeout}s (pid $(read_pid "$pidfile") left running; \`$0 stop $svc\` ends it)"
}

# stop_pid NAME PIDFILE MARKER [PORT...]
stop_pid() {
    local name=$1 pidfile=$2 marker=$3 pid t0 i
    if ! pid_alive "$pidfile" "$marker"; then
        rm -f "$pidfile"
        say "$name: not running"
        return 0
    fi
    pid="$(read_pid "$pidfile")"
    t0="$(now)"
    say "$name: stopping (pid $pid, SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        pid_alive "$pidfile" "$marker" || break
        sleep 0.1
    done
    if pid_alive "$pidfile" "$marker"; then
        say "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pidfile" "$marker" || break
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
    wait_ports_free 5 "${@:4}" || true
    say "$name: stopped in $(since "$t0")"
}

show_log_tail() {
    local logfile=$1
    if [[ -f "$logfile" ]]; then
        echo "services: ----- last 50 lines of $logfile -----" >&2
        tail -n 50 "$logfile" >&2
        echo "services: ----- end of $logfile -----" >&2
    fi
}

# ================================ Kafka ================================

kafka_pom_hash() { hash_files "$KAFKA_SRC/pom.xml"; }

kafka_libs_cached() {
    [[ -f "$KAFKA_LIBS/.pom.sha256" ]] &&
        [[ "$(cat "$KAFKA_LIBS/.pom.sha256")" == "$(kafka_pom_hash)" ]] &&
        compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

kafka_resolve() {
    local t0 tmp
    if kafka_libs_cached; then
        say "kafka: jars cached in $KAFKA_LIBS"
        return 0
    fi
    t0="$(now)"
    say "kafka: resolving jars with Maven (services/kafka/pom.xml) ..."
    tmp="$KAFKA_DIR/libs.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -q -B -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/mvn.log" 2>&1; then
        show_log_tail "$KAFKA_DIR/mvn.log"
        die "kafka: Maven could not resolve the broker jars"
    fi
    kafka_pom_hash >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    say "kafka: resolved $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $(since "$t0")"
}

kafka_java() { # kafka_java MAINCLASS ARGS... -- short-lived tool JVM, at most 60 s
    timeout 60 java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j.configuration="file:$KAFKA_SRC/tools-log4j.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

kafka_config() {
    mkdir -p "$KAFKA_CONF_DIR" "$KAFKA_DATA"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@LOG_DIRS@|$KAFKA_DATA|g" \
        "$KAFKA_SRC/server.properties.template" >"$KAFKA_CONF_DIR/server.properties"
    # Client settings for the readiness probe: fail fast, the loop retries.
    cat >"$KAFKA_CONF_DIR/probe.properties" <<EOF
request.timeout.ms=3000
default.api.timeout.ms=5000
reconnect.backoff.max.ms=500
EOF
}

kafka_format() {
    local t0 cid
    if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
        return 0
    fi
    t0="$(now)"
    if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
        cid="$(cat "$KAFKA_DIR/cluster.id")"
    else
        cid="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n 1 | tr -d '[:space:]')"
        [[ -n "$cid" ]] || die "kafka: could not generate a cluster id"
        echo "$cid" >"$KAFKA_DIR/cluster.id"
    fi
    say "kafka: formatting storage in $KAFKA_DATA (cluster id $cid)"
    if ! kafka_java kafka.tools.StorageTool format -t "$cid" \
        -c "$KAFKA_CONF_DIR/server.properties" --ignore-formatted >>"$KAFKA_LOG" 2>&1; then
        show_log_tail "$KAFKA_LOG"
        die "kafka: storage format failed"
    fi
    say "kafka: storage formatted in $(since "$t0")"
}

kafka_ready() { # metadata round trip through the admin client
    kafka_java org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$HOST:$KAFKA_PORT" \
        --command-config "$KAFKA_CONF_DIR/probe.properties" --list >/dev/null 2>&1
}

kafka_port_ready() { port_open "$KAFKA_PORT" && kafka_ready; }

kafka_wait_ready() {
    wait_ready kafka broker "$KAFKA_PID" "$KAFKA_LOG" "$KAFKA_PORT" "$KAFKA_READY_TIMEOUT" 1 kafka_port_ready "$1"
}

start_kafka() {
    local t0
    mkdir -p "$KAFKA_DIR"
    if pid_alive "$KAFKA_PID" "$KAFKA_MAIN"; then
        if port_open "$KAFKA_PORT"; then
            say "kafka: already running (pid $(read_pid "$KAFKA_PID")) on $HOST:$KAFKA_PORT"
            return 0
        fi
        say "kafka: pid $(read_pid "$KAFKA_PID") is starting, waiting for it"
        kafka_wait_ready "$(now)"
        return 0
    fi
    rm -f "$KAFKA_PID"
    require_tools kafka
    if ! wait_ports_free 5 "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; then
        die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on $HOST is taken by another process"
    fi
    kafka_resolve
    kafka_config
    kafka_format
    t0="$(now)"
    say "kafka: starting broker (log: $KAFKA_LOG)"
    # shellcheck disable=SC2086 # heap options are a word list on purpose
    launch "$KAFKA_PID" "$KAFKA_LOG" java $KAFKA_HEAP_OPTS \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$KAFKA_SRC/log4j.properties" \
        -Dkafka.logs.dir="$KAFKA_DIR" \
        -cp "$KAFKA_LIBS/*" "$KAFKA_MAIN" "$KAFKA_CONF_DIR/server.properties"
    kafka_wait_ready "$t0"
}

stop_kafka() { stop_pid kafka "$KAFKA_PID" "$KAFKA_MAIN" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; }

kafka_kill() {
    local pid i
    if ! pid_alive "$KAFKA_PID" "$KAFKA_MAIN"; then
        rm -f "$KAFKA_PID"
        say "kafka: not running"
        return 0
    fi
    pid="$(read_pid "$KAFKA_PID")"
    say "kafka: kill -9 $pid"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$KAFKA_PID" "$KAFKA_MAIN" || break
        sleep 0.1
    done
    rm -f "$KAFKA_PID"
    wait_ports_free 5 "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" || true
}

# ================================ FerretDB ================================

ferret_src_hash() { hash_files "$FERRET_SRC/go.mod" "$FERRET_SRC/go.sum" "$FERRET_SRC/main.go"; }

ferret_bin_cached() {
    [[ -x "$FERRET_BIN" && -f "$FERRET_BIN.sha256" ]] &&
        [[ "$(cat "$FERRET_BIN.sha256")" == "$(ferret_src_hash)" ]]
}

# go_build LABEL SRC_DIR BIN PACKAGE HASH: build a Go program of the module in SRC_DIR into BIN, unless BIN was
# built from sources of the same HASH (modules come from the Go module proxy; the build cache makes rebuilds quick).
go_build() {
    local label=$1 src=$2 bin=$3 package=$4 hash=$5 t0
    if [[ -x "$bin" && -f "$bin.sha256" && "$(cat "$bin.sha256")" == "$hash" ]]; then
        say "$label: binary cached at $bin"
        return 0
    fi
    t0="$(now)"
    mkdir -p "$(dirname "$bin")"
    say "$label: building ${src#"$REPO_ROOT"/} (go build; the first build takes minutes) ..."
    if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" "$package") \
        >"$bin.go-build.log" 2>&1; then
        show_log_tail "$bin.go-build.log"
        die "$label: go build failed"
    fi
    mv -f "$bin.tmp" "$bin"
    echo "$hash" >"$bin.sha256"
    say "$label: built $bin in $(since "$t0")"
}

ferret_build() { go_build mongo "$FERRET_SRC" "$FERRET_BIN" . "$(ferret_src_hash)"; }

# ================================ promtool ================================
# Prometheus's promtool, for CI's checks of deploy/prometheus (tests/test_ops_artefacts.py): built like FerretDB,
# from services/promtool (a module whose go.mod pins github.com/prometheus/prometheus as a tool).

PROMTOOL_SRC="$REPO_ROOT/services/promtool"
PROMTOOL_BIN="$STATE_DIR/bin/promtool"

promtool_build() {
    go_build promtool "$PROMTOOL_SRC" "$PROMTOOL_BIN" github.com/prometheus/prometheus/cmd/promtool \
        "$(hash_files "$PROMTOOL_SRC/go.mod" "$PROMTOOL_SRC/go.sum")" >&2
    echo "$PROMTOOL_BIN"
}


mongo_ready() {
    port_open "$MONGO_PORT" || return 1
    if command -v python3 >/dev/null 2>&1; then
        timeout 10 python3 "$REPO_ROOT/scripts/mongo_ping.py" "$HOST" "$MONGO_PORT" 2>/dev/null
    fi
}

mongo_wait_ready() {
    wait_ready mongo FerretDB "$MONGO_PID" "$MONGO_LOG" "$MONGO_PORT" "$MONGO_READY_TIMEOUT" 0.2 mongo_ready "$1"
}

start_mongo() {
    local t0
    mkdir -p "$MONGO_DIR"
    if pid_alive "$MONGO_PID" ferretdb-dailyfeed; then
        if port_open "$MONGO_PORT"; then
            say "mongo: already running (pid $(read_pid "$MONGO_PID")) on $HOST:$MONGO_PORT"
            ferret_bin_cached || say "mongo: note: services/ferretdb changed since the build; \`$0 restart mongo\` rebuilds"
            return 0
        fi
        say "mongo: pid $(read_pid "$MONGO_PID") is starting, waiting for it"
        mongo_wait_ready "$(now)"
        return 0
    fi
    rm -f "$MONGO_PID"
    require_tools mongo
    if ! wait_ports_free 5 "$MONGO_PORT"; then
        die "mongo: port $MONGO_PORT on $HOST is taken by another process"
    fi
    ferret_build
    mkdir -p "$MONGO_DATA"
    t0="$(now)"
    say "mongo: starting FerretDB (sqlite in $MONGO_DATA, log: $MONGO_LOG)"
    launch "$MONGO_PID" "$MONGO_LOG" "$FERRET_BIN" \
        -listen-addr "$HOST:$MONGO_PORT" -data-dir "$MONGO_DATA" -log-level "$FERRETDB_LOG_LEVEL"
    mongo_wait_ready "$t0"
}

stop_mongo() { stop_pid mongo "$MONGO_PID" ferretdb-dailyfeed "$MONGO_PORT"; }

# ================================ commands ================================

services_of() { # expand kafka|mongo|all (default all)
    case "${1:-all}" in
        all) echo "kafka mongo" ;;
        kafka) echo kafka ;;
        mongo | ferretdb) echo mongo ;;
        *) err "unknown service '${1}' (kafka, mongo or all)"; exit 2 ;;
    esac
}

status_one() {
    case $1 in
        kafka)
            if pid_alive "$KAFKA_PID" "$KAFKA_MAIN"; then
                if port_open "$KAFKA_PORT"; then
                    say "kafka: running (pid $(read_pid "$KAFKA_PID")) on $HOST:$KAFKA_PORT"
                    return 0
                fi
                say "kafka: starting (pid $(read_pid "$KAFKA_PID")), port $KAFKA_PORT not open yet"
                return 1
            fi
            say "kafka: stopped"
            return 1
            ;;
        mongo)
            if pid_alive "$MONGO_PID" ferretdb-dailyfeed; then
                if port_open "$MONGO_PORT"; then
                    say "mongo: running (pid $(read_pid "$MONGO_PID")) on $HOST:$MONGO_PORT"
                    return 0
                fi
                say "mongo: starting (pid $(read_pid "$MONGO_PID")), port $MONGO_PORT not open yet"
                return 1
            fi
            say "mongo: stopped"
            return 1
            ;;
    esac
}

print_env() {
    echo "export DAILYFEED_MONGO_URI=mongodb://$HOST:$MONGO_PORT/?directConnection=true"
    # The app's setting kafka.bootstrap-servers reads DAILYFEED_KAFKA_BOOTSTRAP_SERVERS;
    # DAILYFEED_KAFKA_BOOTSTRAP is the same address under its short name.
    echo "export DAILYFEED_KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT"
    echo "export DAILYFEED_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}" svc svcs="" rc=0 t0
    shift || true
    case "$cmd" in
        start | stop | restart | status | check) svcs="$(services_of "${1:-all}")" ;;
    esac
    case "$cmd" in
        start)
            t0="$(now)"
            mkdir -p "$STATE_DIR"
            for svc in $svcs; do "start_$svc"; done
            say "start done in $(since "$t0")"
            ;;
        stop)
            for svc in $svcs; do "stop_$svc"; done
            ;;
        restart)
            for svc in $svcs; do "stop_$svc"; done
            for svc in $svcs; do "start_$svc"; done
            ;;
        status)
            for svc in $svcs; do status_one "$svc" || rc=1; done
            return "$rc"
            ;;
        env) print_env ;;
        check)
            local missing all_missing=""
            for svc in $svcs; do
                missing="$(missing_tools "$svc" | tr '\n' ' ')"
                if [[ -n "${missing// /}" ]]; then
                    say "$svc: missing ${missing% }"
                    all_missing+="$missing"
                    rc=3
                else
                    say "$svc: prerequisites present"
                fi
            done
            # Last line: a one-line summary (callers show it as the reason to skip).
            if ((rc == 3)); then
                say "not found on PATH: $(echo "$all_missing" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ $//')"
            fi
            return "$rc"
            ;;
        logs)
            case "${1:-}" in
                kafka) tail -n 50 "$KAFKA_LOG" ;;
                mongo | ferretdb) tail -n 50 "$MONGO_LOG" ;;
                *) err "usage: $0 logs kafka|mongo"; exit 2 ;;
            esac
            ;;
        kafka-kill) kafka_kill ;;
        promtool) promtool_build ;;
        kafka-start) mkdir -p "$STATE_DIR"; start_kafka ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
