"""Small services that mount eventlog's ASGI middleware, used by tests, benchmarks and docs."""
