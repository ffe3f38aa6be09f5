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
from collections.abc import Callable
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


Converter = Callable[[Any, str], Any]


@dataclass(frozen=True)
class _Field:
    name: str
    convert: Converter
    required: bool


class Record:
    """A typed map; subclasses are frozen dataclasses."""

    _fields: ClassVar[tuple[_Field, ...]]

    @classmethod
    def _schema(cls) -> tuple[_Field, ...]:
        # Built once per class: validating a message then costs one call per field, with no
        # type introspection on the hot path.
        schema = cls.__dict__.get("_fields")
        if schema is None:
            hints = typing.get_type_hints(cls, include_extras=True)
            schema = tuple(
                _Field(f.name, _compile(hints[f.name], None), f.default is MISSING and f.default_factory is MISSING)
                for f in fields(cls)
            )
            cls._fields = schema
        return schema

    @classmethod
    def from_fields(cls, data: dict, where: str = "") -> Record:
        """Validate a received map and build the typed instance."""
        values = {}
        for field in cls._schema():
            if field.name in data:
                values[field.name] = field.convert(data[field.name], where + field.name)
            elif field.required:
                raise _bad(where + field.name, "is missing")
        return cls(**values)

    def to_fields(self) -> dict:
        """Plain values for msgpack: nested records become maps, tuples become arrays."""
        return {field.name: _plain(getattr(self, field.name)) for field in self._schema()}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_fields()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _compile(hint: Any, bound: Bound | None) -> Converter:
    """A function that checks and converts one received value against a type hint."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        return _compile(base, next((e for e in extras if isinstance(e, Bound)), bound))
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        (inner,) = [a for a in args if a is not type(None)]
        convert = _compile(inner, bound)
        if type(None) not in args:
            return convert
        return lambda value, where: None if value is None else convert(value, where)
    if origin is tuple:
        return _array(_compile(typing.get_args(hint)[0], None), bound)
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint)
    if hint is bool:
        return _boolean
    if hint in (int, float):
        return _number(hint, bound)
    if hint in (str, bytes):
        return _text(hint, bound)
    raise TypeError(f"unsupported field type {hint!r}")


def _array(item: Converter, bound: Bound | None) -> Converter:
    limit = bound.max_items if bound and bound.max_items is not None else DEFAULT_MAX_ITEMS

    def convert(value: Any, where: str) -> tuple:
        if not isinstance(value, list):
            raise _bad(where, "must be an array")
        if len(value) > limit:
            raise _bad(where, f"has more than {limit} items")
        return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))

    return convert


def _record(cls: type[Record]) -> Converter:
    def convert(value: Any, where: str) -> Record:
        if not isinstance(value, dict):
            raise _bad(where, "must be a map")
        return cls.from_fields(value, where + ".")

    return convert


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, "must be a boolean")
    return value


def _number(kind: type, bound: Bound | None) -> Converter:
    low = bound.min if bound else None
    high = bound.max if bound else None
    what = "an integer" if kind is int else "a number"

    def convert(value: Any, where: str) -> int | float:
        ok = isinstance(value, int) or (kind is float and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            raise _bad(where, f"must be {what}")
        if low is not None and value < low:
            raise _bad(where, f"must be at least {low:g}")
        if high is not None and value > high:
            raise _bad(where, f"must be at most {high:g}")
        return kind(value)

    return convert


def _text(kind: type, bound: Bound | None) -> Converter:
    limit = bound.max_len if bound and bound.max_len is not None else DEFAULT_MAX_STR
    shortest = bound.min_len if bound else 0
    choices = bound.choices if bound else None
    what = "a string" if kind is str else "bytes"

    def convert(value: Any, where: str) -> str | bytes:
        if not isinstance(value, kind):
            raise _bad(where, f"must be {what}")
        if len(value) > limit:
            raise _bad(where, f"is longer than {limit}")
        if len(value) < shortest:
            raise _bad(where, f"is shorter than {shortest}")
        if choices is not None and value not in choices:
            raise _bad(where, f"must be one of {', '.join(choices)}")
        return value

    return convert
