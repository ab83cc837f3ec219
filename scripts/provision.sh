#!/usr/bin/env bash
# Provision what the test suite needs on this machine, idempotently:
# Debian packages for the real services, a check of SQLite FTS5, and the
# OpenSearch distribution fetched into its cache (the test fixture starts the
# node itself through scripts/opensearch.sh, or uses OPENSEARCH_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in unzip curl java mvn runuser; do
    command -v "$tool" >/dev/null 2>&1 && continue
    case "$tool" in
        java) need_apt+=(openjdk-17-jre-headless) ;;
        mvn) need_apt+=(maven) ;;
        runuser) need_apt+=(util-linux) ;;
        *) need_apt+=("$tool") ;;
    esac
done
# The syslog receivers of the `syslog` tests: rsyslog with its TLS driver (GnuTLS); the headless
# Chromium of the `browser` tests (Playwright drives /usr/bin/chromium: `playwright install` cannot download here);
# and HAProxy, the load balancer in front of several eventlog nodes (tests/haproxy.py runs /usr/sbin/haproxy).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in rsyslog rsyslog-gnutls chromium haproxy; do
    installed "$pkg" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "provision: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
        exit 1
    fi
    echo "provision: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# syslog-ng, the second receiver. syslog-ng-core conflicts with rsyslog in Debian (both provide
# system-log-daemon), so unless a syslog-ng is installed, its libraries are installed and the package
# itself is unpacked into the cache, where tests/syslog_receivers.py runs it from.
syslog_ng_root=${EVENTLOG_CACHE_DIR:-$HOME/.cache/eventlog}/syslog-ng/root
syslog_ng=$syslog_ng_root/usr/sbin/syslog-ng
if ! command -v syslog-ng >/dev/null 2>&1 && [[ ! -x /usr/sbin/syslog-ng ]]; then
    if [[ ! -x $syslog_ng ]]; then
        apt-cache show syslog-ng-core >/dev/null 2>&1 || { [[ $(id -u) -eq 0 ]] && apt-get update -qq; }
        mapfile -t ng_libs < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances syslog-ng-core | sed -n 's/^ *|\{0,1\}Depends: \(lib[^ <>]*\)$/\1/p' | sort -u)
        missing=()
        for lib in "${ng_libs[@]}"; do installed "$lib" || missing+=("$lib"); done
        if ((${#missing[@]})); then
            if [[ $(id -u) -ne 0 ]]; then
                echo "provision: syslog-ng needs ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
                exit 1
            fi
            echo "provision: apt-get install ${missing[*]} (for syslog-ng)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        fi
        download=$(mktemp -d)
        chown _apt "$download" 2>/dev/null || true # apt downloads as the user _apt when it can
        (cd "$download" && apt-get download -qq syslog-ng-core)
        mkdir -p "$syslog_ng_root"
        dpkg-deb -x "$download"/syslog-ng-core_*.deb "$syslog_ng_root"
        rm -rf "$download"
        echo "provision: syslog-ng-core unpacked into $syslog_ng_root"
    fi
    if ! LD_LIBRARY_PATH=$syslog_ng_root/usr/lib/syslog-ng "$syslog_ng" --version >/dev/null; then
        echo "provision: $syslog_ng does not run; remove $syslog_ng_root and run this script again as root" >&2
        exit 1
    fi
fi
echo "provision: rsyslog, syslog-ng and haproxy ok"

python=".venv/bin/python"
"$python" - <<'PY'
import sqlite3, sys
conn = sqlite3.connect(":memory:")
try:
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'ascii')")
except sqlite3.OperationalError as exc:
    sys.exit(f"SQLite {sqlite3.sqlite_version} lacks FTS5 ({exc}); install a Python built against SQLite >= 3.38 with FTS5")
if sqlite3.sqlite_version_info < (3, 38):
    sys.exit(f"SQLite {sqlite3.sqlite_version} is too old (the query compiler uses ->); need >= 3.38")
PY
echo "provision: SQLite with FTS5 ok"

if [[ -z "${OPENSEARCH_URL:-}" ]]; then
    bash scripts/opensearch.sh fetch
fi
