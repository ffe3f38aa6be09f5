"""Typed message definitions: frozen dataclasses validated against their annotations.

A message class declares its fields with ordinary type hints (`str`, `int`, `float`, `bool`,
`bytes`, `X | None`, `tuple[X, ...]` for arrays, nested `Record` classes for maps) and may bound
them with `Annotated[..., Bound(...)]`. `from_fields()` checks a received map against those
hints and raises `RequestError(BAD_MESSAGE)` naming the field; `to_fields()` turns an instance
back into plain msgpack-able values. Unknown fields are ignored so that a newer peer can add
optional fields without breaking an older one.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, ClassVar, Union

from .errors import RequestError

DEFAULT_MAX_STR = 4096
DEFAULT_MAX_ITEMS = 1000


@dataclass(frozen=True)
class Bound:
    """Limits for one field: string/bytes length, array length, or numeric range."""

    max_len: int | None = None
    min_len: int = 0
    max_items: int | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None


def _bad(where: str, what: str) -> RequestError:
    return RequestError(f"field '{where}' {what}", code="BAD_MESSAGE")


class Record:
    """A typed map; subclasses are frozen dataclasses."""

    _hints: ClassVar[dict[str, Any]]

    @classmethod
    def _field_hints(cls) -> dict[str, Any]:
        hints = cls.__dict__.get("_hints")
        if hints is None:
            hints = typing.get_type_hints(cls, include_extras=True)
            hints = {f.name: (hints[f.name], f) for f in fields(cls)}
            cls._hints = hints
        return hints

    @classmethod
    def from_fields(cls, data: dict, where: str = "") -> Record:
        """Validate a received map and build the typed instance."""
        values = {}
        for name, (hint, spec) in cls._field_hints().items():
            path = f"{where}{name}"
            if name in data:
                values[name] = _convert(data[name], hint, path, None)
            elif spec.default is MISSING and spec.default_factory is MISSING:
                raise _bad(path, "is missing")
        return cls(**values)

    def to_fields(self) -> dict:
        """Plain values for msgpack: nested records become maps, tuples become arrays."""
        return {name: _plain(getattr(self, name)) for name in self._field_hints()}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_fields()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _convert(value: Any, hint: Any, where: str, bound: Bound | None) -> Any:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        found = next((e for e in extras if isinstance(e, Bound)), bound)
        return _convert(value, base, where, found)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where, bound)
    if origin is tuple:
        if not isinstance(value, list):
            raise _bad(where, "must be an array")
        limit = bound.max_items if bound and bound.max_items is not None else DEFAULT_MAX_ITEMS
        if len(value) > limit:
            raise _bad(where, f"has more than {limit} items")
        item = typing.get_args(hint)[0]
        return tuple(_convert(v, item, f"{where}[{i}]", None) for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Record):
        if not isinstance(value, dict):
            raise _bad(where, "must be a map")
        return hint.from_fields(value, where + ".")
    return _scalar(value, hint, where, bound)


def _scalar(value: Any, hint: Any, where: str, bound: Bound | None) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise _bad(where, "must be a boolean")
        return value
    if hint in (int, float):
        ok = isinstance(value, int) or (hint is float and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            raise _bad(where, f"must be {'an integer' if hint is int else 'a number'}")
        if bound and bound.min is not None and value < bound.min:
            raise _bad(where, f"must be at least {bound.min:g}")
        if bound and bound.max is not None and value > bound.max:
            raise _bad(where, f"must be at most {bound.max:g}")
        return hint(value)
    if hint in (str, bytes):
        if not isinstance(value, hint):
            raise _bad(where, f"must be {'a string' if hint is str else 'bytes'}")
        limit = bound.max_len if bound and bound.max_len is not None else DEFAULT_MAX_STR
        if len(value) > limit:
            raise _bad(where, f"is longer than {limit}")
        if bound and len(value) < bound.min_len:
            raise _bad(where, f"is shorter than {bound.min_len}")
        if bound and bound.choices is not None and value not in bound.choices:
            raise _bad(where, f"must be one of {', '.join(bound.choices)}")
        return value
    raise TypeError(f"unsupported field type {hint!r} for {where}")
