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
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "provision: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
        exit 1
    fi
    echo "provision: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

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
