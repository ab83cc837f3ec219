"""The Prometheus metrics of one node: one registry (so tests can build many apps) and each core component's own.

Each component declares what it counts next to its code (`IngestMetrics` in `append`, `JournalMetrics`
in `journal`, `SinkMetrics` in `fanout`, `AuthMetrics` in `auth`); a component outside the core
registers its own on `registry` (the CloudTrail poll, the syslog sink).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from eventlog.append import IngestMetrics
from eventlog.auth import AuthMetrics
from eventlog.fanout import SinkMetrics
from eventlog.journal import JournalMetrics


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingest = IngestMetrics.register(self.registry)
        self.journal = JournalMetrics.register(self.registry)
        self.sinks = SinkMetrics.register(self.registry)
        self.auth = AuthMetrics.register(self.registry)
