"""The one rule for a tenant name, wherever one is given: tokens, holds, admin reads, settings.

A tenant name ends up in syslog structured data, archive keys, CSV file names,
log lines and the target of self-audit events; every place takes the same names.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

MAX_TENANT_CHARS = 128
RULE = f"1-{MAX_TENANT_CHARS} printable characters, no space at either end"


def tenant_problem(name: str) -> str | None:
    """Why `name` is no tenant name, or None when it is one."""
    if not name:
        return f"is empty; a tenant name is {RULE}"
    if len(name) > MAX_TENANT_CHARS:
        return f"is {len(name)} characters long; a tenant name is {RULE}"
    if not name.isprintable():
        # isprintable also refuses separators and format characters (U+2028, bidi overrides) that hide in logs.
        return f"holds control or other non-printable characters; a tenant name is {RULE}"
    if name.strip() != name:
        return f"begins or ends with white space; a tenant name is {RULE}"
    return None


def check_tenant(name: str) -> str:
    """`name` if it is a tenant name; ValueError saying why not otherwise."""
    problem = tenant_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


TenantName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TENANT_CHARS), AfterValidator(check_tenant)]
"""A tenant name in a pydantic model (request bodies, settings)."""
