"""The query AST (search/query.py) as SQL over the embedded store's tables, with bound parameters."""

from __future__ import annotations

from typing import assert_never

from eventlog.model import format_time_us
from search import query as ast

# Columns of `events`; NOT NULL ones need no guard against SQL's third truth value.
_SQL_COLUMN = {"id": "id", "time": "time_us", "action": "action", "outcome": "outcome", "source": "source"}
# Columns of the embedded store (search/sqlite/store.py); the rest is read from the document.
_SQL_NULLABLE_COLUMN = {"actor.id": "actor_id", "request.status": "status", "request.duration_ms": "duration_ms"}

# The stored JSON rewritten escape by escape (left to right, `\\` pairs align with the escape
# sequences, so `\"` is always an escaped quote), for what SQLite 3.40's JSON functions cannot do:
# - `\\` and `\"` become `\u005c` and `\u0022`: a key holding them cannot be reached by a path;
# - `\u0001` becomes `\u0001\u0002` and `\u0000` becomes `\u0001\u0001`: a decoded string is cut at
#   NUL, so NUL is spelled without one (a prefix-free code); `_nul_free` spells the compared values alike.
_NUL_FREE_DOCUMENT = (
    "replace(replace(replace(replace(document, "
    "'\\\\', '\\u005c'), '\\\"', '\\u0022'), '\\u0001', '\\u0001\\u0002'), '\\u0000', '\\u0001\\u0001')"
)

# Details are matched in the store's index of details leaves (search/sqlite/store.py): one row per
# tenant, flat_object string and event. It is keyed by tenant first, and `?1` is that tenant: every
# statement of the store binds it as its first parameter (the store's failsafe checks that it does).
_DETAILS_INDEX = "rowid IN (SELECT event FROM details_leaves WHERE tenant = ?1 AND {})"

# The only queryable field besides details that may hold control characters (see eventlog/model.py).
_SQL_NUL_FREE_FIELDS = {"actor.user_agent"}


def _nul_free(value: str) -> str:
    return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def leaf_key(leaf: str) -> bytes:
    """A details leaf as the store's index holds it: UTF-8 bytes, compared bytewise.

    No UTF-8 byte is 0xFF, so the keys starting with `k` are exactly those in [k, k + b"\\xff")."""
    return leaf.encode("utf-8", "surrogatepass")


def _leaf_range(field: str, start: str) -> tuple[bytes, bytes]:
    low = leaf_key(ast.details_leaf(field, start))
    return low, low + b"\xff"


def _sql_field(field: str) -> tuple[str, bool]:
    """The SQL expression of a field and whether it can be NULL."""
    if field in _SQL_COLUMN:
        return _SQL_COLUMN[field], False
    if field in _SQL_NULLABLE_COLUMN:
        return _SQL_NULLABLE_COLUMN[field], True
    if field in _SQL_NUL_FREE_FIELDS:
        return f"json_extract({_NUL_FREE_DOCUMENT}, '$.{field}')", True
    return f"json_extract(document, '$.{field}')", True


def _sql_value(field: str, value: ast.Value) -> ast.Value:
    if field == "received_at":  # stored as fixed-width RFC 3339 text, which sorts like the time
        return format_time_us(int(value))
    if field in _SQL_NUL_FREE_FIELDS:
        return _nul_free(str(value))
    return value


def to_sqlite(node: ast.Node) -> tuple[str, list[object]]:
    """A boolean SQL expression over `events` (and `events_fts`) with its bound parameters.

    Every leaf is two-valued (never NULL), so NOT means "not matching" as in the other two.
    Addresses are matched on the column `actor_ip`, which holds ip_key() of `actor.ip`; details in
    the table `details_leaves`, which holds leaf_key() of each of `details_leaves()`, for the tenant
    bound as the statement's first parameter."""
    params: list[object] = []
    sql = _sql(node, params)
    return sql, params


def _sql(node: ast.Node, params: list[object]) -> str:
    match node:
        case ast.All():
            return "1"
        case ast.Text(found, prefix):
            params.append('"' + " ".join(found) + '"' + ("*" if prefix else ""))
            return "rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"
        case ast.Term(field, value) if field.startswith(ast.DETAILS_PREFIX):
            params.append(leaf_key(ast.details_leaf(field, str(value))))
            return _DETAILS_INDEX.format("leaf = ?")
        case ast.AnyOf(field, values) if field.startswith(ast.DETAILS_PREFIX):
            params.extend(leaf_key(ast.details_leaf(field, str(v))) for v in values)
            return _DETAILS_INDEX.format(f"leaf IN ({', '.join('?' * len(values))})")
        case ast.Prefix(field, value) if field.startswith(ast.DETAILS_PREFIX):
            params.extend(_leaf_range(field, value))
            return _DETAILS_INDEX.format("leaf >= ? AND leaf < ?")
        case ast.Exists(field) if field.startswith(ast.DETAILS_PREFIX):
            params.extend(_leaf_range(field, ""))
            return _DETAILS_INDEX.format("leaf >= ? AND leaf < ?")
        # Addresses live in the column `actor_ip` as ip_key() bytes, so a network is a range the
        # (tenant, actor_ip) index answers; "IS NOT NULL AND" keeps each leaf two-valued and indexable.
        case ast.Term(field, value) if ast.FIELD_KINDS.get(field) == "ip":
            params.append(ip_key(str(value)))
            return "actor_ip IS ?"
        case ast.AnyOf(field, values) if ast.FIELD_KINDS.get(field) == "ip":
            params.extend(ip_key(str(v)) for v in values)
            return f"(actor_ip IS NOT NULL AND actor_ip IN ({', '.join('?' * len(values))}))"
        case ast.Cidr(field, network):
            params.extend(_network_bounds(network))
            return "(actor_ip IS NOT NULL AND actor_ip BETWEEN ? AND ?)"
        case ast.Term(field, value):
            column, nullable = _sql_field(field)
            params.append(_sql_value(field, value))
            return f"{column} IS ?" if nullable else f"{column} = ?"
        case ast.AnyOf(field, values):
            column, nullable = _sql_field(field)
            params.extend(_sql_value(field, v) for v in values)
            test = f"{column} IN ({', '.join('?' * len(values))})"
            return f"COALESCE({test}, 0)" if nullable else test
        case ast.Prefix(field, value):
            column, nullable = _sql_field(field)
            start = str(_sql_value(field, value))
            params.extend((len(start), start))
            return f"substr({column}, 1, ?) IS ?" if nullable else f"substr({column}, 1, ?) = ?"
        case ast.Exists(field):
            return f"{_sql_field(field)[0]} IS NOT NULL"
        case ast.Range(field, op, value):
            column, nullable = _sql_field(field)
            params.append(_sql_value(field, value))
            # "IS NOT NULL AND" rather than COALESCE: two-valued either way, but SQLite can use an index on it.
            return f"({column} IS NOT NULL AND {column} {op} ?)" if nullable else f"{column} {op} ?"
        case ast.Not(item):
            return f"NOT ({_sql(item, params)})"
        case ast.And(items):
            return "(" + " AND ".join(_sql(item, params) for item in items) + ")"
        case ast.Or(items):
            return "(" + " OR ".join(_sql(item, params) for item in items) + ")"
        case _:
            assert_never(node)


def ip_key(text: str | None) -> bytes | None:
    """The order OpenSearch gives `ip` values: the 16-byte IPv6 form, IPv4 mapped; None for no address."""
    if text is None:
        return None
    value = ast.ip_number(text)
    return value.to_bytes(16, "big") if value is not None else None


def _network_bounds(network: str) -> tuple[bytes, bytes]:
    """The first and last ip_key() of a network (the parser has normalized it)."""
    found = ast.ip_network_bits(network)
    assert found is not None, f"the parser hands only valid networks on: {network!r}"
    base, length = found
    return base.to_bytes(16, "big"), (base | ((1 << (128 - length)) - 1)).to_bytes(16, "big")
