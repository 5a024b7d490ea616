"""Compiling store queries (``store/query.py``) and conditions (``search/conditions.py``) to SQL.

Each clause becomes ``r.id IN (SELECT id FROM idx_<kind> ...)`` on the alias of the resource
table, so SQLite answers it from the covering index (type, param, value columns, id); chains
and ``_has`` nest the same shape with a fresh alias.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal

from fhir_server.search.conditions import All, AnyOf, Compare, Cond, Not
from fhir_server.store.query import (
    INDEX_COLUMNS,
    TRACE_COLUMNS,
    Chain,
    Clause,
    Either,
    Has,
    IdIn,
    Match,
    Negate,
    SortKey,
)

PAST_EVERY_CHARACTER = "\U0010ffff"  # sorts after any text that continues a prefix
SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _param(value):
    return float(value) if isinstance(value, Decimal) else value


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class SqlBuilder:
    """Accumulates SQL text arguments; hands out unique table aliases."""

    args: list = field(default_factory=list)
    demoted: set[int] = field(default_factory=set)  # id() of clauses that must probe, not drive
    _aliases: itertools.count = field(default_factory=itertools.count)

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._aliases)}"

    # -- conditions on one index entry ----------------------------------------------------

    def cond(self, cond: Cond, entry: str, kind: str) -> str:
        if isinstance(cond, Compare):
            if cond.column not in (TRACE_COLUMNS if kind == "trace" else INDEX_COLUMNS[kind]):
                raise ValueError(f"{kind} entries have no column {cond.column}")
            column = f"{entry}.{cond.column}"
            if cond.op == "prefix":  # a range, so the B-tree answers it (LIKE would scan)
                self.args += [cond.value, cond.value + PAST_EVERY_CHARACTER]
                return f"({column} >= ? AND {column} < ?)"
            if cond.op == "contains":
                self.args.append("%" + _like_escape(cond.value) + "%")
                return f"{column} LIKE ? ESCAPE '\\'"
            if cond.op == "in":
                self.args.extend(_param(v) for v in cond.value)
                return f"{column} IN ({','.join('?' * len(cond.value))})"
            if cond.value is None:
                return f"{column} IS NULL" if cond.op == "=" else f"{column} IS NOT NULL"
            if cond.column == "target_type" and cond.op == "=":  # a resource type: a name, written in
                return f"{column} = {self.name(cond.value)}"
            self.args.append(_param(cond.value))
            return f"{column} {SQL_OPS[cond.op]} ?"
        if isinstance(cond, All):
            return "(" + " AND ".join(self.cond(c, entry, kind) for c in cond.parts) + ")"
        if isinstance(cond, AnyOf):
            return "(" + " OR ".join(self.cond(c, entry, kind) for c in cond.parts) + ")"
        if isinstance(cond, Not):
            return f"NOT {self.cond(cond.part, entry, kind)}"
        raise TypeError(cond)

    # -- clauses on one resource alias ----------------------------------------------------
    #
    # One clause drives: an index seek listing candidate ids (``id IN (SELECT …)``), chosen
    # among those expected to match few rows (an id, a code, a reference, a name). Every other
    # clause probes each candidate's own entries through the (type, id) owner index
    # (``EXISTS …``), so a broad clause such as ``date=ge2020`` never lists its matches. With no
    # driver, resources are scanned in id order and probed, which stops as soon as a page is full.

    def clauses(self, clauses, resource: str) -> str:
        ranked = sorted((c for c in clauses if _drive_rank(c) is not None and id(c) not in self.demoted),
                        key=_drive_rank)
        driver = ranked[0] if ranked else None
        parts = [self.clause(driver, resource, probe=False)] if driver is not None else []
        parts += [self.clause(c, resource, probe=True) for c in clauses if c is not driver]
        return " AND ".join(parts) or "1"

    def probes(self, clauses, resource: str) -> str:
        """Every clause as a probe: inside a probe, the candidate is already known."""
        return " AND ".join(self.clause(c, resource, probe=True) for c in clauses) or "1"

    def clause(self, clause: Clause, resource: str, probe: bool = True) -> str:
        if isinstance(clause, Match):
            return self._probe(clause, resource) if probe else self._seek(clause, resource)
        if isinstance(clause, IdIn):
            if not clause.ids:
                return "0"
            self.args.extend(clause.ids)
            return f"{resource}.id IN ({','.join('?' * len(clause.ids))})"
        if isinstance(clause, Negate):
            return f"NOT ({self.clause(clause.clause, resource)})"
        if isinstance(clause, Either):
            if _same_chain(clause.clauses):  # subject or author leading to the same kind of patient: one probe
                return self._chain_probe(clause.clauses[0], resource, tuple(c.param for c in clause.clauses))
            if _one_table(clause.clauses):  # e.g. one of several authors, or a label in either of two params
                return self._probe_any(clause.clauses, resource)
            return "(" + " OR ".join(self.clause(c, resource) for c in clause.clauses) + ")"
        if isinstance(clause, Chain):
            return self._chain_probe(clause, resource) if probe else self._chain_seek(clause, resource)
        if isinstance(clause, Has):
            return self._has_probe(clause, resource)
        raise TypeError(clause)

    def _seek(self, clause: Match, resource: str) -> str:
        entry = self.alias("x")
        return self._entries(clause, entry, f"{resource}.id IN (SELECT {entry}.id FROM idx_{clause.kind} {entry}"
                             f" WHERE {entry}.type = {resource}.type")

    def _probe(self, clause: Match, resource: str) -> str:
        entry = self.alias("x")
        return self._entries(clause, entry, f"EXISTS (SELECT 1 FROM idx_{clause.kind} {entry}"
                             f" INDEXED BY idx_{clause.kind}_owner"
                             f" WHERE {entry}.type = {resource}.type AND {entry}.id = {resource}.id")

    def _probe_any(self, matches: tuple[Match, ...], resource: str) -> str:
        """One probe of one index table for matches of which any will do."""
        entry = self.alias("x")
        kind = matches[0].kind
        params = ", ".join(self.name(p) for p in dict.fromkeys(m.param for m in matches))
        conds = [m.cond for m in matches]
        cond = "" if None in conds else " AND (" + " OR ".join(
            self.cond(c, entry, kind) for c in dict.fromkeys(conds)) + ")"
        return (f"EXISTS (SELECT 1 FROM idx_{kind} {entry} INDEXED BY idx_{kind}_owner"
                f" WHERE {entry}.type = {resource}.type AND {entry}.id = {resource}.id"
                f" AND {entry}.param IN ({params}){cond})")

    def _entries(self, clause: Match, entry: str, head: str) -> str:
        """``head`` (a sub-select over one index table) narrowed to the clause's parameter and condition."""
        sql = f"{head} AND {entry}.param = {self.name(clause.param)}"
        if clause.cond is not None:
            sql += f" AND {self.cond(clause.cond, entry, clause.kind)}"
        return sql + ")"

    def _chain_seek(self, clause: Chain, resource: str) -> str:
        entry, target = self.alias("x"), self.alias("r")
        param, target_type = self.name(clause.param), self.name(clause.target_type)
        inner = self.clauses(clause.clauses, target)
        return (f"{resource}.id IN (SELECT {entry}.id FROM idx_reference {entry}"
                f" WHERE {entry}.type = {resource}.type AND {entry}.param = {param}"
                f" AND {entry}.target_type = {target_type} AND {entry}.target_id IN (SELECT {target}.id"
                f" FROM resource {target} WHERE {target}.type = {target_type} AND {target}.deleted = 0 AND {inner}))")

    def _chain_probe(self, clause: Chain, resource: str, params: tuple[str, ...] = ()) -> str:
        """The resource references, through ``clause.param`` (or any of ``params``), a live target
        satisfying the chain's clauses."""
        entry = self.alias("x")
        names = ", ".join(self.name(p) for p in params or (clause.param,))
        target_type = self.name(clause.target_type)
        target = self._live(clause.target_type, f"{entry}.target_id", clause.clauses)
        return (f"EXISTS (SELECT 1 FROM idx_reference {entry} INDEXED BY idx_reference_owner"
                f" WHERE {entry}.type = {resource}.type AND {entry}.id = {resource}.id AND {entry}.param IN ({names})"
                f" AND {entry}.target_type = {target_type} AND {target})")

    def _has_probe(self, clause: Has, resource: str) -> str:
        entry = self.alias("x")
        source_type, param = self.name(clause.source_type), self.name(clause.param)
        source = self._live(clause.source_type, f"{entry}.id", clause.clauses)
        return (f"EXISTS (SELECT 1 FROM idx_reference {entry} INDEXED BY idx_reference_by_value"
                f" WHERE {entry}.type = {source_type} AND {entry}.param = {param} AND {entry}.target_id = {resource}.id"
                f" AND {entry}.target_type = {resource}.type AND {source})")

    def _live(self, resource_type: str, id_expression: str, clauses) -> str:
        """A current resource of the type with that id exists and satisfies ``clauses`` (as probes)."""
        alias = self.alias("r")
        type_literal = self.name(resource_type)
        inner = self.probes(clauses, alias)
        return (f"EXISTS (SELECT 1 FROM resource {alias} WHERE {alias}.type = {type_literal}"
                f" AND {alias}.id = {id_expression} AND {alias}.deleted = 0 AND {inner})")

    def name(self, value: str) -> str:
        """A parameter or type name as an SQL literal: names come from the definitions, a bounded
        set, so they shape the statement rather than take a bound argument each time (binding
        costs more than the probe it narrows). Anything else stays a bound argument."""
        if NAME.fullmatch(value):
            return f"'{value}'"
        self.args.append(value)
        return "?"

    # -- ordering -------------------------------------------------------------------------

    def sort_expression(self, key: SortKey, resource: str) -> str:
        """The value a resource sorts by: its smallest entry ascending, its largest descending."""
        if key.kind == "_id":
            return f"{resource}.id"
        if key.kind == "_lastUpdated":
            return f"(SELECT h.last_updated FROM history h WHERE h.seq = {resource}.seq)"
        column = {"string": "norm", "token": "code", "date": "high" if key.descending else "low",
                  "number": "value", "quantity": "value", "reference": "target_id", "uri": "uri"}[key.kind]
        aggregate = "max" if key.descending else "min"
        entry = self.alias("s")
        return (f"(SELECT {aggregate}({entry}.{column}) FROM idx_{key.kind} {entry} INDEXED BY idx_{key.kind}_owner"
                f" WHERE {entry}.type = {resource}.type AND {entry}.id = {resource}.id"
                f" AND {entry}.param = {self.name(key.param)})")


#: What a parameter or resource type name may look like to be written into SQL as a literal.
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)


def _same_chain(clauses: tuple[Clause, ...]) -> bool:
    """Chains through different parameters to the same type with the same clauses."""
    first = clauses[0] if clauses else None
    return isinstance(first, Chain) and len(clauses) > 1 and all(
        isinstance(c, Chain) and c.target_type == first.target_type and c.clauses == first.clauses for c in clauses)


def _one_table(clauses: tuple[Clause, ...]) -> bool:
    """Matches on one index table that one probe can test: the same condition through several
    parameters, or several conditions on one parameter."""
    if len(clauses) < 2 or not all(isinstance(c, Match) for c in clauses):
        return False
    kinds = {c.kind for c in clauses}
    return len(kinds) == 1 and (len({c.param for c in clauses}) == 1 or len({c.cond for c in clauses}) == 1)


_PROBES: dict[tuple[int, str], tuple[tuple[Clause, ...], str, tuple]] = {}


def compiled_probes(clauses: tuple[Clause, ...], statement: str = "{where}") -> tuple[str, tuple]:
    """``statement`` with ``{where}`` replaced by SQL testing one known resource row ``r`` against
    every clause (all probes), ``{stamp}`` (if present) by ``stamp_sql`` of the types the clauses
    reach, and the arguments of that SQL.

    Remembered by the identity of the ``clauses`` tuple (kept alive with its entry): the access
    policy hands the same tuple for one principal and type, and building the SQL text, or even
    hashing a deep clause tree, costs more than running the query.
    """
    key = (id(clauses), statement)
    known = _PROBES.get(key)
    if known is None or known[0] is not clauses:
        if len(_PROBES) >= 4096:
            _PROBES.clear()
        sql = SqlBuilder()
        where = sql.probes(clauses, "r")
        stamp = stamp_sql(reached_types(clauses)) if "{stamp}" in statement else ""
        known = _PROBES[key] = (clauses, statement.format(where=where, stamp=stamp), tuple(sql.args))
    return known[1], known[2]


def reached_types(clauses) -> frozenset[str]:
    """The resource types whose resources a probe of ``clauses`` reads besides the probed resource's
    own entries: the targets of chains and the sources of ``_has``, at every depth."""
    out: set[str] = set()
    for clause in clauses:
        if isinstance(clause, Chain):
            out |= {clause.target_type, *reached_types(clause.clauses)}
        elif isinstance(clause, Has):
            out |= {clause.source_type, *reached_types(clause.clauses)}
        elif isinstance(clause, Negate):
            out |= reached_types((clause.clause,))
        elif isinstance(clause, Either):
            out |= reached_types(clause.clauses)
    return frozenset(out)


def stamp_sql(types: frozenset[str]) -> str:
    """SQL for a value that changes whenever a resource of one of ``types`` is written, by any
    connection or process: the newest history row of those types (history rows are never deleted,
    so ``seq`` only grows, and a write, a delete included, always appends one). Constant without
    types."""
    if not types:
        return "0"
    if not all(NAME.fullmatch(t) for t in types):
        raise ValueError(f"Not resource type names: {sorted(types)}")
    newest = [f"coalesce((SELECT max(hs.seq) FROM history hs WHERE hs.type = '{t}'), 0)" for t in sorted(types)]
    return f"max(0, {', '.join(newest)})"


#: Which clauses may drive a search from an index seek, best first (None: probe only).
SEEK_RANK = {"token": 1, "reference": 1, "uri": 1, "composite": 1, "string": 3}


def best_driver(clauses) -> Clause | None:
    ranked = sorted((c for c in clauses if _drive_rank(c) is not None), key=_drive_rank)
    return ranked[0] if ranked else None


def _drive_rank(clause: Clause) -> int | None:
    if isinstance(clause, IdIn):
        return 0
    if isinstance(clause, Chain):
        return 2
    if isinstance(clause, Match) and clause.cond is not None:
        return SEEK_RANK.get(clause.kind)
    return None


@dataclass(frozen=True)
class Ordered:
    """A search as SQL selecting ``RECORD_COLUMNS, kid, k0, k1…`` and the order its pages follow.

    ``directions`` says, per ``k`` column, whether it descends; the id (``kid``) always ascends
    last. ``bounded``: the leading key is never NULL and ascending, and the SQL walks an index in
    that order, so a page position also becomes a range bound the index seeks to.
    """

    sql: str
    args: tuple
    directions: tuple[bool, ...]
    bounded: bool = False

    def order(self, backwards: bool) -> str:
        nulls = "" if self.bounded else f" NULLS {'FIRST' if backwards else 'LAST'}"
        keys = [f"k{i} {'DESC' if d != backwards else 'ASC'}{nulls}" for i, d in enumerate(self.directions)]
        return ", ".join([*keys, f"kid {'DESC' if backwards else 'ASC'}"])

    def beyond(self, position: tuple, backwards: bool) -> tuple[str, list]:
        """SQL keeping the rows strictly after (or before) ``position`` in this order."""
        columns = [f"k{i}" for i in range(len(self.directions))] + ["kid"]
        where, args = keyset(columns, self.directions, position, backwards)
        if self.bounded:
            where, args = f"k0 {'<=' if backwards else '>='} ? AND {where}", [position[0], *args]
        return where, args


def key_ordered(type_: str, clauses, sort: tuple[SortKey, ...], record_columns: str, demoted: set[int]) -> Ordered:
    """Matches in ``sort`` order then id: one clause drives (unless demoted), the others probe."""
    sql = SqlBuilder(demoted=demoted)
    keys = "".join(f", {sql.sort_expression(k, 'r')} AS k{i}" for i, k in enumerate(sort))
    sort_args = sql.args
    sql.args = []  # the sort sub-selects come before the WHERE in the SQL text, type_ between them
    where = sql.clauses(clauses, "r")
    return Ordered(f"SELECT {record_columns}, r.id AS kid{keys} FROM resource r JOIN history h ON h.seq = r.seq"
                   f" WHERE r.type = ? AND r.deleted = 0 AND {where}",
                   (*sort_args, type_, *sql.args), tuple(k.descending for k in sort))


def text_range(driver: Clause | None) -> bool:
    """Whether ``driver`` is a text clause selecting one range of folded text (a prefix or a word)."""
    if not isinstance(driver, Match) or driver.kind != "string":
        return False
    parts = driver.cond.parts if isinstance(driver.cond, All) else (driver.cond,)
    return any(isinstance(p, Compare) and p.column == "norm" and p.op in ("prefix", "=") for p in parts)


def text_ordered(type_: str, driver: Match, clauses, record_columns: str) -> Ordered:
    """Matches of a text range in the order of the text index: (folded text, raw text, id).

    An unsorted search may come in any stable order. Walking the text index in its own order
    stops as soon as a page is full, however many resources share the prefix (``name=HÉL`` at a
    million resources), where id order would have to list and sort every match first. A resource
    with several matching entries comes once, at its first one.
    """
    sql = SqlBuilder()
    sql.args += [type_, driver.param]
    here = sql.cond(driver.cond, "x", "string")
    earlier = sql.cond(driver.cond, "y", "string")
    probes = sql.probes([c for c in clauses if c is not driver], "r")
    return Ordered(
        f"SELECT {record_columns}, x.id AS kid, x.norm AS k0, x.raw AS k1"
        " FROM idx_string x INDEXED BY idx_string_by_value CROSS JOIN resource r CROSS JOIN history h"
        f" WHERE x.type = ? AND x.param = ? AND {here}"
        " AND r.type = x.type AND r.id = x.id AND r.deleted = 0 AND h.seq = r.seq"
        " AND NOT EXISTS (SELECT 1 FROM idx_string y INDEXED BY idx_string_owner"
        f" WHERE y.type = x.type AND y.id = x.id AND y.param = x.param AND {earlier}"
        " AND (y.norm < x.norm OR (y.norm = x.norm AND (y.raw < x.raw OR (y.raw = x.raw AND y.rowid < x.rowid)))))"
        f" AND {probes}",
        tuple(sql.args), (False, False), bounded=True)


def keyset(positions: list[str], directions: list[bool], position: tuple, backwards: bool) -> tuple[str, list]:
    """SQL selecting rows strictly after (or before) ``position`` in an ORDER BY of the sort keys
    (``directions``: True = descending, NULLS LAST) followed by ascending id (the last column)."""
    ors, args = [], []
    equal: list[str] = []
    equal_args: list = []
    for column, descending, value in zip(positions, [*directions, False], position, strict=True):
        greater = descending == backwards  # moving towards larger values in this column
        if value is None:
            beyond = f"{column} IS NOT NULL" if backwards else "0"
            same = f"{column} IS NULL"
            beyond_args: list = []
        else:
            op = ">" if greater else "<"
            beyond = f"({column} {op} ?" + (" OR " + f"{column} IS NULL)" if not backwards else ")")
            same, beyond_args = f"{column} = ?", [value]
        ors.append("(" + " AND ".join([*equal, beyond]) + ")")
        args += [*equal_args, *beyond_args]
        equal.append(same)
        equal_args += [] if value is None else [value]
    return "(" + " OR ".join(ors) + ")", args
