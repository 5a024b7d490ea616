"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): ``<VT> message <FS><CR>``.

A TCP read may hold part of a frame, several frames, or bytes between frames that belong to
none (a sender's stray newline, a port scanner); the reader keeps the partial frame for the next
read and drops the rest, counting it. A frame longer than the limit is dropped whole and
reported, so one oversized message cannot hold the connection's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

START, END = b"\x0b", b"\x1c\x0d"


def frame(message: bytes) -> bytes:
    return START + message + END


@dataclass(frozen=True)
class TooLarge:
    """A frame dropped for its size; ``head``: its first bytes, to answer it by its MSH-10."""

    size: int
    head: bytes


class FrameReader:
    """Feed it bytes as they arrive; it hands back the complete frames (or ``TooLarge``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.discarded = 0  # bytes seen outside any frame
        self._buffer = bytearray()
        self._in_frame = False
        self._skipping = 0  # > 0: inside an oversized frame, its size so far
        self._head = b""
        self._ended = False  # the last read ended on a frame's FS: a CR may still follow

    def feed(self, data: bytes) -> list[bytes | TooLarge]:
        out: list[bytes | TooLarge] = []
        view = memoryview(data)
        if self._ended and view[:1] == b"\r":
            view = view[1:]
        self._ended = False
        while view:
            if not self._in_frame:
                start = bytes(view).find(START)
                if start < 0:
                    self.discarded += len(view)
                    return out
                self.discarded += start
                view = view[start + 1:]
                self._in_frame = True
            view = self._take(view, out)
        return out

    def _take(self, view: memoryview, out: list[bytes | TooLarge]) -> memoryview:
        """Consume frame bytes up to the end marker (or all of ``view``); what follows it is returned."""
        chunk = bytes(view)
        end = chunk.find(b"\x1c")
        body = chunk if end < 0 else chunk[:end]
        restart = body.rfind(START)
        if restart >= 0:  # a new frame began before this one ended: the sender gave the first up
            self.discarded += len(self._buffer) + restart
            self._buffer.clear()
            self._skipping = 0
            body = body[restart + 1:]
        if self._skipping or len(self._buffer) + len(body) > self.max_bytes:
            if not self._skipping:
                self._head = bytes(self._buffer[:512] + body[:512])[:512]
            self._skipping += len(self._buffer) + len(body)
            self._buffer.clear()
        else:
            self._buffer += body
        if end < 0:
            return memoryview(b"")
        rest = view[end + 1:]
        if rest[:1] == b"\r":  # the CR after FS; some senders leave it out
            rest = rest[1:]
        self._ended = not rest
        if self._skipping:
            out.append(TooLarge(self._skipping, self._head))
            self._skipping = 0
        else:
            out.append(bytes(self._buffer))
        self._buffer.clear()
        self._in_frame = False
        return rest
