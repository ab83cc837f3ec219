"""A realistic audit trail, generated: what the search benchmark loads and the conformance test compares on.

Five tenants of which one ("acme", 80 %) holds most events, spread over the 13 days before an anchor
time. Actions, actors (users with names, services, CI tokens), IPv4 and IPv6 addresses, outcomes,
statuses, durations, messages from a vocabulary and nested details vary like a real trail. Every
document is built exactly as the service builds it: `EventIn` validation, `to_document`, RFC 8785
canonical JSON and the SHA-256 chain link (one stream), UUIDv7 ids taken at receipt time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import uuid_utils

from eventlog.canonical import canonical_json
from eventlog.chain import GENESIS, link_hash
from eventlog.journal import Entry
from eventlog.model import EventIn, format_time, time_to_us, to_document

TENANTS: tuple[tuple[str, float], ...] = (
    ("acme", 0.80),
    ("globex", 0.08),
    ("initech", 0.06),
    ("umbrella", 0.04),
    ("hooli", 0.02),
)
BIG_TENANT = "acme"
SPAN = timedelta(days=13)
STREAM = "bench-search"


@dataclass(frozen=True)
class Action:
    name: str
    weight: float
    target_type: str
    method: str
    route: str
    verb: str  # past tense, for the message
    source: str = "api"


_ACTIONS: tuple[Action, ...] = (
    Action("storage.objects.read", 20, "object", "GET", "/v1/buckets/{bucket}/objects/{target}", "read"),
    Action("storage.objects.write", 9, "object", "PUT", "/v1/buckets/{bucket}/objects/{target}", "wrote"),
    Action("storage.tables.create", 3, "table", "POST", "/v1/projects/{project}/tables", "created"),
    Action("storage.tables.delete", 1, "table", "DELETE", "/v1/projects/{project}/tables/{target}", "deleted"),
    Action("storage.tables.export", 2, "table", "POST", "/v1/projects/{project}/tables/{target}:export", "exported"),
    Action("iam.users.update", 2, "user", "PATCH", "/v1/users/{target}", "updated"),
    Action("iam.roles.grant", 1, "role_binding", "POST", "/v1/projects/{project}/roles/{target}:grant", "granted"),
    Action("iam.roles.revoke", 0.5, "role_binding", "POST", "/v1/projects/{project}/roles/{target}:revoke", "revoked"),
    Action("auth.sessions.create", 12, "session", "POST", "/v1/sessions", "opened"),
    Action("auth.sessions.delete", 4, "session", "DELETE", "/v1/sessions/{target}", "closed"),
    Action(
        "auth.password.reset",
        0.5,
        "user",
        "POST",
        "/v1/users/{target}/password:reset",
        "requested a password reset for",
    ),
    Action("auth.mfa.verify", 3, "session", "POST", "/v1/sessions/{target}/mfa", "passed the MFA challenge of"),
    Action(
        "compute.instances.start", 3, "instance", "POST", "/v1/projects/{project}/instances/{target}:start", "started"
    ),
    Action(
        "compute.instances.stop", 3, "instance", "POST", "/v1/projects/{project}/instances/{target}:stop", "stopped"
    ),
    Action(
        "compute.instances.resize", 0.5, "instance", "PATCH", "/v1/projects/{project}/instances/{target}", "resized"
    ),
    Action("billing.invoices.download", 1, "invoice", "GET", "/v1/billing/invoices/{target}/pdf", "downloaded"),
    Action("billing.plans.change", 0.2, "plan", "PUT", "/v1/billing/plan", "changed"),
    Action("kms.keys.rotate", 0.3, "crypto_key", "POST", "/v1/projects/{project}/keys/{target}:rotate", "rotated"),
    Action("kms.keys.decrypt", 5, "crypto_key", "POST", "/v1/projects/{project}/keys/{target}:decrypt", "used"),
    Action(
        "network.firewall.update", 0.5, "firewall_rule", "PUT", "/v1/projects/{project}/firewall/{target}", "changed"
    ),
    Action("jobs.runs.create", 8, "job", "POST", "/v1/projects/{project}/jobs/{target}/runs", "ran"),
    Action("jobs.runs.cancel", 1, "job", "POST", "/v1/projects/{project}/jobs/{target}/runs:cancel", "cancelled"),
    Action("cloudtrail.s3.PutObject", 5, "s3_object", "PUT", "/{bucket}/{target}", "put", "cloudtrail"),
    Action("cloudtrail.sts.AssumeRole", 3, "iam_role", "POST", "/", "assumed", "cloudtrail"),
    Action("http.GET", 6, "route", "GET", "/api/v2/{bucket}/{target}", "called", "middleware"),
    Action("http.POST", 3, "route", "POST", "/api/v2/{bucket}", "called", "middleware"),
)
_ACTION_WEIGHTS = tuple(a.weight for a in _ACTIONS)

_FIRST = ("Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "José", "Zoë", "Chen", "Priya", "Olu", "Ines")
_LAST = ("Lovelace", "Hopper", "Turing", "Johnson", "Hamilton", "Müller", "Novák", "Okafor", "Sato", "Ivanova")
_SERVICES = tuple(
    f"svc-{n}"
    for n in (
        "billing",
        "deployer",
        "backup",
        "scheduler",
        "ingest",
        "reporting",
        "search",
        "mailer",
        "etl",
        "auth",
        "cdn",
        "metrics",
    )
)
_TABLES = ("sales", "payroll", "customers", "orders", "inventory", "web_events", "churn_scores", "ledger", "leads")
_BUCKETS = ("exports", "raw-landing", "backups", "reports", "ml-features")
_JOBS = ("nightly-etl", "payroll-sync", "dbt-run", "crm-import", "backup-verify", "invoice-mailer")
_INSTANCES = ("worker", "api", "db-replica", "gpu-trainer", "bastion")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "terraform-provider-acme/3.4.1 Terraform/1.9.8",
    "acme-cli/2.18.0 python/3.12.4 linux/x86_64",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5",
)
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2")
_ENVS = ("prod", "prod", "prod", "staging", "dev")
_LABELS = ("pii", "finance", "team-data", "team-platform", "gdpr", "sox")
# Failure statuses with weights and the reason a message ends with.
_FAILURES: tuple[tuple[int, float, str], ...] = (
    (403, 35, "permission denied"),
    (404, 20, "not found"),
    (409, 10, "conflict with an existing resource"),
    (422, 10, "validation failed"),
    (429, 10, "quota exceeded"),
    (500, 5, "internal error"),
    (502, 3, "upstream timeout"),
    (503, 7, "service unavailable"),
)
_FAILURE_WEIGHTS = tuple(f[1] for f in _FAILURES)


def _ip(rng: random.Random) -> str:
    """Private IPv4 (10.0-63.x.x), documentation IPv4 (RFC 5737) and IPv6 (RFC 3849) addresses."""
    roll = rng.random()
    if roll < 0.75:
        return f"10.{rng.randrange(64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if roll < 0.85:
        return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"
    return f"2001:db8:{rng.randrange(256):x}::{rng.randrange(1, 0x10000):x}"


def _user(rng: random.Random) -> tuple[str, str]:
    """A user id and its (stable) name; a few users do most of the work."""
    n = min(int(rng.expovariate(1 / 300)), 4999)
    return f"u-{n:05d}", f"{_FIRST[n % len(_FIRST)]} {_LAST[(n // len(_FIRST)) % len(_LAST)]}"


def _target_name(rng: random.Random, action: Action, project: str) -> str:
    kind = action.target_type
    if kind == "table":
        return rng.choice(_TABLES)
    if kind in ("object", "s3_object"):
        return f"{rng.choice(_TABLES)}/{rng.randrange(2025, 2027)}-{rng.randrange(1, 13):02d}/part-{rng.randrange(64):04d}.parquet"
    if kind == "job":
        return rng.choice(_JOBS)
    if kind == "instance":
        return f"{rng.choice(_INSTANCES)}-{rng.randrange(40)}"
    if kind == "invoice":
        return f"invoice INV-2026-{rng.randrange(100_000):06d}"
    if kind == "user":
        return _user(rng)[1]
    if kind == "crypto_key":
        return f"{rng.choice(_ENVS)}-{rng.choice(('db', 'backup', 'token'))}-key"
    if kind == "iam_role":
        return f"arn:aws:iam::123456789012:role/{rng.choice(('deployer', 'readonly', 'admin', 'etl'))}"
    if kind == "route":
        return f"/api/v2/{rng.choice(_BUCKETS)}"
    return f"{kind} of {project}"


def make_event(rng: random.Random, at: datetime) -> dict[str, Any]:
    """One plausible audit event as a producer sends it, at time `at`."""
    action = rng.choices(_ACTIONS, weights=_ACTION_WEIGHTS)[0]
    project = f"prj-{min(int(rng.expovariate(1 / 40)), 999):04d}"
    target_id = f"{action.target_type[:3]}-{rng.getrandbits(40):010x}"
    target_name = _target_name(rng, action, project)
    roll = rng.random()
    reason = ""
    if roll < 0.07:
        outcome = "failure"
        if action.name.startswith("auth.") and rng.random() < 0.5:
            status, reason = 401, "invalid credentials"
        else:
            status, _, reason = rng.choices(_FAILURES, weights=_FAILURE_WEIGHTS)[0]
    elif roll < 0.08:
        outcome, status = "unknown", 0
    else:
        outcome = "success"
        status = {"POST": 201, "DELETE": 204}.get(action.method, 200)
    actor: dict[str, Any]
    who_roll = rng.random()
    if action.source == "cloudtrail":
        actor = {"type": "aws.IAMUser", "id": f"AIDA{rng.getrandbits(32):08X}", "name": rng.choice(_SERVICES)}
    elif who_roll < 0.70:
        user_id, name = _user(rng)
        actor = {"type": "user", "id": user_id, "name": name}
    elif who_roll < 0.95:
        service = rng.choice(_SERVICES)
        actor = {"type": "service", "id": service, "name": service}
    else:
        actor = {"type": "token", "id": f"tok-ci-{rng.randrange(12):02d}"}
    actor["ip"] = _ip(rng)
    if rng.random() < 0.3:
        actor["user_agent"] = rng.choice(_AGENTS)
    # Timeouts upstream take seconds; everything else is log-normal around 25 ms.
    duration = rng.uniform(5_000, 30_000) if status == 502 else rng.lognormvariate(math.log(25), 1.1)
    bucket = rng.choice(_BUCKETS)
    request: dict[str, Any] = {
        "method": action.method,
        "path": action.route.format(project=project, target=target_id, bucket=bucket),
        "route": action.route,
        "duration_ms": round(duration, 3),
        "request_id": f"{rng.getrandbits(64):016x}",
        "bytes_in": rng.randrange(0, 4096) if action.method != "GET" else 0,
        "bytes_out": int(rng.expovariate(1 / 20_000)),
    }
    if status:
        request["status"] = status
    details: dict[str, Any] = {"project": project, "region": rng.choice(_REGIONS), "env": rng.choice(_ENVS)}
    if action.method in ("PATCH", "PUT") or (action.method == "POST" and rng.random() < 0.3):
        details["changes"] = [
            {
                "field": rng.choice(("role", "quota", "ttl", "cidr", "size")),
                "old": rng.randrange(100),
                "new": rng.randrange(100),
            }
            for _ in range(rng.randrange(1, 3))
        ]
    if outcome == "failure":
        details["error"] = {"code": status, "reason": reason, "retryable": status >= 500 or status == 429}
    if action.source == "cloudtrail":
        details["aws"] = {
            "account": "123456789012",
            "event_source": "s3.amazonaws.com" if "s3" in action.name else "sts.amazonaws.com",
            "request_parameters": {"bucketName": bucket, "key": target_name},
        }
    if rng.random() < 0.15:
        details["labels"] = rng.sample(_LABELS, rng.randrange(1, 3))
    who = actor.get("name") or actor["id"]
    message = f"{who} {action.verb} {action.target_type.replace('_', ' ')} {target_name}"
    if reason:
        message += f": {reason} (HTTP {status})"
    return {
        "time": format_time(at),
        "action": action.name,
        "outcome": outcome,
        "actor": actor,
        "target": {"type": action.target_type, "id": target_id, "name": target_name},
        "request": request,
        "source": action.source,
        "message": message,
        "details": details,
    }


@dataclass
class Chain:
    """Stored documents as the journal makes them: validated at `now`, server fields set, each linked to the last."""

    stream: str
    now: datetime
    seq: int = 0
    prev: str = GENESIS

    def document(
        self, fields: dict[str, Any], *, tenant: str, event_id: str, received_at: datetime, source: str | None = None
    ) -> dict[str, Any]:
        context = {"now": self.now, "retention_days": 14, "max_future_seconds": 300, "max_details_depth": 8}
        event = EventIn.model_validate(fields, context=context)
        document = to_document(event, event_id=event_id, tenant=tenant, received_at=received_at, source=source)
        digest = link_hash(self.prev, canonical_json(document))
        self.seq += 1
        document["chain"] = {"stream": self.stream, "seq": self.seq, "prev": self.prev, "hash": digest}
        self.prev = digest
        return document


@dataclass
class Generator:
    """The N events of the trail in time order, as the journal would hold them: chained, with their journal seq."""

    events: int
    seed: int
    anchor: datetime
    bytes_total: int = 0

    def __post_init__(self) -> None:
        self.chain = Chain(STREAM, self.anchor)

    @property
    def seq(self) -> int:
        return self.chain.seq

    def chunks(self, size: int) -> Iterator[list[Entry]]:
        rng = random.Random(self.seed)
        tenants = tuple(t for t, _ in TENANTS)
        weights = tuple(w for _, w in TENANTS)
        start = self.anchor - SPAN
        step = SPAN / self.events
        batch: list[Entry] = []
        for i in range(self.events):
            at = start + step * (i + rng.random())
            received = at + timedelta(seconds=rng.uniform(0.02, 1.5))
            tenant = rng.choices(tenants, weights=weights)[0]
            fields = make_event(rng, at)
            source = fields.pop("source")  # `cloudtrail` is the importer's, which EventIn refuses from producers
            event_id = str(uuid_utils.uuid7(nanoseconds=time_to_us(received) * 1000))
            document = self.chain.document(
                fields, tenant=tenant, event_id=event_id, received_at=received, source=source
            )
            raw = orjson.dumps(document)
            self.bytes_total += len(raw)
            batch.append(Entry(self.chain.seq, event_id, tenant, raw, received.timestamp()))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
