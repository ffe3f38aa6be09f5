"""The few SQL spellings that differ between SQLite and PostgreSQL, for stores that run on both.

A store passes a list of values as ONE parameter and expands it in SQL: `x IN ({each(conn)})`
with `listed(conn, values)` as that parameter. SQLite has no arrays, so the list travels as JSON
and `json_each` unpacks it; PostgreSQL takes the list as an array and `unnest` unpacks it. The
same statement then serves one value or ten thousand without building `IN (?, ?, …)` strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def dialect(conn: Any) -> str:
    """ "sqlite" or "postgresql": which engine a store's connection talks to."""
    return getattr(conn, "dialect", "sqlite")


ELEMENT_TYPES = {"integer": "bigint[]", "text": "text[]"}


def each(conn: Any, kind: str = "integer") -> str:
    """A subquery yielding each element of one list parameter (see `listed`), as column `value`;
    `kind` ("integer" or "text") types the elements for PostgreSQL, which must know it even for
    an empty list."""
    if dialect(conn) == "sqlite":
        return "SELECT value FROM json_each(?)"
    return f"SELECT unnest(CAST(? AS {ELEMENT_TYPES[kind]})) AS value"


def listed(conn: Any, values: Iterable[Any]) -> Any:
    """The parameter for `each`: a JSON array for SQLite, a list (an array) for PostgreSQL."""
    values = list(values)
    return json.dumps(values) if dialect(conn) == "sqlite" else values
