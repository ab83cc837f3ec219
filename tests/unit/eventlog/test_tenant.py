"""The one tenant-name rule."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from eventlog.tenant import MAX_TENANT_CHARS, TenantName, check_tenant, tenant_problem

NOT_TENANTS = [
    "",
    "a\nb",
    "a\tb",
    "nul\x00",
    "del\x7f",
    "line\u2028separator",
    "bidi\u202eoverride",
    "zero\u200bwidth",
    " leading",
    "trailing ",
    "x" * (MAX_TENANT_CHARS + 1),
]


@pytest.mark.parametrize("name", ["acme", "a", "Acme Corp", "team/eu-1", "é-ü", "x" * MAX_TENANT_CHARS])
def test_tenant_names(name: str) -> None:
    assert tenant_problem(name) is None
    assert check_tenant(name) == name
    assert TypeAdapter(TenantName).validate_python(name) == name


@pytest.mark.parametrize("name", NOT_TENANTS)
def test_not_tenant_names(name: str) -> None:
    problem = tenant_problem(name)
    assert problem is not None
    assert "printable characters" in problem
    with pytest.raises(ValueError, match="tenant name"):
        check_tenant(name)
    with pytest.raises(ValidationError):
        TypeAdapter(TenantName).validate_python(name)
