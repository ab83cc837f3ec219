"""Plausible audit events as producers send them, shared by the ingest and OpenSearch benchmarks.

Addresses come from the documentation ranges only (RFC 5737 / RFC 3849): they are event data, never a
traffic target.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

_ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("storage.tables.create", "table", "POST", "/v1/projects/{project}/tables"),
    ("storage.tables.delete", "table", "DELETE", "/v1/projects/{project}/tables/{target}"),
    ("storage.objects.read", "object", "GET", "/v1/projects/{project}/buckets/{target}/objects"),
    ("iam.users.update", "user", "PATCH", "/v1/users/{target}"),
    ("iam.roles.grant", "role_binding", "POST", "/v1/projects/{project}/roles/{target}:grant"),
    ("billing.invoices.download", "invoice", "GET", "/v1/billing/invoices/{target}/pdf"),
    ("compute.instances.start", "instance", "POST", "/v1/projects/{project}/instances/{target}:start"),
    ("auth.sessions.create", "session", "POST", "/v1/sessions"),
    ("network.firewall.update", "firewall_rule", "PUT", "/v1/projects/{project}/firewall/{target}"),
    ("kms.keys.rotate", "crypto_key", "POST", "/v1/projects/{project}/keys/{target}:rotate"),
)
_PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus Torvalds", "Margaret Hamilton")
_SERVICES = ("svc-billing", "svc-deployer", "svc-backup", "svc-scheduler")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "terraform-provider-acme/3.4.1 (+https://www.terraform.io) Terraform/1.9.8",
    "acme-cli/2.18.0 python/3.12.4 linux/x86_64",
    "Go-http-client/1.1",
)
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2")
_FAILURES = (403, 404, 409, 422)


def _address(rng: random.Random) -> str:
    """Documentation ranges only (RFC 5737 / RFC 3849): event data, never a traffic target."""
    if rng.random() < 0.15:
        return f"2001:db8:{rng.randrange(0x10000):x}::{rng.randrange(1, 0x10000):x}"
    prefix = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{prefix}.{rng.randrange(1, 255)}"


def make_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    """One plausible audit event of about 300-500 bytes of JSON."""
    action, target_type, method, route = rng.choice(_ACTIONS)
    project = f"prj-{rng.randrange(10_000):04d}"
    target_id = f"{target_type[:3]}-{rng.getrandbits(40):010x}"
    failed = rng.random() < 0.08
    status = rng.choice(_FAILURES) if failed else (201 if method == "POST" else 200)
    if rng.random() < 0.75:
        name = rng.choice(_PEOPLE)
        actor: dict[str, Any] = {"type": "user", "id": f"u-{rng.randrange(100_000):05d}", "name": name}
        actor["ip"] = _address(rng)
        if rng.random() < 0.2:
            actor["user_agent"] = rng.choice(_AGENTS)
        who = name
    else:
        service = rng.choice(_SERVICES)
        actor = {"type": "service", "id": service, "ip": _address(rng)}
        who = service
    verb = action.rsplit(".", 1)[1]
    details: dict[str, Any] = {
        "project": project,
        "region": rng.choice(_REGIONS),
    }
    if method in ("PATCH", "PUT") or (method == "POST" and rng.random() < 0.3):
        details["changes"] = [
            {
                "field": rng.choice(("role", "quota", "ttl", "cidr", "size")),
                "old": rng.randrange(100),
                "new": rng.randrange(100),
            }
        ]
    if failed:
        details["error"] = {"code": status, "reason": "denied" if status == 403 else "rejected"}
    request: dict[str, Any] = {
        "method": method,
        "path": route.format(project=project, target=target_id),
        "status": status,
        # Producers measure with sub-millisecond precision (the middleware rounds to 3 places).
        "duration_ms": round(rng.uniform(0.4, 250.0), 3),
        "request_id": f"{rng.getrandbits(64):016x}",
    }
    return {
        "time": (now - timedelta(seconds=rng.uniform(0, 60))).isoformat().replace("+00:00", "Z"),
        "action": action,
        "outcome": "failure" if failed else "success",
        "actor": actor,
        "target": {"type": target_type, "id": target_id},
        "request": request,
        "message": f"{who} {verb} {target_type} {target_id}" + (f" (HTTP {status})" if failed else ""),
        "details": details,
    }
