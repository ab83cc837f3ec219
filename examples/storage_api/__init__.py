"""A small Storage API (buckets, tables, tokens) in the spirit of Keboola's, audited by eventlog's middleware.

Run it (eventlog must give it a token with the `events:write` scope):

    STORAGE_API_EVENTLOG_URL=http://127.0.0.1:8080 STORAGE_API_EVENTLOG_TOKEN=evl_... \\
    STORAGE_API_MASTER_TOKEN=my-master-token STORAGE_API_SPOOL_DIR=./spool \\
    .venv/bin/uvicorn examples.storage_api.app:create_app --factory --port 8000
"""
