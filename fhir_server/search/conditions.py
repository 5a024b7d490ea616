"""Backend-neutral predicates over the columns of one index entry.

Value modules (e.g. ``values/date.py``) turn a query value into a ``Cond`` over named columns
of their index entries (``low``, ``high``, ``code``...); each store compiles it (SQL for SQLite,
a filter document for MongoDB). Keeping the semantics here means both backends agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Compare:
    """``column op value`` with op one of ``= != < <= > >=``; ``prefix`` (starts with) and
    ``contains`` for text columns; ``in`` with a tuple of values."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class All:
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class Not:
    part: Cond


Cond = Compare | All | AnyOf | Not


def all_of(*parts: Cond) -> Cond:
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def any_of(*parts: Cond) -> Cond:
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))
