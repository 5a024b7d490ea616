"""The embedded store: one SQLite file in WAL mode.

Bodies are stored once, in the append-only ``history`` table; ``resource`` maps each
(type, id) to its current version and the history row holding it. Writes go through one
writer connection, serialised by a lock in-process and by ``BEGIN IMMEDIATE`` across
processes, so a compare-and-set on the version can never lose an update. Readers use their
own connection per thread and run in parallel with the writer.
"""

from __future__ import annotations

import calendar
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from fhir_server.search.conditions import Compare, Cond
from fhir_server.store.base import BadPosition, QueryTooComplex, Record, VersionConflict
from fhir_server.store.query import INDEX_COLUMNS, Clause, IndexEntry, Match, SortKey
from fhir_server.store.sqlite_query import (
    SqlBuilder,
    best_driver,
    compiled_probes,
    key_ordered,
    text_ordered,
    text_range,
)
from fhir_server.store.trace_journal import Batch, TraceJournal, encode

log = logging.getLogger("mes")

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
    last_updated TEXT NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS history_by_type ON history (type, seq);
CREATE TABLE IF NOT EXISTS resource (
    type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_group (
    gseq INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,
    patient TEXT NOT NULL,  -- '' when the traces name no patient
    traces TEXT NOT NULL,   -- [[place in the batch, [ns, agent, subtype, action, outcome, entities, detail]], …]
    agents TEXT NOT NULL    -- the agents of these traces, a JSON array
);
CREATE INDEX IF NOT EXISTS trace_group_by_batch ON trace_group (batch);
CREATE INDEX IF NOT EXISTS trace_group_by_patient ON trace_group (patient, batch);
CREATE TABLE IF NOT EXISTS trace_group_agent (
    agent TEXT NOT NULL, batch INTEGER NOT NULL, gseq INTEGER NOT NULL, PRIMARY KEY (agent, batch, gseq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_source (segment TEXT PRIMARY KEY, indexed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipt (
    door TEXT NOT NULL, sender TEXT NOT NULL, message TEXT NOT NULL, answer BLOB NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (door, sender, message)
) WITHOUT ROWID;
"""
#: The access-trace columns, as ``traces`` returns them after ``seq``.
TRACE_ROW = ("low", "high", "patient", "agent", "subtype", "action", "outcome", "entities", "detail")
#: What ``append_traces`` takes per row: the instant in nanoseconds since the epoch, then the
#: columns after ``high``.
TRACE_INPUT = ("ns", "patient", "agent", "subtype", "action", "outcome", "entities", "detail")
TRACE_TICK_NS = 1000  # a trace's instant is the microsecond it was taken: [low, low + 1 µs)
#: Traces are indexed in batches (one journal read) and, within a batch, in groups: the traces of
#: one patient share a row and one index entry per patient and per agent, which costs far less
#: than an indexed row per trace. A trace's ``seq`` is its batch, shifted, plus its place in the
#: batch: the order it was journalled in.
BATCH_BITS = 20  # a batch (one READ_CHUNK of journal) holds far fewer traces than 2**20
OLD_TRACES_PER_BATCH = 100_000
GROUPED = ("ns", "agent", "subtype", "action", "outcome", "entities", "detail")
#: A batch of journal lines (``[patient, agent, trace]``, one JSON array) into one group per patient.
GROUP_BATCH = ("INSERT INTO trace_group (batch, patient, traces, agents)"
               " SELECT ?1, coalesce(j.value->>0, ''), json_group_array(json_array(j.key, json(j.value->2))),"
               " json_group_array(DISTINCT j.value->>1) FROM json_each(?2) j GROUP BY 2")
GROUP_AGENTS = ("INSERT OR IGNORE INTO trace_group_agent (agent, batch, gseq)"
                " SELECT a.value, g.batch, g.gseq FROM trace_group g, json_each(g.agents) a WHERE g.batch = ?1")
_INSTANT = ("strftime('%Y-%m-%dT%H:%M:%S', {ns} / 1000000000, 'unixepoch')"
            " || printf('.%06dZ', {ns} / 1000 % 1000000)")
_NS = "(t.value->>'$[1][0]')"
#: The traces as rows with the ``TRACE_COLUMNS`` a condition may test, from the groups ``g``.
TRACE_COLUMNS_SQL = (
    f"(g.batch << {BATCH_BITS}) + (t.value->>0) AS seq, {_INSTANT.format(ns=_NS)} AS low,"
    f" {_INSTANT.format(ns=f'({_NS} + {TRACE_TICK_NS})')} AS high, nullif(g.patient, '') AS patient, "
    + ", ".join(f"t.value->>'$[1][{i}]' AS {name}" for i, name in enumerate(GROUPED) if i))


#: Lookup index column order where it differs from the table's: the most selective value first
#: (a token query nearly always names the code, a reference query the id).
LOOKUP_ORDER = {"token": ("code", "system", "text"), "reference": ("target_id", "target_type", "version", "url")}


#: A text prefix matching at least this many entries is "common": scanning candidates in id order
#: and probing finds a page sooner than listing every match to sort them by id.
COMMON_TEXT = 500


def _common_text(conn: sqlite3.Connection, type_: str, driver) -> bool:
    """Whether a string clause about to drive a search matches many entries (bounded count)."""
    if not isinstance(driver, Match) or driver.kind != "string":
        return False
    sql = SqlBuilder()
    cond = sql.cond(driver.cond, "x", "string")
    count = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM idx_string x WHERE x.type = ? AND x.param = ?"
                         f" AND {cond} LIMIT {COMMON_TEXT})", [type_, driver.param, *sql.args]).fetchone()[0]
    return count >= COMMON_TEXT


def _index_schema() -> str:
    """One table per index kind, with a covering index for lookups and one to delete by owner."""
    statements = []
    for kind, columns in INDEX_COLUMNS.items():
        cols = ", ".join(columns)
        lookup = ", ".join(LOOKUP_ORDER.get(kind, columns))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS idx_{kind} (type TEXT NOT NULL, param TEXT NOT NULL, {cols},"
            " id TEXT NOT NULL);"
            f"DROP INDEX IF EXISTS idx_{kind}_lookup;"  # the first layout, value columns in table order
            f"CREATE INDEX IF NOT EXISTS idx_{kind}_by_value ON idx_{kind} (type, param, {lookup}, id);"
            f"CREATE INDEX IF NOT EXISTS idx_{kind}_owner ON idx_{kind} (type, id);")
    return "\n".join(statements)


CACHE_KIB = 256 * 1024  # page cache per connection (SQLite's default is 2 MiB)
#: The WAL is copied back into the database by a background thread (``_Checkpointer``) every
#: CHECKPOINT_EVERY_S, so no request pays for it; a committing connection checkpoints itself only
#: if the WAL still grows past this many pages (the thread could not keep up).
CHECKPOINT_EVERY_S = 0.5
#: Prepared statements kept per connection: parameter and type names are written into the SQL
#: (sqlite_query.SqlBuilder.name), so searches on different parameters are different statements.
STATEMENT_CACHE = 512
SAFETY_CHECKPOINT_PAGES = 50_000

RECORD_COLUMNS = "h.type, h.id, h.version, h.last_updated, h.deleted, h.body, h.method"
#: One resource row ``r`` tested against probes (``compiled_probes`` fills in ``{where}``).
SATISFIES = "SELECT 1 FROM resource r WHERE r.type = ? AND r.id = ? AND r.deleted = 0 AND {where}"
#: The same, reading the current version too. A verdict remembered for this version while the
#: ``{stamp}`` of the types the test reaches (sqlite_query.stamp_sql) was the same is given back
#: without running the test; the first three arguments are that version, stamp and verdict (NULLs
#: when none is known), the test's come next. The stamp is read in the same statement, so both
#: are of one snapshot.
READ_WHERE = (f"SELECT {RECORD_COLUMNS}, CASE WHEN r.version = ? AND {{stamp}} = ? THEN ?"
              " ELSE r.deleted = 0 AND {where} END, {stamp}"
              " FROM resource r JOIN history h ON h.seq = r.seq WHERE r.type = ? AND r.id = ?")
#: How many read verdicts a store remembers (``SqliteStore.read_where``) before starting afresh
#: (each ~300 B: some 20 MB at most).
VERDICTS = 65_536
UNKNOWN = (None, None, None)


def _run(conn: sqlite3.Connection, sql: str, args) -> sqlite3.Cursor:
    """Run a search query; one SQLite cannot parse (nested too deep) is the caller's mistake."""
    try:
        return conn.execute(sql, args)
    except sqlite3.OperationalError as error:
        if "stack overflow" in str(error) or "too large" in str(error) or "too many" in str(error):
            raise QueryTooComplex(f"The search is nested too deeply to run ({error})") from None
        raise


def _record(row: tuple) -> Record:
    return Record(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30,
                           cached_statements=STATEMENT_CACHE)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # keep index pages in memory as the DMP grows
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT_PAGES}")
    return conn


class SqliteUnit:
    """A unit of work on the writer connection (inside BEGIN IMMEDIATE)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, type_: str, id_: str) -> Record | None:
        return SqliteStore.read_on(self._conn, type_, id_)

    def find(self, type_: str, clauses: list[Clause], limit: int) -> list[str]:
        return [r.id for r in SqliteStore.find_on(self._conn, type_, clauses, limit=limit)]

    def satisfies(self, type_: str, id_: str, clauses: Sequence[Clause]) -> bool:
        return SqliteStore.satisfies_on(self._conn, type_, id_, clauses)

    def _append(self, type_: str, id_: str, version: int, last_updated: str, deleted: bool, method: str,
                body: bytes) -> Record:
        row = self._conn.execute("SELECT version FROM resource WHERE type = ? AND id = ?", (type_, id_)).fetchone()
        if version != (row[0] if row else 0) + 1:
            raise VersionConflict(f"{type_}/{id_}: version {version} does not follow {row[0] if row else 0}")
        cur = self._conn.execute(
            "INSERT INTO history (type, id, version, last_updated, deleted, method, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (type_, id_, version, last_updated, int(deleted), method, body))
        self._conn.execute(
            "INSERT INTO resource (type, id, version, seq, deleted) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, seq = excluded.seq,"
            " deleted = excluded.deleted", (type_, id_, version, cur.lastrowid, int(deleted)))
        if version > 1:  # a new resource has no entries to replace
            for kind in INDEX_COLUMNS:
                self._conn.execute(f"DELETE FROM idx_{kind} WHERE type = ? AND id = ?", (type_, id_))
        return Record(type_, id_, version, last_updated, deleted, body, method)

    def put(self, type_: str, id_: str, version: int, body: bytes, *, last_updated: str, method: str,
            entries: list[IndexEntry]) -> Record:
        record = self._append(type_, id_, version, last_updated, False, method, body)
        by_kind: dict[str, list] = {}
        for entry in entries:
            values = (float(v) if isinstance(v, Decimal) else v for v in entry.values)  # REAL columns
            by_kind.setdefault(entry.kind, []).append((type_, entry.param, *values, id_))
        for kind, rows in by_kind.items():
            marks = ", ".join("?" * (len(INDEX_COLUMNS[kind]) + 3))
            self._conn.executemany(f"INSERT INTO idx_{kind} VALUES ({marks})", rows)
        return record

    def delete(self, type_: str, id_: str, version: int, *, last_updated: str) -> Record:
        return self._append(type_, id_, version, last_updated, True, "DELETE", b"")

    def receipt(self, door: str, sender: str, message: str) -> bytes | None:
        row = self._conn.execute("SELECT answer FROM receipt WHERE door = ? AND sender = ? AND message = ?",
                                 (door, sender, message)).fetchone()
        return row[0] if row else None

    def keep_receipt(self, door: str, sender: str, message: str, answer: bytes, *, at: str) -> None:
        self._conn.execute("INSERT INTO receipt (door, sender, message, answer, at) VALUES (?, ?, ?, ?, ?)",
                           (door, sender, message, answer, at))


class SqliteStore:
    """The Store protocol on one SQLite file."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._synchronous = synchronous
        self._writer = _connect(path, synchronous)
        self._writer.executescript(SCHEMA + _index_schema())
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        #: (id of the clauses, type, id) -> (the clauses, version, stamp, verdict): see ``read_where``
        self._verdicts: dict[tuple[int, str, str], tuple] = {}
        self._journal = TraceJournal(path.with_name(path.name + "-traces"))
        self._indexing = threading.Lock()
        self._regroup_old_traces()
        self._housekeeper = _Housekeeper(path, synchronous, self._index_traces)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path, self._synchronous)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    @contextmanager
    def unit(self) -> Iterator[SqliteUnit]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteUnit(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    @staticmethod
    def read_on(conn: sqlite3.Connection, type_: str, id_: str) -> Record | None:
        row = conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM resource r JOIN history h ON h.seq = r.seq"
            " WHERE r.type = ? AND r.id = ?", (type_, id_)).fetchone()
        return _record(row) if row else None

    @staticmethod
    def page_on(conn: sqlite3.Connection, type_: str, clauses: list[Clause], *, limit: int,
                sort: tuple[SortKey, ...] = (), after: tuple | None = None, before: tuple | None = None
                ) -> list[tuple[Record, tuple]]:
        driver = best_driver(clauses)
        if not sort and text_range(driver):
            query = text_ordered(type_, driver, clauses, RECORD_COLUMNS)
        elif not sort and _common_text(conn, type_, driver):
            query = key_ordered(type_, clauses, sort, RECORD_COLUMNS, {id(driver)})
        else:
            query = key_ordered(type_, clauses, sort, RECORD_COLUMNS, set())
        position = before if before is not None else after
        outer, outer_args = "1", []
        if position is not None:
            if len(position) != len(query.directions) + 1:
                raise BadPosition("The page position does not fit this search (was _sort changed?)")
            outer, outer_args = query.beyond(tuple(position), backwards=before is not None)
        rows = _run(conn, f"SELECT * FROM ({query.sql}) WHERE {outer} ORDER BY {query.order(before is not None)}"
                    " LIMIT ?", [*query.args, *outer_args, limit]).fetchall()
        page = [(_record(row[:7]), tuple(row[8:]) + (row[7],)) for row in rows]
        return page[::-1] if before is not None else page

    @staticmethod
    def satisfies_on(conn: sqlite3.Connection, type_: str, id_: str, clauses: Sequence[Clause]) -> bool:
        sql, args = compiled_probes(clauses if isinstance(clauses, tuple) else tuple(clauses), SATISFIES)
        return _run(conn, sql, (type_, id_, *args)).fetchone() is not None

    def satisfies(self, type_: str, id_: str, clauses: Sequence[Clause]) -> bool:
        return self.satisfies_on(self._reader(), type_, id_, clauses)

    def read_where(self, type_: str, id_: str, clauses: Sequence[Clause]) -> tuple[Record | None, bool]:
        if not clauses:
            record = self.read(type_, id_)
            return record, record is not None
        clauses = clauses if isinstance(clauses, tuple) else tuple(clauses)
        sql, args = compiled_probes(clauses, READ_WHERE)
        # The verdict of the last read of this resource with these clauses is given back by the
        # statement itself if neither the resource nor any resource of a type the clauses reach
        # (a professional's: Patient, Consent) was written since, by this process or another.
        key = (id(clauses), type_, id_)
        known = self._verdicts.get(key)
        last = known[1:] if known is not None and known[0] is clauses else UNKNOWN
        row = _run(self._reader(), sql, (*last, *args, type_, id_)).fetchone()
        if row is None:
            return None, False
        record = _record(row[:7])
        if (record.version, row[8]) != last[:2]:
            if len(self._verdicts) >= VERDICTS:
                self._verdicts.clear()
            self._verdicts[key] = (clauses, record.version, row[8], row[7])
        return record, bool(row[7])

    @staticmethod
    def find_on(conn: sqlite3.Connection, type_: str, clauses: list[Clause], *, limit: int,
                sort: tuple[SortKey, ...] = ()) -> list[Record]:
        return [record for record, _ in SqliteStore.page_on(conn, type_, clauses, limit=limit, sort=sort)]

    def read(self, type_: str, id_: str) -> Record | None:
        return self.read_on(self._reader(), type_, id_)

    def vread(self, type_: str, id_: str, version: int) -> Record | None:
        row = self._reader().execute(
            f"SELECT {RECORD_COLUMNS} FROM history h WHERE h.type = ? AND h.id = ? AND h.version = ?",
            (type_, id_, version)).fetchone()
        return _record(row) if row else None

    def find(self, type_: str, clauses: list[Clause], *, limit: int, sort: tuple[SortKey, ...] = ()) -> list[Record]:
        return self.find_on(self._reader(), type_, clauses, limit=limit, sort=sort)

    def page(self, type_: str, clauses: list[Clause], *, limit: int, sort: tuple[SortKey, ...] = (),
             after: tuple | None = None, before: tuple | None = None) -> list[tuple[Record, tuple]]:
        return self.page_on(self._reader(), type_, clauses, limit=limit, sort=sort, after=after, before=before)

    # -- access traces --------------------------------------------------------------------

    def append_traces(self, rows: list[tuple]) -> None:
        """Journal trace rows (``TRACE_INPUT`` order, oldest first): durable once this returns, indexed
        in bulk later (``store/trace_journal.py``)."""
        self._journal.append(rows)

    def _index_traces(self) -> None:
        """Move every journal segment's unindexed traces into the trace groups, each batch in one
        transaction with the offset reached; delete the segments nobody writes any more."""
        with self._indexing:
            for segment in self._journal.segments():
                offset = self._indexed(self._reader(), segment)
                for batch in self._journal.read(segment, offset):
                    with self.unit():
                        if self._indexed(self._writer, segment) != offset:
                            break  # another process indexed this part meanwhile: read on from its offset next time
                        self._insert_groups(batch)
                        self._writer.execute("INSERT OR REPLACE INTO trace_source VALUES (?, ?)", (segment, batch.end))
                    offset = batch.end
                if self._journal.finished(segment, offset):
                    self._journal.remove(segment)  # first: a segment must never be read again from offset 0
                    with self.unit():
                        self._writer.execute("DELETE FROM trace_source WHERE segment = ?", (segment,))

    def _insert_groups(self, batch: Batch) -> None:
        """One new batch of journal lines, in one group per patient, all in SQL (the indexer thread
        leaves the interpreter to the requests)."""
        number = self._writer.execute("SELECT coalesce(max(batch), 0) + 1 FROM trace_group").fetchone()[0]
        try:
            self._writer.execute(GROUP_BATCH, (number, batch.as_json()))
        except sqlite3.OperationalError:  # malformed JSON: a full disk tore a line
            self._writer.execute(GROUP_BATCH, (number, batch.valid_json()))
        self._writer.execute(GROUP_AGENTS, (number,))

    def _regroup_old_traces(self) -> None:
        """Data directories of earlier versions keep one ``audit`` row per trace: regroup them."""
        if not self._writer.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").fetchone():
            return
        with self.unit():
            rows = self._writer.execute("SELECT low, patient, agent, subtype, action, outcome, entities, detail"
                                        " FROM audit ORDER BY seq").fetchall()
            for start in range(0, len(rows), OLD_TRACES_PER_BATCH):
                lines = b"".join(encode((_ns(low), *rest)) + b"\n"
                                 for low, *rest in rows[start:start + OLD_TRACES_PER_BATCH])
                self._insert_groups(Batch("audit", lines, 0))
            self._writer.execute("DROP TABLE audit")

    @staticmethod
    def _indexed(conn: sqlite3.Connection, segment: str) -> int:
        row = conn.execute("SELECT indexed FROM trace_source WHERE segment = ?", (segment,)).fetchone()
        return row[0] if row else 0

    def traces(self, conds: list[Cond], *, limit: int, newest_first: bool = False, after: int | None = None,
               before: int | None = None) -> list[tuple]:
        """Trace rows (``seq`` then ``TRACE_ROW``) satisfying every condition, in ``seq`` order (or the
        reverse), strictly after (or before) a ``seq`` of an earlier page."""
        self._index_traces()
        sql = SqlBuilder()
        where = [sql.cond(c, "a", "trace") for c in conds]
        flip = before is not None
        position = after if after is not None else before
        forward = (after is not None) != newest_first
        if position is not None:
            where.append(f"a.seq {'>' if forward else '<'} ?")
            sql.args.append(position)
        groups = _trace_groups(conds, position, forward)
        descending = "DESC" if newest_first != flip else "ASC"
        rows = self._reader().execute(
            f"SELECT seq, {', '.join(TRACE_ROW)} FROM ({groups.sql}) a"
            f" WHERE {' AND '.join(where) or '1'} ORDER BY a.batch {descending}, a.seq {descending} LIMIT ?",
            [*groups.args, *sql.args, limit]).fetchall()
        return rows[::-1] if flip else rows

    def count_traces(self, conds: list[Cond]) -> int:
        self._index_traces()
        sql = SqlBuilder()
        where = " AND ".join(sql.cond(c, "a", "trace") for c in conds) or "1"
        groups = _trace_groups(conds, None, True)
        return self._reader().execute(f"SELECT count(*) FROM ({groups.sql}) a WHERE {where}",
                                      [*groups.args, *sql.args]).fetchone()[0]

    def count(self, type_: str, clauses: list[Clause]) -> int:
        sql = SqlBuilder()
        where = sql.clauses(clauses, "r")
        return _run(self._reader(), f"SELECT count(*) FROM resource r WHERE r.type = ? AND r.deleted = 0 AND {where}",
                    [type_, *sql.args]).fetchone()[0]

    def references_from(self, type_: str, ids: list[str], param: str | None) -> list[tuple[str, str, str]]:
        """(owner id, target type, target id) of the reference entries of ``ids`` (all params if None)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = (f"SELECT id, target_type, target_id FROM idx_reference INDEXED BY idx_reference_owner"
               f" WHERE type = ? AND id IN ({marks})"
               " AND target_id IS NOT NULL")
        args = [type_, *ids]
        if param is not None:
            sql += " AND param = ?"
            args.append(param)
        return self._reader().execute(sql, args).fetchall()

    def history(self, type_: str | None, id_: str | None, *, since: str | None, before_seq: int | None,
                limit: int) -> list[tuple[int, Record]]:
        clauses, args = [], []
        for column, value in (("h.type = ?", type_), ("h.id = ?", id_), ("h.last_updated >= ?", since),
                              ("h.seq < ?", before_seq)):
            if value is not None:
                clauses.append(column)
                args.append(value)
        where = " AND ".join(clauses) or "1"
        rows = self._reader().execute(
            f"SELECT h.seq, {RECORD_COLUMNS} FROM history h WHERE {where} ORDER BY h.seq DESC LIMIT ?",
            [*args, limit]).fetchall()
        return [(row[0], _record(row[1:])) for row in rows]

    def close(self) -> None:
        self._housekeeper.stop()
        self._journal.close()
        self._index_traces()
        for conn in [*self._readers, self._writer]:
            conn.close()
        self._readers.clear()


def _ns(instant: str) -> int:
    """An index instant (``2026-03-01T10:00:00.250000Z``) in nanoseconds since the epoch."""
    seconds = calendar.timegm(time.strptime(instant[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(instant[20:26]) * 1000


@dataclass
class _TraceGroups:
    sql: str
    args: list


def _trace_groups(conds: list[Cond], position: int | None, forward: bool) -> _TraceGroups:
    """The traces of the groups worth opening, with their batch from an index that lists them in
    batch order (so a page stops early): the patient's groups, else the agent's, else all; only
    the batch holding a given ``seq``, or those from a page position on. The conditions still
    test each trace."""
    where, args = [], []
    driver = "trace_group g"
    for cond in conds:
        if not (isinstance(cond, Compare) and cond.op in ("=", "in")):
            continue
        values = cond.value if cond.op == "in" else (cond.value,)
        marks = ",".join("?" * len(values))
        if cond.column == "patient" and None not in values:
            where.append(f"g.patient IN ({marks})")
        elif cond.column == "agent" and driver == "trace_group g":
            driver = "trace_group_agent d JOIN trace_group g ON g.gseq = d.gseq"
            where.append(f"d.agent IN ({marks})")
        elif cond.column == "seq":
            where.append(f"g.batch IN ({marks})")
            values = tuple(v >> BATCH_BITS for v in values)
        else:
            continue
        args += values
    batch = "d.batch" if driver != "trace_group g" else "g.batch"
    if position is not None:
        where.append(f"{batch} {'>=' if forward else '<='} ?")
        args.append(position >> BATCH_BITS)
    return _TraceGroups(f"SELECT {TRACE_COLUMNS_SQL}, {batch} AS batch FROM {driver}, json_each(g.traces) t"
                        f" WHERE {' AND '.join(where) or '1'}", args)


class _Housekeeper:
    """In the background, every ``CHECKPOINT_EVERY_S``: indexes the journalled access traces, then
    copies the WAL back into the database file (``PASSIVE``: never waits for readers or blocks the
    writer), so a commit never stalls on a large checkpoint."""

    def __init__(self, path: Path, synchronous: str, index_traces: Callable[[], None]) -> None:
        self._conn = _connect(path, synchronous)
        self._index_traces = index_traces
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-housekeeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            try:
                self._index_traces()
            except (sqlite3.Error, OSError):  # the next round, or the next query of the traces, tries again
                log.exception("could not index the access-trace journal")
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # busy or closing: the next round tries again
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._conn.close()
