#!/usr/bin/env bash
# Provision what the test suite needs on this machine, idempotently.
# Today the suite needs SQLite with FTS5 (Python's own); services of later
# issues (OpenSearch via scripts/opensearch.sh, rsyslog, the S3 server,
# Chromium) are added here as their tests arrive.
set -euo pipefail
cd "$(dirname "$0")/.."

python=".venv/bin/python"
if ! "$python" - <<'PY'
import sqlite3, sys
conn = sqlite3.connect(":memory:")
try:
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
except sqlite3.OperationalError as exc:
    sys.exit(f"SQLite {sqlite3.sqlite_version} lacks FTS5 ({exc}); install a Python built against SQLite >= 3.35 with FTS5")
PY
then
    exit 1
fi
echo "provision: SQLite with FTS5 ok"
