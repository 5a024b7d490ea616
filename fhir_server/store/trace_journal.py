"""The access-trace journal: where a trace is written while the request that made it waits.

A trace is taken on every read, so writing one must cost next to nothing: each process appends
the traces of a request as JSON lines to its own journal segment, in one ``write`` before the
request answers. Once ``write`` returns, the trace is in the operating system's hands: it
survives the process being killed, as a commit of the SQLite store does (WAL with
``synchronous=NORMAL``: neither is flushed to the disk at once).

The store moves the journal into its indexed trace table in bulk, in the background and before
any query of the traces, recording in the same transaction how far it read each segment: a
trace is indexed exactly once, even after a crash. A segment is deleted once it is fully indexed
and no process writes to it any more (its writer holds an exclusive ``flock`` on it).

A line is the JSON array ``[patient, agent, [ns, agent, subtype, action, outcome, entities,
detail]]`` (JSON holds no raw newline): a batch of lines joined by commas is one JSON array,
which the store groups in SQL without the indexer parsing anything in Python.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("mes")

SEGMENT_BYTES = 64 << 20  # a process starts a new segment past this size
SUFFIX = ".jsonl"
READ_CHUNK = 1 << 20  # bytes of journal indexed per transaction: bounds how long the writer lock is held


@dataclass(frozen=True)
class Batch:
    """Complete lines read from a segment, and the offset just past them."""

    segment: str
    data: bytes  # whole lines, each ending with a newline
    end: int

    def as_json(self) -> str:
        """The lines as one JSON array, parsed by nobody: valid unless a full disk tore a line."""
        return "[" + self.data[:-1].replace(b"\n", b",").decode(errors="replace") + "]"

    def valid_json(self) -> str:
        """The lines that parse, as one JSON array; the others are logged and left out."""
        kept = []
        for text in self.data.splitlines():
            try:
                kept.append(orjson.dumps(orjson.loads(text)))
            except orjson.JSONDecodeError:
                log.warning("access-trace journal %s: skipping a line that does not parse", self.segment)
        return "[" + b",".join(kept).decode() + "]"


class TraceJournal:
    """This process's journal segment in ``directory``, and the reading of every segment there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._name = ""
        self._size = 0

    def append(self, rows: list[tuple]) -> None:
        """Write ``rows`` ((ns, patient, agent, …) tuples) in one ``write``; raises if they are not all written."""
        data = b"".join(encode(row) + b"\n" for row in rows)
        with self._lock:
            if self._fd is None or self._size >= SEGMENT_BYTES:
                self._open_segment()
            written = os.write(self._fd, data)
            self._size += written
            if written != len(data):  # disk full: what was written is a torn line the reader skips
                raise OSError(f"access-trace journal: wrote {written} of {len(data)} bytes")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # releases the flock: the segment may be deleted once indexed
                self._fd = None

    def segments(self) -> list[str]:
        """Every segment's name, oldest first (names start with their creation time)."""
        return sorted(p.name for p in self.directory.glob(f"*{SUFFIX}"))

    def read(self, segment: str, offset: int) -> Iterator[Batch]:
        """The complete lines of ``segment`` after ``offset``, in batches of at most ``READ_CHUNK``
        bytes. A torn last line left by a dead writer is skipped and logged."""
        try:
            file = open(self.directory / segment, "rb")  # noqa: SIM115 - closed below, read in chunks
        except FileNotFoundError:
            return
        with file:
            file.seek(offset)
            while chunk := file.read(READ_CHUNK):
                complete = chunk.rfind(b"\n") + 1
                if complete == 0:
                    if len(chunk) < READ_CHUNK and self.finished(segment, offset + len(chunk)):
                        log.warning("access-trace journal %s: skipping a torn last line", segment)
                        yield Batch(segment, b"", offset + len(chunk))
                    return
                yield Batch(segment, chunk[:complete], offset + complete)
                offset += complete
                file.seek(offset)

    def finished(self, segment: str, offset: int) -> bool:
        """Whether no process writes ``segment`` any more and ``offset`` is its end."""
        path = self.directory / segment
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer holds it
        except BlockingIOError:
            return False
        else:
            return os.fstat(fd).st_size == offset
        finally:
            os.close(fd)

    def remove(self, segment: str) -> None:
        (self.directory / segment).unlink(missing_ok=True)

    def _open_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        self._fd = os.open(self.directory / self._name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._size = 0


def encode(row: tuple) -> bytes:
    """The journal line (without its newline) of a ``(ns, patient, agent, …)`` row."""
    ns, patient, agent, *rest = row
    return orjson.dumps((patient, agent, (ns, agent, *rest)))
