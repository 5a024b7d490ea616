"""The MLLP listener on asyncio: thin — frames in, ``handle`` (the core's door), ACKs out.

Persistent connections, many messages each, answered in order (HL7 original mode: a sender waits
for the ACK before the next message); many connections at once. Who may connect: with a client CA
configured, a TLS client certificate that chains to it (checked in the handshake); otherwise a
peer address in the allowed networks. A peer that is neither gets an AR for each message and is
disconnected. A frame larger than the limit is answered AR and dropped; bytes between frames are
ignored; a connection idle too long is closed, and so is one beyond the connection limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hl7v2 import ack
from hl7v2.ack import REJECT, V2Problem
from hl7v2.mllp import FrameReader, TooLarge, frame

log = logging.getLogger("mes")

Handle = Callable[[bytes, str], Awaitable[bytes]]
READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class ListenerSettings:
    host: str
    port: int
    max_message_bytes: int
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    ssl_context: ssl.SSLContext | None = None
    client_certificates: bool = False  # the TLS handshake required a trusted client certificate
    max_connections: int = 64  # each may buffer up to a message's limit: memory is bounded by both
    idle_seconds: float = 600.0


def networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` → networks; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


class MllpListener:
    def __init__(self, settings: ListenerSettings, handle: Handle) -> None:
        self.settings = settings
        self._handle = handle
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        s = self.settings
        self._server = await asyncio.start_server(self._serve, s.host, s.port, ssl=s.ssl_context,
                                                  limit=READ_SIZE)
        log.info("MLLP listener on %s:%s%s", s.host, s.port, " (TLS)" if s.ssl_context else "")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    def _permitted(self, peer: str, writer: asyncio.StreamWriter) -> bool:
        if self.settings.client_certificates:
            return writer.get_extra_info("peercert") is not None
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.settings.allowed_networks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.settings.max_connections:
            log.warning("MLLP connection refused: %d connections already open", len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        peer = (writer.get_extra_info("peername") or ("",))[0]
        permitted = self._permitted(peer, writer)
        if not permitted:
            log.warning("MLLP connection from %s refused: not an allowed network or certificate", peer)
        frames = FrameReader(self.settings.max_message_bytes)
        try:
            while True:
                data = await asyncio.wait_for(reader.read(READ_SIZE), self.settings.idle_seconds)
                if not data:
                    break
                items = frames.feed(data)
                for item in items:
                    writer.write(frame(await self._answer(item, peer, permitted)))
                    await writer.drain()
                if items and not permitted:  # told why, then let go
                    break
        except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, item: bytes | TooLarge, peer: str, permitted: bool) -> bytes:
        if isinstance(item, TooLarge):
            return ack.acknowledge(None, REJECT, (V2Problem(
                ack.DATA_TYPE_ERROR, f"The message is larger than {self.settings.max_message_bytes} bytes",
                f"Le message dépasse {self.settings.max_message_bytes} octets"),), echo=ack.readable_header(item.head))
        if not permitted:
            return ack.acknowledge(None, REJECT, (V2Problem(
                "207", "Connection refused: this network or certificate is not allowed",
                "Connexion refusée : réseau ou certificat non autorisé"),), echo=ack.readable_header(item))
        return await self._handle(item, peer)
