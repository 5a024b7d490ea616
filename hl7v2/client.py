"""A blocking MLLP client: send a message, wait for its ACK (tests, the benchmark, a quick check
of a deployment from a shell)."""

from __future__ import annotations

import socket
import ssl

from hl7v2.mllp import FrameReader, frame


class MllpClient:
    def __init__(self, host: str, port: int, *, timeout: float = 30.0, context: ssl.SSLContext | None = None,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        self._sock = context.wrap_socket(sock, server_hostname=host) if context else sock
        self._reader = FrameReader(max_bytes)
        self._pending: list[bytes] = []

    def send(self, message: bytes) -> bytes:
        """Send one message; its ACK's bytes."""
        self.send_raw(frame(message))
        return self.receive()

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (hostile framings, several frames at once)."""
        self._sock.sendall(data)

    def receive(self) -> bytes:
        """The next ACK (ConnectionError if the server closes first)."""
        while not self._pending:
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._pending += [item for item in self._reader.feed(data) if isinstance(item, bytes)]
        return self._pending.pop(0)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
